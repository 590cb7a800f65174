"""The RELATE video generator (relate_video; paper §3.2 eq. 4, REFERENCE §2.4).

Poses and velocities of K objects over time, rendered with the static generator's pieces:

  θ(0)   = Γ(z, θ̂, m, z0)                       static Γ, clamped to ±pose_clamp (0.8);
                                                  absent slots at absent_pose (−1.8)
  V(0)   = m · e_v([z_k, sg(θ_k(0)), z0])        the last P = 3 velocities (history only)
  v(t+1) = Γ_v([z_k ×P, θ_k(t), V_k(t)], z0)     pairwise dynamics over all ordered pairs
  θ(t+1) = θ(t) + v(t+1)                          one `nn.scan` (lax.scan) over t
  D_0 = 0, D_t = Σ_{u≤t} v(u);   frame i shows θ(0) + D_{s+i}, i = 0 … F−1

e_v = `speed` (Linear(Nf+2+Nb → 128), LReLU .2, Linear(128 → 128), LReLU .2,
Linear(128 → 2P), Tanh: first P outputs vx oldest → newest, then vy). Γ_v = `dynamics`
(the `pairwise_update` core shared with Γ) on per-object inputs of size P·Nf + 2 + 2P
(Nf + 2 + 2P with fixed objects) with output 2 + Nf (2 with fixed objects); only the two
velocity outputs are used (the reference multiplies the appearance outputs by 0).

Presence in Γ_v: corrected by default — absent objects have zero velocity and are no
partner of anyone, so they never move and never change others' trajectories. The
reference masks on element −4 of the input, the latest vx (always > −1), so absent cars
act as present (REFERENCE §9.15): `model.reference_presence_bug=True` reproduces that,
including its −2 output for a masked slot.

The rollout length `steps` is static: training uses model.rollout_steps (20) with a random
start s per sample (`Latents.start`); sampling uses s = sample_start and
steps = s + F − 1, so any length compiles once (the scan does not unroll).

Rendering (REFERENCE: the generator runs once per frame): Ψf and Ψb do not depend on time
and run once per sample; the B·F scenes (plus the single-object render of frame 0) are
placed, composed and decoded by G as one batch. For long or large clips `model.render_chunk`
> 0 decodes that many frames per G call inside a lifted scan: chunking rather than remat,
because sampling is forward-only (remat saves nothing without a backward pass) and the
chunk bounds the live activations of G, which dominate memory, to B·chunk scenes.
Training (T = 10 or 15 frames) keeps one batch.

The object decoder and sc take z' = [z_k, 0, 0] (Nf + 2 inputs), as the reference's video
generator, whose two extra latent inputs are always zero; the parameter layout therefore
equals the reference's (REFERENCE §3.2).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from relate_jax.models import layers
from relate_jax.models.generator import (BackgroundDecoder, composition_masks, corrected_poses,
                                         object_scales, object_windows, render_frames,
                                         scene_constants)
from relate_jax.models.interaction import pairwise_update
from relate_jax.models.latents import Latents

Array = jax.Array

SPEED_HIDDEN = 128  # Width of e_v (reference mlp_speed).


def object_codes(appearance: Array) -> Array:
  """z' = [z_k, 0, 0] (B, K, Nf + 2): what Ψf and sc see in the video model."""
  return jnp.concatenate([appearance, jnp.zeros(appearance.shape[:-1] + (2,),
                                                appearance.dtype)], -1)


def rollout_steps(config: ml_collections.ConfigDict, frames: int, train: bool) -> int:
  """Static rollout length: model.rollout_steps in training, else sample_start + F − 1."""
  if train:
    return config.rollout_steps
  return config.sample_start + frames - 1


