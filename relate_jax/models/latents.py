"""Latent codes of one batch of scenes and their prior (REFERENCE §2.2, §2.3)."""

import flax
import jax
import jax.numpy as jnp
import ml_collections

from relate_jax import config as config_lib

Array = jax.Array


@flax.struct.dataclass
class Latents:
  """Everything the generator needs to render B scenes with K object slots.

  background: z0, (B, Nb).
  appearance: z_k, (B, K, Nf).
  poses: θ̂ initial poses (x, y), (B, K, 2); absent slots hold model.absent_pose.
  present: (B, K) float32 in {0, 1}.
  select: (B,) int32, a present slot: the object of the single-object render.
  start: video model only, (B,) int32: index s of the displacement D_s the first rendered
    frame shows (None for the static models).
  """
  background: Array
  appearance: Array
  poses: Array
  present: Array
  select: Array
  start: Array | None = None


def _random_subset_mask(key: Array, batch: int, slots: int, removed: Array) -> Array:
  """(B, K) bool, True on `removed[b]` slots chosen uniformly without replacement."""
  ranks = jnp.argsort(jnp.argsort(jax.random.uniform(key, (batch, slots)), axis=1), axis=1)
  return ranks < removed[:, None]


def sample_latents(key: Array, model_config: ml_collections.ConfigDict, batch_size: int,
                   train: bool) -> Latents:
  """Draws latents from the reference's prior.

  relate_static: z0 ~ U[-1, 1]^Nb (eval: U[-eval_bg_range, eval_bg_range]); z_k ~ U[-1, 1]^Nf;
  θ̂ ~ U[-pose_range, pose_range]^2. In training n ~ randint{0..K − min_objects} slots per
  sample (uniformly chosen) are removed (eval too unless model.eval_all_objects); removed
  slots get present = 0 and θ̂ = absent_pose. select is uniform among present slots.

  relate_static_order (Markov stacks): only the bottom slot's θ̂ is used by the model,
  x ~ U[-r, r], y ~ U[-r, 0] (lower half, y points up); the stack height ~ randint{2..K} in
  training and eval, slots above it are absent; select = 0 (the bottom object).

  relate_video: as relate_static, plus the clip start s ~ randint{0..rollout_steps − T − 2}
  (T = clip_length) in training and s = sample_start otherwise.
  """
  m = model_config
  k_bg, k_app, k_pose, k_count, k_subset, k_select = jax.random.split(key, 6)
  b, k = batch_size, m.num_objects
  bg_range = 1.0 if train else m.eval_bg_range
  background = jax.random.uniform(k_bg, (b, m.bg_dim), minval=-bg_range, maxval=bg_range)
  appearance = jax.random.uniform(k_app, (b, k, m.obj_dim), minval=-1.0, maxval=1.0)
  r = m.pose_range
  poses = jax.random.uniform(k_pose, (b, k, 2), minval=-r, maxval=r)

  if m.name == config_lib.ORDERED:
    # y of the bottom object in the lower half: U[-r, 0] = U[-r, r] folded onto negatives.
    poses = poses.at[:, 0, 1].set(-jnp.abs(poses[:, 0, 1]))
    height = jax.random.randint(k_count, (b,), 2, k + 1)
    present = jnp.arange(k)[None, :] < height[:, None]
    select = jnp.zeros((b,), jnp.int32)
  else:
    if train or not m.eval_all_objects:
      removed = jax.random.randint(k_count, (b,), 0, k - m.min_objects + 1)
      present = ~_random_subset_mask(k_subset, b, k, removed)
    else:
      present = jnp.ones((b, k), bool)
    logits = jnp.where(present, 0.0, -jnp.inf)
    select = jax.random.categorical(k_select, logits, axis=1).astype(jnp.int32)

  start = None
  if m.name == config_lib.VIDEO:
    k_start = jax.random.fold_in(key, 1)
    if train:
      start = jax.random.randint(k_start, (b,), 0, m.rollout_steps - m.clip_length - 1)
    else:
      start = jnp.full((b,), m.sample_start, jnp.int32)
  poses = jnp.where(present[..., None], poses, m.absent_pose)
  return Latents(background=background, appearance=appearance, poses=poses,
                 present=present.astype(jnp.float32), select=select, start=start)
