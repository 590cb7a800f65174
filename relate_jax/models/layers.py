"""Building blocks with PyTorch semantics, in NHWC.

Every layer here reproduces the numerics of the torch layer the RELATE reference uses
(REFERENCE.md §2, §3.3), so that reference checkpoints convert by re-laying out arrays only:

* Linear (out, in)            -> ``nn.Dense`` kernel ``W.T``.
* Conv2d (out, in, kh, kw)    -> :class:`Conv2d` kernel ``W.transpose(2, 3, 1, 0)``.
* ConvTranspose2d (in, out, kh, kw) -> :class:`ConvTranspose2d` kernel
  ``W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)`` (a flipped kernel, ``transpose_kernel=False``).
* spectral_norm's ``weight_u`` / ``weight_v`` -> ``spectral/<layer>/u`` and ``.../v`` unchanged
  (the kernel is flattened in torch's (out, in·kh·kw) order, see :func:`torch_matrix`).

Mixed precision (``model.compute_dtype``): parameters are always float32 (the master weights
the optimizer sees); layers with a ``dtype`` cast their input and their kernel to it inside
the module, so activations and matmuls run in that dtype while gradients arrive in float32.
Instance-norm statistics and spectral-norm power iterations and σ are always float32.
"""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}

# REFERENCE §2.7 (`weight_init`): convolutions ~ N(0, 0.02) truncated at ±2σ, linear layers
# ~ N(0, 0.02), biases 0, learned constants 0.02·N(0, 1), affine IN gains N(0, 0.02).
conv_init = nn.initializers.truncated_normal(stddev=0.02, lower=-2.0, upper=2.0)
dense_init = nn.initializers.normal(stddev=0.02)
constant_init = nn.initializers.normal(stddev=0.02)
gain_init = nn.initializers.normal(stddev=0.02)
zeros = nn.initializers.zeros

SN_EPS = 1e-12  # torch.nn.utils.spectral_norm default.
IN_EPS = 1e-5  # torch.nn.InstanceNorm2d default.


def compute_dtype(model_config) -> jnp.dtype:
  """The activation/matmul dtype named by ``model.compute_dtype``."""
  return COMPUTE_DTYPES[model_config.compute_dtype]


def leaky_relu(x: Array, slope: float = 0.2) -> Array:
  return jnp.where(x >= 0, x, slope * x)


def dense(features: int, name: str | None = None, dtype=jnp.float32) -> nn.Dense:
  """torch Linear with the reference initialisation; computes in `dtype` (params float32)."""
  return nn.Dense(features, kernel_init=dense_init, bias_init=zeros, dtype=dtype,
                  param_dtype=jnp.float32, name=name)


class Mlp(nn.Module):
  """Linear → LReLU(0.2) → … → Linear, optionally followed by `final` (e.g. tanh).

  Submodules are named ``layers_0``, ``layers_1``, … in torch Sequential order of the
  Linear layers (torch indices 0, 2, 4).
  """
  features: tuple[int, ...]
  final: Callable[[Array], Array] | None = None
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    for i, f in enumerate(self.features):
      x = dense(f, name=f'layers_{i}', dtype=self.dtype)(x)
      if i < len(self.features) - 1:
        x = leaky_relu(x)
    return self.final(x) if self.final is not None else x


class Conv2d(nn.Module):
  """torch Conv2d(in → features, k, stride, padding) on NHWC input."""
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    p = self.padding
    return nn.Conv(self.features, (self.kernel_size,) * 2, strides=(self.stride,) * 2,
                   padding=((p, p), (p, p)), kernel_init=conv_init, bias_init=zeros,
                   dtype=self.dtype, param_dtype=jnp.float32, name='conv')(x)


