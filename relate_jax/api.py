"""A small Python API for notebooks and tools.

  from relate_jax import api
  model = api.load('workdirs/shapes')              # newest checkpoint
  images, latents = model.sample(16, seed=0)       # uint8 (16, S, S, 3) + their Latents
  edited = model.render(latents, poses=new_poses)  # re-render with chosen final poses

`Relate.render` exposes the generator's intermediates (poses after Γ, scales), so
editing tools can move, add or remove objects and re-render.
"""

import functools
import json
import os
from typing import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from relate_jax import checkpoint
from relate_jax import config as config_lib
from relate_jax import models
from relate_jax import pixels
from relate_jax import steps


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config that training wrote into `workdir`."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: is {workdir!r} a relate_jax training workdir?')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _normalise(loaded: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The workdir's config on top of today's defaults (fields added since the run was
  started keep their default), with JSON lists turned back into tuples."""
  config = config_lib.base_config()
  for key, value in loaded.items():
    if isinstance(value, ml_collections.ConfigDict):
      for name, field in value.items():
        config[key][name] = tuple(field) if isinstance(field, list) else field
    else:
      config[key] = value
  return config


def workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """`workdir`'s resolved config on today's defaults; needs no checkpoint (baselines)."""
  return _normalise(load_config(workdir))


class Relate:
  """A trained generator: sample latents, render them, edit and re-render."""

  def __init__(self, config: ml_collections.ConfigDict, params, step: int = 0):
    self.config = config
    self.params = params
    self.step = step
    self.generator, self.discriminator = steps.build_models(config)
    self._render = jax.jit(self._render_impl, static_argnames=('render_single', 'frames'))
    self._latents = jax.jit(self._latents_impl, static_argnames=('num', 'train'))
    mesh = steps.make_mesh()
    # Sampling is sharded over all local devices when the batch divides evenly.
    self._batch_sharding = (jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
                            if mesh.size > 1 else None)

  @property
  def is_video(self) -> bool:
    """True for the video model (relate_video): renders clips of frames."""
    return self.config.model.name == config_lib.VIDEO

  def _render_impl(self, params, latents, poses, render_single, frames):
    kwargs = steps.generator_kwargs(self.config, train=False, frames=frames)
    return self.generator.apply({'params': params}, latents, render_single=render_single,
                                poses=poses, **kwargs)

  def sample_latents(self, num: int, seed: int = 0, train: bool = False,
                     offset: int = 0) -> models.Latents:
    """Latents z0, z_k, θ̂, presence as the model samples them (evaluation mode by default).

    Sample i is drawn from its own key (seed, offset + i), so a sample does not depend on
    the batch size or the number of devices it was drawn with.
    """
    base = jax.random.fold_in(steps.stream_keys(self.config.seed)['eval'], seed)
    return self._latents(base, offset, num=num, train=train)

  def _latents_impl(self, base, offset, num, train):
    keys = jax.vmap(jax.random.fold_in, (None, 0))(base, offset + jnp.arange(num))
    one = jax.vmap(lambda k: models.sample_latents(k, self.config.model, 1, train=train))(keys)
    return jax.tree.map(lambda x: x[:, 0], one)

  def render(self, latents: models.Latents, poses=None, render_single: bool = False,
             params=None, frames: int | None = None):
    """Images in [-1, 1] (B, S, S, 3) and the aux dict (final poses, scales, ...).

    poses: optional final poses θ (B, K, 2) that replace Γ's output (video model: θ(0),
      the rollout runs from them).
    params: generator weights to use instead of the loaded ones (e.g. during training).
    frames: video model only: frames per video (default model.sample_frames); the videos
      are (B, F, S, S, 3) and aux['poses'] is θ(t) (B, F, K, 2). Each length compiles once.
    """
    return self._render(self.params if params is None else params, latents, poses,
                        render_single, frames if self.is_video else None)

  def sample_batches(self, num: int, seed: int = 0, batch_size: int = 64,
                     frames: int | None = None, with_aux: bool = False
                     ) -> Iterator[tuple[np.ndarray, models.Latents, np.ndarray]]:
    """Yields (uint8 images, latents, final poses θ) batches totalling `num` samples,
    deterministic in `seed`. Video model: uint8 videos (B, F, S, S, 3) of `frames` frames
    (default model.sample_frames) and θ(t) (B, F, K, 2). with_aux: the third element is the
    renderer's whole aux dict (NumPy: 'poses', 'scales', ...) instead of the poses."""
    for start in range(0, num, batch_size):
      latents = self.sample_latents(batch_size, seed=seed, offset=start)
      if self._batch_sharding is not None and batch_size % self._batch_sharding.mesh.size == 0:
        latents = jax.device_put(latents, self._batch_sharding)
      images, aux = self.render(latents, frames=frames)
      count = min(batch_size, num - start)
      images = pixels.to_uint8(np.asarray(jax.device_get(images))[:count])
      aux = jax.tree.map(lambda x: np.asarray(x)[:count], aux)
      yield (images, jax.tree.map(lambda x: np.asarray(x)[:count], latents),
             aux if with_aux else aux['poses'])

  def sample(self, num: int, seed: int = 0, batch_size: int = 64, frames: int | None = None):
    """`num` samples as uint8 (num, S, S, 3) (video: (num, F, S, S, 3)) and their Latents
    (NumPy)."""
    batches = [b[:2] for b in self.sample_batches(num, seed, batch_size, frames)]
    images = np.concatenate([b[0] for b in batches])
    latents = jax.tree.map(lambda *xs: np.concatenate(xs), *[b[1] for b in batches])
    return images, latents


