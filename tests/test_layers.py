"""Torch-semantics layers checked against independent NumPy re-statements of torch's rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relate_jax.models import layers, placement


def _torch_affine_grid_sample(image, theta):
  """NumPy re-statement of torch F.affine_grid + F.grid_sample(bilinear, zeros,
  align_corners=False) for one NHWC image (H, W, C) and θ (2, 3), pixel by pixel."""
  h, w, _ = image.shape
  # affine_grid, align_corners=False: base coordinates linspace(-1, 1, n)·(n−1)/n.
  xs = np.linspace(-1.0, 1.0, w) * (w - 1) / w
  ys = np.linspace(-1.0, 1.0, h) * (h - 1) / h
  out = np.zeros_like(image)
  for row in range(h):
    for col in range(w):
      gx = theta[0, 0] * xs[col] + theta[0, 1] * ys[row] + theta[0, 2]
      gy = theta[1, 0] * xs[col] + theta[1, 1] * ys[row] + theta[1, 2]
      # grid_sample unnormalisation, align_corners=False.
      ix = ((gx + 1.0) * w - 1.0) / 2.0
      iy = ((gy + 1.0) * h - 1.0) / 2.0
      x0, y0 = int(np.floor(ix)), int(np.floor(iy))
      fx, fy = ix - x0, iy - y0
      for yy, wy in ((y0, 1.0 - fy), (y0 + 1, fy)):
        for xx, wx in ((x0, 1.0 - fx), (x0 + 1, fx)):
          if 0 <= yy < h and 0 <= xx < w:  # zeros padding
            out[row, col] += wy * wx * image[yy, xx]
  return out


def test_placement_matches_torch_grid_sample():
  rng = np.random.default_rng(0)
  n, h, w, c = 10, 6, 8, 3
  canvas = rng.normal(size=(n, h, w, c)).astype(np.float32)
  scales = np.array([1.0, 0.5, 2.3, -0.7, 1e-3, -1.0, 0.03, 1.6, -2.5, 0.9], np.float32)
  shifts = rng.uniform(-2.0, 2.0, size=(n, 2)).astype(np.float32)
  shifts[0] = 0.0
  got = np.asarray(placement.place(jnp.asarray(canvas), jnp.asarray(scales),
                                   jnp.asarray(shifts)))
  for i in range(n):
    theta = np.array([[scales[i], 0.0, shifts[i, 0]], [0.0, scales[i], shifts[i, 1]]])
    want = _torch_affine_grid_sample(canvas[i].astype(np.float64), theta)
    np.testing.assert_allclose(got[i], want, atol=1e-5, err_msg=f'sample {i}')
  # The identity transform reproduces the canvas (align_corners=False pixel centres).
  np.testing.assert_allclose(got[0], canvas[0], atol=1e-6)


def test_placement_geometry():
  """Positive tx moves the object left, positive ty up; s > 1 shrinks it."""
  canvas = np.zeros((1, 16, 16, 1), np.float32)
  canvas[0, 6:10, 6:10] = 1.0

  def centre_and_mass(s, tx, ty):
    out = np.asarray(placement.place(jnp.asarray(canvas), jnp.array([s]),
                                     jnp.array([[tx, ty]])))[0, ..., 0]
    rows, cols = np.mgrid[:16, :16]
    mass = out.sum()
    return (rows * out).sum() / mass, (cols * out).sum() / mass, mass

  row0, col0, mass0 = centre_and_mass(1.0, 0.0, 0.0)
  row, col, _ = centre_and_mass(1.0, 0.5, 0.0)
  assert col < col0 - 3 and abs(row - row0) < 1e-4  # left by 0.5·16/2 = 4 px
  row, col, _ = centre_and_mass(1.0, 0.0, 0.5)
  assert row < row0 - 3 and abs(col - col0) < 1e-4  # up
  _, _, mass = centre_and_mass(2.0, 0.0, 0.0)
  assert mass < 0.5 * mass0  # area / s²


def _torch_conv_transpose(x, weight, stride, padding):
  """NumPy torch ConvTranspose2d (no bias): x (C_in, H, W), weight (C_in, C_out, k, k)."""
  c_in, h, w = x.shape
  _, c_out, k, _ = weight.shape
  full = np.zeros((c_out, (h - 1) * stride + k, (w - 1) * stride + k))
  for i in range(h):
    for j in range(w):
      full[:, i * stride:i * stride + k, j * stride:j * stride + k] += np.einsum(
          'c,cokl->okl', x[:, i, j], weight)
  size = (h - 1) * stride - 2 * padding + k
  return full[:, padding:padding + size, padding:padding + size]


# (4, 2, 1), (3, 1, 1), (5, 1, 2): the generator's layers (phase form); (6, 2, 2), (5, 3, 1):
# other phase splits; (3, 2, 1): k − 2p ≠ s, the input-dilated fallback.
@pytest.mark.parametrize('k,s,p', [(4, 2, 1), (3, 1, 1), (5, 1, 2), (6, 2, 2), (5, 3, 1),
                                   (3, 2, 1)])
def test_conv_transpose_matches_torch(k, s, p):
  rng = np.random.default_rng(k)
  x = rng.normal(size=(3, 5, 5))
  weight = rng.normal(size=(3, 4, k, k))
  module = layers.ConvTranspose2d(4, k, s, p)
  kernel = weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)  # documented conversion
  params = {'params': {'conv': {'kernel': jnp.asarray(kernel, jnp.float32),
                                'bias': jnp.zeros(4)}}}
  got = module.apply(params, jnp.asarray(x.transpose(1, 2, 0)[None], jnp.float32))[0]
  want = _torch_conv_transpose(x, weight, s, p).transpose(1, 2, 0)
  assert got.shape == want.shape
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)


def test_phase_conv_transpose_equals_dilated_form_with_gradients():
  """The per-phase stride-1 form computes the same sums as lax.conv_transpose (input dilated
  by s), forward and backward, up to float32 summation order."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 6, 5, 8)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(4, 4, 8, 3)), jnp.float32)
  cotangent = jnp.asarray(rng.normal(size=(2, 12, 10, 3)), jnp.float32)

  def dilated(x, kernel):
    return jax.lax.conv_transpose(x, kernel, (2, 2), ((2, 2), (2, 2)),
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def phases(x, kernel):
    return layers.conv_transpose(x, kernel, 2, 1)

  for f in (phases, dilated):
    assert f(x, kernel).shape == (2, 12, 10, 3)
  want, want_vjp = jax.vjp(dilated, x, kernel)
  got, got_vjp = jax.vjp(phases, x, kernel)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  for g, w in zip(got_vjp(cotangent), want_vjp(cotangent)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4)


def _torch_conv(x, weight, stride, padding):
  """NumPy torch Conv2d (no bias): x (C_in, H, W), weight (C_out, C_in, k, k)."""
  c_out, _, k, _ = weight.shape
  xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
  size = (x.shape[1] + 2 * padding - k) // stride + 1
  out = np.zeros((c_out, size, size))
  for i in range(size):
    for j in range(size):
      patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k]
      out[:, i, j] = np.einsum('cij,ocij->o', patch, weight)
  return out


