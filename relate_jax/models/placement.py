"""Object placement: torch `F.affine_grid` + `F.grid_sample` for a scale+translation θ.

The reference places each object canvas with θ = [[s, 0, tx], [0, s, ty]],
`affine_grid(θ, size)` and `grid_sample(bilinear, padding_mode='zeros',
align_corners=False)` (REFERENCE §2.1, §3.3). With align_corners=False an output pixel x of a
width-W canvas has the normalised coordinate g_x = (2x + 1)/W − 1; it samples the input at
normalised s·g_x + tx, i.e. at pixel coordinate

    src_x(x) = ((s·g_x + tx) + 1)·W/2 − 1/2,

bilinearly, taps outside the canvas contributing 0. Same for y with ty and H.

Geometry: an object centred in its canvas appears at normalised position p = −t/s with its
size scaled by 1/s. So positive tx moves the object LEFT, positive ty moves it UP (towards
row 0), s > 1 shrinks it, 0 < s < 1 enlarges it, s < 0 mirrors it.

Because θ has no rotation or shear the bilinear sampling factorises over the two axes:
out[y, x, c] = Σ_i Σ_j A_y[y, i] A_x[x, j] in[i, j, c] with the hat weights
A[x, j] = max(0, 1 − |src(x) − j|) for j inside the canvas. Two small einsums (matrix
products on an accelerator) replace torch's per-pixel gather.
"""

import jax
import jax.numpy as jnp

Array = jax.Array


def interpolation_matrix(scale: Array, shift: Array, size: int) -> Array:
  """Bilinear resampling weights along one axis.

  scale, shift: (N,) the θ entries s and t for this axis. Returns A (N, size, size) with
  A[n, out, in] = max(0, 1 − |src(out) − in|).
  """
  g = (2.0 * jnp.arange(size, dtype=jnp.float32) + 1.0) / size - 1.0
  src = ((scale[:, None] * g + shift[:, None]) + 1.0) * (size / 2.0) - 0.5
  taps = jnp.arange(size, dtype=jnp.float32)
  return jnp.maximum(0.0, 1.0 - jnp.abs(src[:, :, None] - taps))


def place(canvas: Array, scale: Array, translation: Array) -> Array:
  """Resamples each canvas as grid_sample(canvas, affine_grid([[s,0,tx],[0,s,ty]])).

  canvas: (N, H, W, C); scale: (N,) s; translation: (N, 2) (tx, ty) in normalised units.
  Returns (N, H, W, C) in canvas's dtype.
  """
  _, h, w, _ = canvas.shape
  a_x = interpolation_matrix(scale, translation[:, 0], w)
  a_y = interpolation_matrix(scale, translation[:, 1], h)
  # Full f32 precision (also under bf16 compute): the weights are interpolation
  # coefficients, not learned features.
  rows = jnp.einsum('nxj,nijc->nixc', a_x, canvas.astype(jnp.float32), precision='highest')
  out = jnp.einsum('nyi,nixc->nyxc', a_y, rows, precision='highest')
  return out.astype(canvas.dtype)