def load_state(workdir: str, step: int | None = None):
  """(config, TrainState) of `workdir`'s newest (or given) checkpoint: both players."""
  config = _normalise(load_config(workdir))
  mgr = checkpoint.manager(workdir)
  abstract = jax.eval_shape(functools.partial(steps.init_state, config),
                            steps.stream_keys(config.seed)['init'])
  state = checkpoint.restore(mgr, abstract, step=step)
  mgr.close()
  return config, state


def load(workdir: str, step: int | None = None) -> Relate:
  """The generator of `workdir`'s newest (or given) checkpoint; EMA weights when trained with EMA."""
  config, state = load_state(workdir, step)
  return Relate(config, steps.generator_params(state), int(state.step))


def untrained(config: ml_collections.ConfigDict, seed: int | None = None) -> Relate:
  """A generator of `config` at its initial weights (training's init key of `seed`,
  default config.seed), without the discriminator or optimizer states: for tests and
  demonstrations of the tools."""
  generator, _ = steps.build_models(config)
  key = steps.stream_keys(config.seed if seed is None else seed)['init']

  def init(key):
    key_latents, key_g, _ = jax.random.split(key, 3)  # init_state's keys: the same weights.
    latents = steps.sample_latents(key_latents, config.model, 2, train=True)
    return generator.init(key_g, latents, **steps.generator_kwargs(config))['params']

  return Relate(config, jax.jit(init)(key))


def from_state(config: ml_collections.ConfigDict, state: steps.TrainState) -> Relate:
  return Relate(config, steps.generator_params(state), int(jax.device_get(state.step)))


class TrainingEvaluator:
  """Runs config.eval.metrics on the live generator during training."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    from relate_jax.metrics import registry  # Deferred: the detectors are large.
    registry.prefetch_weights(config.eval.metrics)  # Fail early, not after hours of training.
    self._registry = registry
    self.config = config
    self.workdir = workdir

  def __call__(self, state: steps.TrainState, step: int) -> dict[str, float]:
    samples = self._registry.ModelSamples(from_state(self.config, state))
    return self._registry.evaluate(self.config, samples.images, list(self.config.eval.metrics),
                                   self.workdir, step=step, pose_fn=samples.poses)
