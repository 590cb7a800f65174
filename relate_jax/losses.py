"""Every loss term of RELATE in one place, grouped by phase (REFERENCE.md §4).

Discriminator phase (one update per iteration):
  gan:        BCE(D(x), 1) + BCE(D(G(z)), 0)
  style:      Σ_l BCE(D_l(x), 1) + Σ_l BCE(D_l(G(z)), 0)      (weight loss.style_disc)
  position:   ‖P(G(W(z0, z_k, θ_k))) − θ̌_k‖²  on the single-object render (ordered
              model: on the full stack, θ̌ = θ_1; video: frame 0, θ̌ = sg(θ_k(0)) + D_s)
  penalty:    DRAGAN gradient penalty on perturbed real images   (weight loss.gradient_penalty)
Generator phase (M updates per iteration):
  gan:        BCE(D(G(z)), 1)  (non-saturating)
  style:      Σ_l BCE(D_l(G(z)), 1)                             (weight loss.style_gen, 0 by default)
  position:   same regression, gradient reaching G and Γ through the rendered position

θ̌ is the selected object's corrected pose under stop_gradient (paper §3.3), so the
position loss cannot collapse the poses to zero.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


def bce(logits: jax.Array, target: float) -> jax.Array:
  """Mean binary cross-entropy with logits against a constant label."""
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


def style_bce(style_logits: jax.Array, target: float) -> jax.Array:
  """Σ over style heads of the per-head mean BCE; style_logits (B, L)."""
  labels = jnp.full_like(style_logits, target)
  return optax.sigmoid_binary_cross_entropy(style_logits, labels).mean(axis=0).sum()


def selected_pose(poses: jax.Array, select: jax.Array) -> jax.Array:
  """The pose of each sample's selected slot: poses (B, K, 2), select (B,) -> (B, 2)."""
  return jnp.take_along_axis(poses, select[:, None, None], axis=1)[:, 0]


def position_loss(prediction: jax.Array, target: jax.Array) -> jax.Array:
  """Mean squared error over (B, 2) between P's prediction and the target θ̌.

  The caller detaches the target (`steps.Phases.generate`: θ̌ = sg(θ_select); the video
  model's target keeps its displacement part attached, as the reference).
  """
  return jnp.mean((prediction - target) ** 2)


def gradient_penalty(logit_fn: Callable[[jax.Array], tuple[jax.Array, Any]], real: jax.Array,
                     key: jax.Array) -> tuple[jax.Array, Any]:
  """DRAGAN-style penalty mean_b (‖∇_x̃ D(x̃)‖₂ − 1)² around the real images.

  x̃ = x + α·(y − x) with y = x + 0.5·std(x)·β, β ~ U[0, 1) per element, α ~ U[0, 1) per
  sample and std the unbiased standard deviation of the whole batch, as the reference.

  Args:
    logit_fn: images (B, H, W, C) -> (real/fake logits (B,), aux). Samples must not
      interact (D normalises per instance), so the gradient of the sum is per-sample.
      aux (e.g. D's updated spectral-norm vectors) is passed through.
    real: real images (B, H, W, C).
    key: PRNG key.

  Returns:
    (penalty, aux).
  """
  key_beta, key_alpha = jax.random.split(key)
  beta = jax.random.uniform(key_beta, real.shape, real.dtype)
  perturbed = real + 0.5 * jnp.std(real, ddof=1) * beta
  alpha = jax.random.uniform(key_alpha, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  interpolated = jax.lax.stop_gradient(real + alpha * (perturbed - real))
  def total(x):
    logits, aux = logit_fn(x)
    return logits.sum(), aux

  grads, aux = jax.grad(total, has_aux=True)(interpolated)
  norms = jnp.sqrt(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1) + 1e-12)
  return jnp.mean((norms - 1.0) ** 2), aux