class Dynamics(nn.Module):
  """One step of Γ_v: carry (θ(t) (B, K, 2), vx (B, K, P), vy (B, K, P)) → next carry and
  v(t+1) (B, K, 2). appearance z (B, K, Nf), present (B, K), background z0 (B, Nb) are
  broadcast over the scan."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, carry, appearance: Array, present: Array, background: Array):
    c = self.config
    position, vx, vy = carry
    history = c.past_velocities
    codes = appearance if c.fixed_objects else jnp.tile(appearance, (1, 1, history))
    objects = jnp.concatenate([codes, position, vx, vy], -1)
    if c.reference_presence_bug:
      partners = (objects[..., -4] > -1.0).astype(position.dtype)  # the latest vx
    else:
      partners = present
    outputs = 2 + (0 if c.fixed_objects else c.obj_dim)
    velocity = pairwise_update(objects, partners, background, c.interaction_hidden,
                               outputs)[..., :2]
    m = partners[..., None]
    velocity = m * velocity - 2.0 * (1.0 - m) if c.reference_presence_bug else m * velocity
    vx = jnp.concatenate([vx[..., 1:], velocity[..., :1]], -1)
    vy = jnp.concatenate([vy[..., 1:], velocity[..., 1:]], -1)
    return (position + velocity, vx, vy), velocity


class VideoGenerator(nn.Module):
  """θ(0), e_v, the Γ_v rollout, and the rendering of F frames (see the module docstring).

  config: config.model (FrozenConfigDict); image_size: S. Parameters as RelateGenerator
  ('background_constant', 'object_constant', 'background_decoder', 'object_decoder',
  'scale', 'image_decoder', 'interaction' = reference mlp_xy) plus 'speed' (e_v, reference
  mlp_speed) and 'dynamics' (Γ_v, reference Gamma).
  """
  config: ml_collections.FrozenConfigDict
  image_size: int

  @nn.compact
  def __call__(self, latents: Latents, *, frames: int, steps: int, render_single: bool = True,
               poses: Array | None = None,
               compositions: Array | None = None) -> tuple[Array, dict]:
    """Renders B videos of `frames` frames from a rollout of `steps` steps.

    latents.start (B,) must satisfy start + frames − 1 <= steps. `poses` (B, K, 2) replaces
    θ(0) (skipping Γ); the rollout runs from it. Returns videos (B, F, S, S, 3) in [-1, 1]
    and aux: 'poses' θ(t) of every frame (B, F, K, 2), 'initial_poses' θ̂, 'start_poses'
    θ(0) (B, K, 2), 'start_displacement' D_s (B, K, 2), 'velocities' v(1..steps)
    (B, steps, K, 2), 'scales' (B, F, K) and, if render_single, 'single' (B, S, S, 3): the
    selected object alone with the background at frame 0. `compositions` (B, C, K + 1)
    bool adds C component videos (generator.composition_masks) of every frame, returned as
    aux['compositions'] (B, C, F, S, S, 3).
    """
    c = self.config
    b, k, nf = latents.appearance.shape
    t_b, t_f = scene_constants(self, c, k)
    z0, present = latents.background, latents.present
    z = jnp.ones_like(latents.appearance) if c.fixed_objects else latents.appearance

    theta0 = poses if poses is not None else corrected_poses(c, z, latents.poses, present, z0)

    p = c.past_velocities
    speeds = layers.Mlp((SPEED_HIDDEN, SPEED_HIDDEN, 2 * p), final=jnp.tanh, name='speed')(
        jnp.concatenate([z, jax.lax.stop_gradient(theta0),
                         jnp.broadcast_to(z0[:, None], (b, k, z0.shape[-1]))], -1))
    speeds = speeds * present[..., None]
    scan = nn.scan(Dynamics, variable_broadcast='params', split_rngs={'params': False},
                   in_axes=(nn.broadcast, nn.broadcast, nn.broadcast), length=steps)
    _, velocities = scan(c, name='dynamics')((theta0, speeds[..., :p], speeds[..., p:]), z,
                                             present, z0)
    velocities = jnp.moveaxis(velocities, 0, 1)  # (B, steps, K, 2)
    displacements = jnp.concatenate(
        [jnp.zeros_like(velocities[:, :1]), jnp.cumsum(velocities, axis=1)], 1)
    index = latents.start[:, None] + jnp.arange(frames)[None, :]
    shown = jnp.take_along_axis(displacements, index[:, :, None, None], axis=1)
    theta = theta0[:, None] + shown  # (B, F, K, 2)

    codes = object_codes(z)
    scales = object_scales(c, z0, codes, theta)
    windows = object_windows(c, t_f, codes)
    background = BackgroundDecoder(c, name='background_decoder')(t_b, z0)
    takes_part = jnp.ones((b, frames, k), bool)
    frame_scales, frame_poses, drawn = scales, theta, None
    if render_single:  # One more frame: frame 0 with the selected object alone.
      one = (jnp.arange(k)[None, :] == latents.select[:, None])[:, None]
      takes_part = jnp.concatenate([takes_part, one], 1)
      frame_scales = jnp.concatenate([scales, scales[:, :1]], 1)
      frame_poses = jnp.concatenate([theta, theta[:, :1]], 1)
    if compositions is not None:  # C more videos: every frame of each composition.
      count = compositions.shape[1]
      extra, drawn = composition_masks(c, jnp.repeat(compositions, frames, 1))
      drawn = jnp.concatenate([jnp.ones(takes_part.shape[:2] + (k + 1,), bool), drawn], 1)
      takes_part = jnp.concatenate([takes_part, extra], 1)
      frame_scales = jnp.concatenate([frame_scales, jnp.tile(scales, (1, count, 1))], 1)
      frame_poses = jnp.concatenate([frame_poses, jnp.tile(theta, (1, count, 1, 1))], 1)
    images, _ = render_frames(self, c, self.image_size, windows, background, frame_scales,
                              frame_poses, present, takes_part, chunk=c.render_chunk,
                              shown=drawn)
    aux = {'poses': theta, 'initial_poses': latents.poses, 'start_poses': theta0,
           'start_displacement': shown[:, 0], 'velocities': velocities, 'scales': scales}
    if render_single:
      aux['single'] = images[:, frames]
    if compositions is not None:
      aux['compositions'] = images[:, images.shape[1] - count * frames:].reshape(
          (b, count, frames) + images.shape[2:])
    return images[:, :frames], aux