def _phase_taps(kernel_size: int, stride: int, padding: int, phase: int) -> tuple[list, int]:
  """Taps of one output phase of a 1-D transposed convolution.

  Output o = s·m + a receives x[i]·W_torch[t] for o = s·i − p + t, i.e. i = m + (a + p − t)/s.
  Returns the Flax (flipped) kernel indices k − 1 − t ordered by increasing input offset,
  and the smallest offset (a + p − t)/s (0 when the phase has no taps).
  """
  taps = [t for t in range(kernel_size) if (phase + padding - t) % stride == 0]
  offsets = [(phase + padding - t) // stride for t in taps]
  order = sorted(range(len(taps)), key=lambda j: offsets[j])
  return [kernel_size - 1 - taps[j] for j in order], min(offsets, default=0)


def conv_transpose(x: Array, kernel: Array, stride: int, padding: int,
                   output_padding: int = 0) -> Array:
  """torch conv_transpose2d on NHWC input with the flipped Flax kernel (kh, kw, in, out).

  Computed as s² stride-1 convolutions, one per output phase (a, b) — the taps W[t] with
  t ≡ a + p (mod s) — interleaved by depth-to-space: the sums of the input-dilated
  formulation without its multiplications by inserted zeros. On XLA CPU the dilated form's
  backward pass is 20-40x slower at the generator's shapes.
  x: (N, H, W, C_in) → (N, H', W', C_out), H' = (H − 1)·s − 2p + k + output_padding.
  """
  k, s, p = kernel.shape[0], stride, padding
  n, h, w, _ = x.shape
  out_h, out_w = ((h - 1) * s - 2 * p + k + output_padding,
                  (w - 1) * s - 2 * p + k + output_padding)
  m_h, m_w = -(-out_h // s), -(-out_w // s)  # outputs per phase (the last phases cropped)
  taps = [_phase_taps(k, s, p, a) for a in range(s)]
  rows = []
  for rows_taps, dy in taps:
    cols = []
    for cols_taps, dx in taps:
      if not rows_taps or not cols_taps:
        cols.append(jnp.zeros((n, m_h, m_w, kernel.shape[-1]), x.dtype))
        continue
      sub = kernel[np.array(rows_taps)[:, None], np.array(cols_taps)[None, :]]
      # Output m reads x[m + dy … m + dy + taps − 1]; zeros outside the input.
      pad = ((-dy, m_h - h + dy + len(rows_taps) - 1), (-dx, m_w - w + dx + len(cols_taps) - 1))
      cols.append(jax.lax.conv_general_dilated(x, sub, (1, 1), pad,
                                               dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
    rows.append(jnp.stack(cols, 3))  # (N, m_h, m_w, s_x, C)
  y = jnp.stack(rows, 2).reshape(n, s * m_h, s * m_w, kernel.shape[-1])  # (N, m_h, s_y, …)
  return y[:, :out_h, :out_w]


def _strided_conv_forward(x: Array, kernel: Array, stride: int, padding: int) -> Array:
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((padding, padding),) * 2,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      preferred_element_type=jnp.float32)


_strided_conv = jax.custom_vjp(_strided_conv_forward, nondiff_argnums=(2, 3))


def _strided_conv_fwd(x, kernel, stride, padding):
  return _strided_conv_forward(x, kernel, stride, padding), (x, kernel)


def _strided_conv_bwd(stride, padding, residuals, cotangent):
  x, kernel = residuals
  # ∂x is the transposed convolution of the cotangent with the same taps (flipped for
  # conv_transpose's convention, in/out swapped), output-padded back to x's size.
  k, h = kernel.shape[0], x.shape[1]
  extra = h - ((cotangent.shape[1] - 1) * stride - 2 * padding + k)
  flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)
  dx = conv_transpose(cotangent.astype(x.dtype), flipped, stride, padding, extra)
  _, kernel_vjp = jax.vjp(lambda w: _strided_conv_forward(x, w, stride, padding), kernel)
  return dx.astype(x.dtype), kernel_vjp(cotangent)[0]


_strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def strided_conv(x: Array, kernel: Array, stride: int, padding: int) -> Array:
  """torch conv2d(x, W, stride, padding) on NHWC input, kernel (kh, kw, in, out), float32
  output (accumulated in float32 for bf16 operands).

  Same forward as lax; the input gradient is computed by :func:`conv_transpose` (stride-1
  phase convolutions) instead of XLA's input-dilated convolution, which on CPU takes ~28 s
  for D's conv5 at batch 8 (8x8x512 → 4x4x1024) against ~1 s here. Square inputs.
  """
  return _strided_conv(x, kernel, stride, padding)


class _ConvTransposeKernel(nn.Module):
  """Parameters 'kernel' (kh, kw, in, out) and 'bias' of a ConvTranspose2d (the layout of
  nn.ConvTranspose, so checkpoints and converters are unchanged) and the layer's maths."""
  features: int
  kernel_size: int
  stride: int
  padding: int
  dtype: jnp.dtype

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    kernel = self.param('kernel', conv_init, (k, k, x.shape[-1], self.features))
    bias = self.param('bias', zeros, (self.features,))
    y = conv_transpose(x.astype(self.dtype), kernel.astype(self.dtype), self.stride,
                       self.padding)
    return y + bias.astype(self.dtype)


class ConvTranspose2d(nn.Module):
  """torch ConvTranspose2d(in → features, k, stride, padding) on NHWC input.

  Output side (H − 1)·s − 2p + k, as torch; see :func:`conv_transpose`. The kernel
  (kh, kw, in, out) is the torch kernel flipped spatially (see the module docstring).
  """
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    return _ConvTransposeKernel(self.features, self.kernel_size, self.stride, self.padding,
                                self.dtype, name='conv')(x)


def instance_norm(x: Array, eps: float = IN_EPS) -> Array:
  """InstanceNorm2d(affine=False): per sample and channel over H, W, biased variance.

  x: (N, H, W, C). Statistics and normalisation in float32; the result has x's dtype.
  """
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
  var = jnp.mean(jnp.square(x32 - mean), axis=(1, 2), keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


class AdaIN(nn.Module):
  """Adaptive instance norm: ẑ = ReLU(Dense(2C)(z)); out = ẑ[:C] ⊙ IN(x) + ẑ[C:].

  x: (N, H, W, C) or the batch-1 learned constant (1, H, W, C), which is normalised once
  and broadcast to the batch of `z`; z: (B, L). Returns (B, H, W, C) in `dtype`.
  """
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, z: Array) -> Array:
    c = x.shape[-1]
    style = nn.relu(dense(2 * c, name='mlp', dtype=self.dtype)(z))
    scale, shift = style[:, None, None, :c], style[:, None, None, c:]
    return scale * instance_norm(x).astype(self.dtype) + shift


def _normalize(x: Array) -> Array:
  """torch F.normalize(x, dim=0, eps=1e-12)."""
  return x / jnp.maximum(jnp.linalg.norm(x), SN_EPS)


def torch_matrix(kernel: Array) -> Array:
  """A Flax kernel as torch's spectral-norm matrix (out, in·kh·kw).

  Dense (in, out) → (out, in); Conv (kh, kw, in, out) → (out, in, kh, kw) flattened, i.e.
  the row layout of torch's `weight.reshape(out, -1)`, so stored `v` vectors match torch's
  `weight_v` element for element.
  """
  if kernel.ndim == 2:
    return kernel.T
  return jnp.transpose(kernel, (3, 2, 0, 1)).reshape(kernel.shape[-1], -1)


def spectral_sigma(module: nn.Module, w_mat: Array, update_stats: bool) -> Array:
  """σ(W) by torch's spectral_norm rule, with (u, v) in `module`'s 'spectral' collection.

  update_stats=True (torch train mode): one power iteration v ← n(Wᵀu), u ← n(W v) on
  stop-gradient copies, the new u, v are stored; σ = u·(W v) differentiates through W only.
  update_stats=False (torch eval mode): σ = u·(W v) with the stored vectors. At
  initialisation u, v are normalised N(0, 1) draws and no iteration runs (torch's state at
  construction).

  w_mat: (out, in) matrix. Returns the scalar σ.
  """
  out_dim, in_dim = w_mat.shape
  u_var = module.variable('spectral', 'u',
                          lambda: _normalize(jax.random.normal(module.make_rng('params'),
                                                               (out_dim,))))
  v_var = module.variable('spectral', 'v',
                          lambda: _normalize(jax.random.normal(module.make_rng('params'),
                                                               (in_dim,))))
  u, v = u_var.value, v_var.value
  if update_stats and not module.is_initializing():
    w = jax.lax.stop_gradient(w_mat)
    v = _normalize(w.T @ u)
    u = _normalize(w @ v)
    u_var.value, v_var.value = u, v
  return jnp.dot(u, w_mat @ v)


class SNConv2d(nn.Module):
  """spectral_norm(Conv2d(in → features, k, stride, padding)); params 'kernel' (the raw
  `weight_orig`, (kh, kw, in, out)) and 'bias'. Multiplies in `dtype`, returns float32."""
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, update_stats: bool) -> Array:
    k, p = self.kernel_size, self.padding
    kernel = self.param('kernel', conv_init, (k, k, x.shape[-1], self.features))
    bias = self.param('bias', zeros, (self.features,))
    sigma = spectral_sigma(self, torch_matrix(kernel), update_stats)
    # W/σ is formed in float32, then cast to the compute dtype. The output is float32: in D
    # an instance norm and a style head's mean/variance follow, and a bf16 output would
    # round the cotangent before the bias-gradient sum (whose terms largely cancel under IN).
    w = (kernel / sigma).astype(self.dtype)
    return strided_conv(x.astype(self.dtype), w, self.stride, p) + bias


class SNDense(nn.Module):
  """spectral_norm(Linear(in → features)); params 'kernel' (in, out) and 'bias'."""
  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, update_stats: bool) -> Array:
    kernel = self.param('kernel', dense_init, (x.shape[-1], self.features))
    bias = self.param('bias', zeros, (self.features,))
    sigma = spectral_sigma(self, torch_matrix(kernel), update_stats)
    w = (kernel / sigma).astype(self.dtype)
    return x.astype(self.dtype) @ w + bias.astype(self.dtype)


class SNInstanceNorm(nn.Module):
  """spectral_norm(InstanceNorm2d(C, affine=True)): IN with gain γ/σ(γ) and bias β.

  The gain (C,) is seen by torch as a (C, 1) matrix, so σ is its L2 norm and the effective
  gain has unit norm; v has shape (1,). Params 'scale' (torch `weight_orig`) and 'bias'.
  x: (N, H, W, C); the output has `dtype`.
  """
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, update_stats: bool) -> Array:
    c = x.shape[-1]
    gain = self.param('scale', gain_init, (c,))
    bias = self.param('bias', zeros, (c,))
    sigma = spectral_sigma(self, gain[:, None], update_stats)
    normed = instance_norm(x).astype(self.dtype)
    return normed * (gain / sigma).astype(self.dtype) + bias.astype(self.dtype)