def test_spectral_conv_matches_torch_eval_and_train_mode():
  """σ = u·(W_mat v) with torch's (out, in·kh·kw) flattening; one power iteration in train
  mode, none in eval mode."""
  rng = np.random.default_rng(1)
  weight = rng.normal(size=(4, 3, 5, 5))  # torch (out, in, kh, kw)
  w_mat = weight.reshape(4, -1)
  u = rng.normal(size=4)
  u /= np.linalg.norm(u)
  v = rng.normal(size=75)
  v /= np.linalg.norm(v)
  x = rng.normal(size=(3, 8, 8))
  variables = {
      'params': {'kernel': jnp.asarray(weight.transpose(2, 3, 1, 0), jnp.float32),
                 'bias': jnp.zeros(4)},
      'spectral': {'u': jnp.asarray(u, jnp.float32), 'v': jnp.asarray(v, jnp.float32)}}
  module = layers.SNConv2d(4, 5, 2, 2)
  x_nhwc = jnp.asarray(x.transpose(1, 2, 0)[None], jnp.float32)

  out, state = module.apply(variables, x_nhwc, update_stats=False, mutable=['spectral'])
  sigma = u @ w_mat @ v
  want = _torch_conv(x, weight / sigma, 2, 2).transpose(1, 2, 0)
  np.testing.assert_allclose(np.asarray(out[0]), want, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(np.asarray(state['spectral']['u']), np.float32(u))

  out, state = module.apply(variables, x_nhwc, update_stats=True, mutable=['spectral'])
  v1 = w_mat.T @ u
  v1 /= np.linalg.norm(v1)
  u1 = w_mat @ v1
  u1 /= np.linalg.norm(u1)
  np.testing.assert_allclose(np.asarray(state['spectral']['u']), u1, atol=1e-5)
  np.testing.assert_allclose(np.asarray(state['spectral']['v']), v1, atol=1e-5)
  want = _torch_conv(x, weight / (u1 @ w_mat @ v1), 2, 2).transpose(1, 2, 0)
  np.testing.assert_allclose(np.asarray(out[0]), want, rtol=1e-4, atol=1e-4)


def _numpy_instance_norm(x):
  mean = x.mean(axis=(1, 2), keepdims=True)
  return (x - mean) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)


