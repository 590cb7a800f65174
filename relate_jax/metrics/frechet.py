"""Feature statistics, Fréchet distance (FID / FVD) and kernel distance (KID / KVD).

All arithmetic is float64 numpy on the host: the features are small (N × 2048 at most)
and the matrix square root needs the precision.
"""

import dataclasses
import functools

import numpy as np

# Below this many samples (the Inception feature size) Σ is singular.
MIN_RECOMMENDED_FID = 2048


@dataclasses.dataclass(frozen=True)
class Statistics:
  """Gaussian fit of a feature set: mean μ (d,), covariance Σ (d, d), count N, float64."""
  mu: np.ndarray
  sigma: np.ndarray
  num: int

  def save(self, path: str) -> None:
    np.savez(path, mu=self.mu, sigma=self.sigma, num=self.num)

  @classmethod
  def load(cls, path: str) -> 'Statistics':
    with np.load(path) as f:
      return cls(f['mu'], f['sigma'], int(f['num']))

  @functools.cached_property
  def factor(self) -> np.ndarray:
    """L with L·Lᵀ = Σ, computed once (cached real-data statistics reuse it)."""
    return _psd_factor(self.sigma)


def statistics(features: np.ndarray) -> Statistics:
  """μ and unbiased Σ (divisor N − 1, as np.cov / TTUR) of (N, d) features, in float64."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or len(f) < 2:
    raise ValueError(f'need (N >= 2, d) features, got {f.shape}')
  mu = f.mean(axis=0)
  c = f - mu
  return Statistics(mu, c.T @ c / (len(f) - 1), len(f))


def _psd_factor(sigma: np.ndarray) -> np.ndarray:
  """L with L·Lᵀ = Σ for symmetric PSD Σ (eigh).

  Eigenvalues below the round-off level d·eps·λ_max are zeroed: a singular Σ (N ≤ d)
  otherwise contributes √(round-off) per null direction.
  """
  sym = (sigma + sigma.T) / 2
  w, v = np.linalg.eigh(sym)
  w = np.where(w > len(w) * np.finfo(w.dtype).eps * max(w.max(), 0.0), w, 0.0)
  return v * np.sqrt(w)


def trace_sqrt_product(sigma1: np.ndarray, factor2: np.ndarray) -> float:
  """Tr((Σ1 Σ2)^½) for PSD Σ1 and Σ2 = L2·L2ᵀ.

  The eigenvalues of Σ1Σ2 are those of the symmetric PSD matrix L2ᵀΣ1L2, so the trace is
  the sum of their square roots: one eigendecomposition per set (cacheable for the real
  side) and one symmetric eigenvalue solve, no non-symmetric square root (which scipy
  may return complex or inaccurate for a singular Σ).
  """
  m = factor2.T @ sigma1 @ factor2
  w = np.linalg.eigvalsh((m + m.T) / 2)
  return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(s1: Statistics, s2: Statistics) -> float:
  """|μ1 − μ2|² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) (FID when the features are Inception pool3).

  Pass the reused (real-data) statistics second: their factor L2 is computed once.
  """
  if s1.mu.shape != s2.mu.shape:
    raise ValueError(f'feature sizes differ: {s1.mu.shape} vs {s2.mu.shape}')
  diff = s1.mu - s2.mu
  value = diff @ diff + np.trace(s1.sigma) + np.trace(s2.sigma) - 2 * trace_sqrt_product(
      s1.sigma, s2.factor)
  return float(max(value, 0.0))


def polynomial_mmd2(f1: np.ndarray, f2: np.ndarray) -> float:
  """Unbiased MMD² with the kernel k(x, y) = (xᵀy/d + 1)³ between two feature sets."""
  d = f1.shape[1]
  k11 = (f1 @ f1.T / d + 1) ** 3
  k22 = (f2 @ f2.T / d + 1) ** 3
  k12 = (f1 @ f2.T / d + 1) ** 3
  m, n = len(f1), len(f2)
  return float((k11.sum() - np.trace(k11)) / (m * (m - 1))
               + (k22.sum() - np.trace(k22)) / (n * (n - 1)) - 2 * k12.mean())


def kernel_distance(f1: np.ndarray, f2: np.ndarray, num_subsets: int = 100,
                    subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
  """KID / KVD: mean and std of the unbiased polynomial MMD² over random subsets.

  Each subset draws min(N1, N2, subset_size) rows of each set without replacement
  (the protocol of Bińkowski et al. and clean-fid). Multiply by 10³ to report.
  """
  f1 = np.asarray(f1, np.float64)
  f2 = np.asarray(f2, np.float64)
  size = min(len(f1), len(f2), subset_size)
  if size < 2:
    raise ValueError('KID needs at least 2 samples on each side')
  rng = np.random.default_rng(seed)
  values = [polynomial_mmd2(f1[rng.choice(len(f1), size, replace=False)],
                            f2[rng.choice(len(f2), size, replace=False)])
            for _ in range(num_subsets)]
  return float(np.mean(values)), float(np.std(values))
