"""The discriminator D with style heads and the position head P (REFERENCE §2.6, `GAN_disc`).

With n = log2(S/4) stride-2 convolutions (5 at 128 px, 6 at 256 px, 3 at 32 px) and channels
c_i = model.disc_channels[i] (last entry repeated, e.g. the 256 px conv6):
  conv1 Conv(k5 s2 p2) (no SN) + LReLU(0.2);
  for i = 2..n: SN Conv(k5 s2 p2); a style head Dense(2c_i → 1) (no SN) on
    [spatial mean, unbiased spatial variance] of the conv output (convs 2..5 only, as the
    reference's class1-4); SN InstanceNorm (unit-norm gain) + LReLU(0.2);
  flatten in torch's (C, H, W) order; SN Dense → 1 real/fake logit; SN Dense → 2, tanh →
  position P.

Mixed precision: convolutions, instance norms and the SN dense heads compute in
model.compute_dtype; the style statistics and heads, the tanh and every output are float32.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from relate_jax.models import layers

Array = jax.Array

MAX_STYLE_HEADS = 4  # The reference's class1..class4.


def frames_to_channels(clips: Array) -> Array:
  """Clips (B, T, S, S, 3) → D input (B, S, S, 3T), frames concatenated on channels in the
  reference's order (channel 3t + c), so its video disc_conv1 weights convert as is."""
  b, t, h, w, c = clips.shape
  return jnp.moveaxis(clips, 1, 3).reshape(b, h, w, t * c)


class Discriminator(nn.Module):
  """D. config: config.model; the image size comes from the input.

  Module names (torch names): conv1 (disc_conv1), conv2..n (disc_conv2..), inorm1..n−1
  (inorm1..), style1..4 (class1..4), logit (dh4), position (enc). Spectral-norm vectors
  live in the 'spectral' collection; update_stats=True runs one power iteration per SN
  layer (torch train mode) and needs mutable=['spectral'].
  """
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, images: Array, *, update_stats: bool) -> dict[str, Array]:
    """images (B, S, S, C) → {'logit': (B,), 'position': (B, 2), 'style': (B, L)}."""
    b, size = images.shape[0], images.shape[1]
    n = round(math.log2(size / 4))
    if size != 4 * 2**n or n < 2:
      raise ValueError(f'discriminator input side {size} must be 4·2^n with n >= 2')
    ch = self.config.disc_channels
    dt = layers.compute_dtype(self.config)
    pick = lambda i: ch[min(i, len(ch) - 1)]
    x = layers.leaky_relu(layers.Conv2d(pick(0), 5, 2, 2, dt, name='conv1')(images))
    styles = []
    for i in range(1, n):
      x = layers.SNConv2d(pick(i), 5, 2, 2, dt, name=f'conv{i + 1}')(
          x, update_stats=update_stats)
      if i <= MAX_STYLE_HEADS:
        x32 = x.astype(jnp.float32)
        stats = jnp.concatenate([jnp.mean(x32, axis=(1, 2)), jnp.var(x32, axis=(1, 2), ddof=1)],
                                -1)
        styles.append(layers.dense(1, name=f'style{i}')(stats)[:, 0])
      x = layers.SNInstanceNorm(dt, name=f'inorm{i}')(x, update_stats=update_stats)
      x = layers.leaky_relu(x)
    flat = jnp.transpose(x, (0, 3, 1, 2)).reshape(b, -1)  # torch's (C, H, W) order
    logit = layers.SNDense(1, dt, name='logit')(flat, update_stats=update_stats)[:, 0]
    logit = logit.astype(jnp.float32)
    position = jnp.tanh(layers.SNDense(2, dt, name='position')(
        flat, update_stats=update_stats).astype(jnp.float32))
    return {'logit': logit, 'position': position, 'style': jnp.stack(styles, axis=1)}