def test_spectral_instance_norm_gain_has_unit_norm():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2, 4, 4, 6)).astype(np.float32)
  module = layers.SNInstanceNorm()
  variables = module.init(jax.random.key(0), x, update_stats=False)
  assert variables['spectral']['v'].shape == (1,)
  normed = _numpy_instance_norm(x)
  out, state = module.apply(variables, x, update_stats=True, mutable=['spectral'])
  gain = np.asarray(out - variables['params']['bias'])[0, 0, 0] / normed[0, 0, 0]
  np.testing.assert_allclose(np.linalg.norm(gain), 1.0, rtol=1e-4)
  np.testing.assert_allclose(np.abs(gain), np.abs(np.asarray(variables['params']['scale'])) /
                             np.linalg.norm(variables['params']['scale']), rtol=1e-4)
  # Eval mode with the iterated vectors keeps the unit norm; the initial random u does not.
  out = module.apply({**variables, **state}, x, update_stats=False)
  gain = np.asarray(out)[0, 0, 0] / normed[0, 0, 0]
  np.testing.assert_allclose(np.linalg.norm(gain), 1.0, rtol=1e-4)
  out = module.apply(variables, x, update_stats=False)
  gain = np.asarray(out)[0, 0, 0] / normed[0, 0, 0]
  assert abs(np.linalg.norm(gain) - 1.0) > 1e-3


def test_adain_scale_then_shift_and_constant_broadcast():
  rng = np.random.default_rng(3)
  c = 3
  constant = rng.normal(size=(1, 4, 4, c)).astype(np.float32)
  z = rng.normal(size=(5, 2)).astype(np.float32)
  module = layers.AdaIN()
  variables = module.init(jax.random.key(0), constant, z)
  out = np.asarray(module.apply(variables, constant, z))
  assert out.shape == (5, 4, 4, c)
  kernel = np.asarray(variables['params']['mlp']['kernel'])
  style = np.maximum(z @ kernel + np.asarray(variables['params']['mlp']['bias']), 0.0)
  want = style[:, None, None, :c] * _numpy_instance_norm(constant) + style[:, None, None, c:]
  np.testing.assert_allclose(out, want, atol=1e-5)
  # The batch-1 constant gives the same as the constant tiled to the batch.
  tiled = module.apply(variables, np.repeat(constant, 5, axis=0), z)
  np.testing.assert_allclose(np.asarray(tiled), out, atol=1e-6)


def test_initialisers_follow_reference():
  key = jax.random.key(0)
  conv = np.asarray(layers.conv_init(key, (64, 64, 8, 8)))
  assert np.abs(conv).max() <= 0.04 + 1e-7  # truncated at ±2σ
  assert 0.015 < conv.std() < 0.02  # truncation shrinks the std below 0.02 (≈ 0.88σ)
  dense = np.asarray(layers.dense_init(key, (256, 256)))
  assert np.abs(dense).max() > 0.04 and abs(dense.std() - 0.02) < 1e-3


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_strided_conv_gradients_equal_autodiff_of_lax_conv(dtype):
  """layers.strided_conv (D's SN convs) has lax's forward and, through its phase-form
  input gradient, the same gradients as autodiff of the lax convolution."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 8, 8, 6)), dtype)
  kernel = jnp.asarray(rng.normal(size=(5, 5, 6, 4)), dtype)
  cotangent = jnp.asarray(rng.normal(size=(2, 4, 4, 4)), jnp.float32)

  def lax_conv(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((2, 2), (2, 2)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                        preferred_element_type=jnp.float32)

  want, want_vjp = jax.vjp(lax_conv, x, kernel)
  got, got_vjp = jax.vjp(lambda x, w: layers.strided_conv(x, w, 2, 2), x, kernel)
  assert got.dtype == jnp.float32
  np.testing.assert_array_equal(got, want)
  tol = 1e-4 if dtype == jnp.float32 else 5e-2
  for g, w in zip(got_vjp(cotangent), want_vjp(cotangent)):
    assert g.dtype == dtype and g.shape == w.shape
    scale = float(jnp.abs(w.astype(jnp.float32)).max())
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32),
                               atol=tol * scale)
