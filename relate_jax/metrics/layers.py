"""Building blocks shared by the metric networks (FID Inception, I3D)."""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class ConvBN(nn.Module):
  """Convolution without bias, batch norm without scale (inference, eps 1e-3), ReLU.

  The layer unit of both TF-era networks. Works for 2-D (NHWC) and 3-D (NTHWC) inputs.
  Parameters: `kernel` (*k, C_in, C_out), `beta` (C_out,), and the frozen statistics
  `mean`, `var` (C_out,) kept in `params` since nothing ever updates them.
  """
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] | None = None
  # Explicit ((lo, hi), ...) pairs, or 'SAME' / 'VALID' (TF semantics).
  padding: str | Sequence[tuple[int, int]] = 'VALID'
  eps: float = 1e-3

  @nn.compact
  def __call__(self, x):
    k = tuple(self.kernel_size)
    kernel = self.param('kernel', nn.initializers.zeros, k + (x.shape[-1], self.features))
    beta = self.param('beta', nn.initializers.zeros, (self.features,))
    mean = self.param('mean', nn.initializers.zeros, (self.features,))
    var = self.param('var', nn.initializers.ones, (self.features,))
    nd = len(k)
    spatial = 'DHW'[-nd:]
    dims = ('N' + spatial + 'C', spatial + 'IO', 'N' + spatial + 'C')
    padding = self.padding if isinstance(self.padding, str) else tuple(map(tuple, self.padding))
    y = jax.lax.conv_general_dilated(
        x, kernel.astype(x.dtype), window_strides=tuple(self.strides or (1,) * nd),
        padding=padding, dimension_numbers=dims, precision=jax.lax.Precision.HIGHEST)
    y = (y - mean) * jax.lax.rsqrt(var + self.eps) + beta
    return nn.relu(y)


def same_padding(kernel_size: Sequence[int]) -> tuple[tuple[int, int], ...]:
  """Symmetric 'same' padding of an odd stride-1 kernel."""
  return tuple(((k - 1) // 2, (k - 1) // 2) for k in kernel_size)


def legacy_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """(out, in) float32 matrix of TF1's legacy bilinear resize (align_corners=False).

  Source coordinate of output i is i·in/out (no half-pixel offset), neighbours clamped at
  the last row; equal to scipy/jax `map_coordinates(order=1, mode='nearest')` at those
  coordinates.
  """
  src = np.arange(out_size, dtype=np.float64) * in_size / out_size
  lo = np.floor(src).astype(np.int64)
  frac = src - lo
  hi = np.minimum(lo + 1, in_size - 1)
  lo = np.minimum(lo, in_size - 1)
  m = np.zeros((out_size, in_size), np.float64)
  np.add.at(m, (np.arange(out_size), lo), 1.0 - frac)
  np.add.at(m, (np.arange(out_size), hi), frac)
  return m.astype(np.float32)


def legacy_resize(images, size: int):
  """Legacy-TF bilinear resize of (..., H, W, C) images to (..., size, size, C), float32."""
  h, w = images.shape[-3], images.shape[-2]
  x = jnp.asarray(images, jnp.float32)
  if (h, w) == (size, size):
    return x
  rh = jnp.asarray(legacy_resize_matrix(h, size))
  rw = jnp.asarray(legacy_resize_matrix(w, size))
  hp = jax.lax.Precision.HIGHEST
  x = jnp.einsum('oh,...hwc->...owc', rh, x, precision=hp)
  return jnp.einsum('pw,...owc->...opc', rw, x, precision=hp)


def apply_in_batches(apply_fn, variables, inputs: np.ndarray, batch_size: int,
                     feature_dim: int) -> np.ndarray:
  """Runs a jitted `apply_fn(variables, batch)` over `inputs` in fixed-size batches.

  The last batch is zero-padded to `batch_size` so one compiled shape serves every call;
  the padding rows are dropped. Returns float32 (N, feature_dim).
  """
  out = []
  for start in range(0, len(inputs), batch_size):
    chunk = inputs[start:start + batch_size]
    n = len(chunk)
    if n < batch_size:
      chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], chunk.dtype)])
    out.append(np.asarray(apply_fn(variables, chunk))[:n])
  if not out:
    return np.zeros((0, feature_dim), np.float32)
  return np.concatenate(out)
