"""Pose correction: the interaction module Γ (relate_static) and the Markov stack chain
(relate_static_order).

Γ (REFERENCE §2.1 `NPE`, paper eq. 1-2). Per object o_k = [z_k, x̂_k, ŷ_k, 0, 0] (the two
zeros are the reference's unused velocity slots), env = z0:
  h_k = Σ_{j≠k} m_j f([o_k, o_j]),
  Δ_k = m_k g([o_k, h_k, z0]) − 2(1 − m_k),
with f = `interaction` (Linear(2(Nf+4)→h), LReLU .2, Linear(h→h), LReLU .2, Linear(h→h)) and
g = `v` (Linear(h+Nf+4+Nb→h), LReLU .2, Linear(h→h), LReLU .2, Linear(h→2), Tanh). The
reference loops over ordered pairs; here f runs once on all (B, K, K) pairs and the diagonal
and absent partners are masked, so Γ is permutation-equivariant by construction.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from relate_jax.models import layers

Array = jax.Array


def pairwise_update(objects: Array, partners: Array, env: Array, hidden: int,
                    out_features: int) -> Array:
  """g([o_k, Σ_{j≠k} m_j f([o_k, o_j]), env]) for every object k, without the output mask.

  The shared core of Γ and of the dynamics Γ_v (reference `NPE`): f = `interaction`
  (Linear(2D→h), LReLU .2, Linear(h→h), LReLU .2, Linear(h→h)) runs once on all (B, K, K)
  ordered pairs, g = `v` (Linear(h+D+E→h), LReLU .2, Linear(h→h), LReLU .2,
  Linear(h→out), Tanh); both are created in the calling module. objects o (B, K, D);
  partners m (B, K), the weight of each object as a partner (its presence); env (B, E).
  Returns (B, K, out_features).
  """
  b, k, d = objects.shape
  pairs = jnp.concatenate([
      jnp.broadcast_to(objects[:, :, None, :], (b, k, k, d)),
      jnp.broadcast_to(objects[:, None, :, :], (b, k, k, d)),
  ], -1)  # pairs[b, k, j] = [o_k, o_j]
  messages = layers.Mlp((hidden, hidden, hidden), name='interaction')(pairs)
  weights = partners[:, None, :] * (1.0 - jnp.eye(k, dtype=partners.dtype))
  effects = jnp.einsum('bkj,bkjh->bkh', weights, messages)
  env = jnp.broadcast_to(env[:, None, :], (b, k, env.shape[-1]))
  return layers.Mlp((hidden, hidden, out_features), final=jnp.tanh, name='v')(
      jnp.concatenate([objects, effects, env], -1))


class Interaction(nn.Module):
  """Γ: corrected poses θ from initial poses θ̂ (relate_static).

  config: config.model. Call with appearance z (B, K, Nf), poses θ̂ (B, K, 2), present m
  (B, K) and background z0 (B, Nb); returns θ (B, K, 2):
    residual=True:  θ = clamp(coeff_xy·θ̂ + xy_mod·Δ, ±pose_clamp)   (reference)
    residual=False: θ = clamp(xy_mod·Δ, ±pose_clamp)   ("w/o residual": θ̂ only reaches θ
                    through Γ's input)
  and absent slots are set to absent_pose (the reference gets there through Δ = −2 and the
  clamp: −2 + 0.5·(−2) → −3 → −2).
  """
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, appearance: Array, poses: Array, present: Array,
               background: Array) -> Array:
    c = self.config
    h = c.interaction_hidden
    b, k, _ = appearance.shape
    objects = jnp.concatenate([appearance, poses, jnp.zeros((b, k, 2), poses.dtype)], -1)
    delta = pairwise_update(objects, present, background, h, 2)
    m = present[..., None]
    delta = m * delta - 2.0 * (1.0 - m)
    theta = c.xy_mod * delta
    if c.residual:
      theta = theta + c.coeff_xy * poses
    theta = jnp.clip(theta, -c.pose_clamp, c.pose_clamp)
    return jnp.where(m > 0, theta, c.absent_pose)


class StackChain(nn.Module):
  """Markov pose chain for stacked scenes (relate_static_order, REFERENCE §2.3, paper eq. 3).

  θ_1 = θ̂_1 + 0.5·tanh(f0([z0, z_1, θ̂_1])) for the bottom object; for k ≥ 2 with
  r = f1([z_{k−1}, z0] (+ θ_{k−1} when order_f1_sees_pose)) on stop-gradient inputs:
  x_k = sg(x_{k−1}) + 0.2·tanh(r_x), y_k = sg(y_{k−1}) + 0.1 + order_offset·sigmoid(r_y).
  f0 = `mlp_xy` (Nb+Nf+2 → 128 → 64 → 2), f1 = `mlp_xy_rec` (Nf+Nb(+2) → 128 → 64 → 2). The
  chain is an `nn.scan` (lax.scan with f1's params broadcast) over k. Slots above the stack
  (present = 0) end at absent_pose; no clamp, as the reference.

  Call with z (B, K, Nf), θ̂ (B, K, 2) (only θ̂_1 is read), present (B, K), z0 (B, Nb);
  returns θ (B, K, 2).
  """
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, appearance: Array, poses: Array, present: Array,
               background: Array) -> Array:
    c = self.config
    b, k, _ = appearance.shape
    bottom = poses[:, 0] + 0.5 * jnp.tanh(layers.Mlp((128, 64, 2), name='mlp_xy')(
        jnp.concatenate([background, appearance[:, 0], poses[:, 0]], -1)))
    # Inputs of step k (k = 2..K): the previous object's code and z0, detached.
    below = jax.lax.stop_gradient(jnp.concatenate([
        appearance[:, :-1],
        jnp.broadcast_to(background[:, None], (b, k - 1, background.shape[-1]))], -1))
    chain = nn.scan(_StackStep, variable_broadcast='params', split_rngs={'params': False},
                    in_axes=1, out_axes=1)
    _, above = chain(c, name='mlp_xy_rec')(bottom, below)
    theta = jnp.concatenate([bottom[:, None], above], 1)
    return jnp.where(present[..., None] > 0, theta, c.absent_pose)


class _StackStep(nn.Module):
  """One step of the stack chain: f1 (`mlp_xy_rec`) and the constrained upward move.

  pose θ_{k−1} (B, 2), inputs [z_{k−1}, z0] (B, Nf+Nb); returns (θ_k, θ_k).
  """
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, pose: Array, inputs: Array) -> tuple[Array, Array]:
    c = self.config
    previous = jax.lax.stop_gradient(pose)
    if c.order_f1_sees_pose:
      inputs = jnp.concatenate([inputs, previous], -1)
    r = inputs
    for i, f in enumerate((128, 64, 2)):
      r = layers.dense(f, name=f'layers_{i}')(r)
      if i < 2:
        r = layers.leaky_relu(r)
    new = previous + jnp.stack(
        [0.2 * jnp.tanh(r[:, 0]), 0.1 + c.order_offset * jax.nn.sigmoid(r[:, 1])], -1)
    return new, new
