"""Train state and the pure, jit-compiled training iteration.

One iteration = 1 discriminator update on a real batch, then M generator updates, each
with fresh latents (REFERENCE.md §5). Everything lives in one jitted function:
`(state, images) -> (state, metrics)` with the state donated, so nothing leaves the device
inside the step. Randomness is `fold_in(key, step)`, so a resumed run draws the same noise
as an uninterrupted one.

Work the reference did and threw away is not done here: the D update takes gradients
w.r.t. D only (the reference backpropagated through G as well), and the G updates only
w.r.t. G. By default the real, fake and single-object batches go through D as one
concatenated batch: D normalises per instance, so this equals separate calls, except that
the spectral-norm power iteration (one per D call, torch train-mode semantics) runs once
per phase instead of once per sub-batch. `train.reference_schedule=True` runs the
iteration the reference runs, call by call: D separately on each sub-batch in the
reference's order (static: fake, single-object, real, then the gradient penalty's call;
ordered: fake, real; video: position input, fake, real), each with its own power
iteration, including the calls inside the G updates.
"""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from relate_jax import config as config_lib
from relate_jax import losses
from relate_jax import pixels
from relate_jax.models import Discriminator, Latents, RelateGenerator, sample_latents
from relate_jax.models import video
from relate_jax.models.discriminator import frames_to_channels
from relate_jax.models.video import VideoGenerator

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything needed to resume training (with the data iterator's state)."""
  step: jax.Array  # int32 scalar: completed iterations.
  g_params: PyTree  # Generator side: T_b, T_f, Ψb, Ψf, sc, Γ, G.
  d_params: PyTree  # Discriminator D with the position head P.
  spectral: PyTree  # Spectral-norm power-iteration vectors (u, v) of D.
  g_opt: PyTree  # Adam state of the generator side.
  d_opt: PyTree  # Adam state of the discriminator.
  ema_params: PyTree  # EMA of g_params when train.ema_decay > 0, else None.


def build_models(config: ml_collections.ConfigDict):
  """The generator (RelateGenerator, or VideoGenerator for relate_video) and D."""
  model_config = ml_collections.FrozenConfigDict(config.model)
  size = config.data.image_size
  if config.model.name == config_lib.VIDEO:
    generator = VideoGenerator(model_config, image_size=size)
  else:
    generator = RelateGenerator(model_config, image_size=size)
  return generator, Discriminator(model_config)


def generator_kwargs(config: ml_collections.ConfigDict, train: bool = True,
                     frames: int | None = None) -> dict:
  """Static keyword arguments of the generator's call: frames and rollout steps of the
  video model (training: a clip of model.clip_length frames; else `frames`, default
  model.sample_frames); nothing for the static models."""
  m = config.model
  if m.name != config_lib.VIDEO:
    return {}
  frames = m.clip_length if train else (frames or m.sample_frames)
  return {'frames': frames, 'steps': video.rollout_steps(m, frames, train)}


def disc_channels_in(config: ml_collections.ConfigDict) -> int:
  """Input channels of D: 3, or 3·T for the video model (frames stacked on channels)."""
  return 3 * (config.model.clip_length if config.model.name == config_lib.VIDEO else 1)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  o = config.optim
  return optax.adam(o.lr, b1=o.b1, b2=o.b2, eps=o.eps)


def stream_keys(seed: int) -> dict[str, jax.Array]:
  """Named PRNG streams split once from the root key `seed`."""
  names = ('init', 'train', 'grid', 'eval')
  return dict(zip(names, jax.random.split(jax.random.key(seed), len(names))))


def init_state(config: ml_collections.ConfigDict, key: jax.Array) -> TrainState:
  """Fresh parameters and optimizer states (call under jit or eval_shape)."""
  generator, discriminator = build_models(config)
  key_latents, key_g, key_d = jax.random.split(key, 3)
  latents = sample_latents(key_latents, config.model, 2, train=True)
  g_params = generator.init(key_g, latents, **generator_kwargs(config))['params']
  size = config.data.image_size
  images = jnp.zeros((2, size, size, disc_channels_in(config)), jnp.float32)
  d_vars = discriminator.init(key_d, images, update_stats=False)
  optimizer = make_optimizer(config)
  ema = g_params if config.train.ema_decay > 0 else None
  return TrainState(
      step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_vars['params'],
      spectral=d_vars['spectral'], g_opt=optimizer.init(g_params),
      d_opt=optimizer.init(d_vars['params']), ema_params=ema)


def make_mesh(devices=None) -> Mesh:
  """A 1-D ('data',) mesh over all (or the given) devices."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ('data',))


def _constrain(tree: PyTree, sharding) -> PyTree:
  if sharding is None:
    return tree
  return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)


def _split(outputs: dict, n: int) -> list[dict]:
  """D's outputs on n equal batches concatenated along axis 0, one dict per batch."""
  parts = {name: jnp.split(value, n) for name, value in outputs.items()}
  return [{name: parts[name][i] for name in parts} for i in range(n)]


class Phases:
  """The two update phases of an iteration, as pure functions of the state.

  `generate` is the one place that decides what a generated batch is for D, per model:
    relate_static: the images; the position head sees the single-object render
      [W_select, W_0] and regresses the selected object's θ;
    relate_static_order: the images; the position head sees the full stack and regresses
      the bottom block's θ_1, as the reference (model.order_position_on_single renders the
      bottom block alone instead);
    relate_video: the T frames stacked on channels; the position head sees the
      single-object render of frame 0 followed by T − 1 detached copies and regresses
      sg(θ_sel(0)) + D_s (the displacement is not detached, as the reference).
  Real batches become D inputs in `real_input`.
  """

  def __init__(self, config: ml_collections.ConfigDict, batch_sharding=None):
    self.config = config
    self.generator, self.discriminator = build_models(config)
    self.optimizer = make_optimizer(config)
    self.batch_sharding = batch_sharding

  def latents(self, key: jax.Array, batch: int) -> Latents:
    latents = sample_latents(key, self.config.model, batch, train=True)
    return _constrain(latents, self.batch_sharding)

  def real_input(self, batch: jax.Array) -> jax.Array:
    """uint8 images (B, S, S, 3) or clips (B, T, S, S, 3) -> D input in the model range."""
    real = pixels.to_model_range(batch, self.config.data.pixel_range)
    return frames_to_channels(real) if real.ndim == 5 else real

  def generate(self, g_params, latents: Latents) -> dict:
    """{'inputs': D inputs of the generated batch by name, in the order the reference calls
    D on them — 'fake' (B, S, S, C) and, when the position head reads its own batch,
    'position' —, 'target': the position target (B, 2), and the generator's own outputs
    'images' (B, S, S, 3) or (B, T, S, S, 3) and 'aux'}."""
    m = self.config.model
    single = m.name != config_lib.ORDERED or m.order_position_on_single
    fake, aux = self.generator.apply({'params': g_params}, latents, render_single=single,
                                     **generator_kwargs(self.config))
    if m.name == config_lib.VIDEO:
      first = aux['single']
      position = jnp.concatenate(
          [first] + [jax.lax.stop_gradient(first)] * (m.clip_length - 1), -1)
      target = (jax.lax.stop_gradient(losses.selected_pose(aux['start_poses'], latents.select))
                + losses.selected_pose(aux['start_displacement'], latents.select))
      return {'inputs': {'position': position, 'fake': frames_to_channels(fake)},
              'target': target, 'images': fake, 'aux': aux}
    target = jax.lax.stop_gradient(losses.selected_pose(aux['poses'], latents.select))
    inputs = {'fake': fake}
    if single:
      inputs['position'] = aux['single']
    return {'inputs': inputs, 'target': target, 'images': fake, 'aux': aux}

  def _run_d(self, d_params, spectral, images):
    """D on images with one spectral-norm power iteration; returns (outputs, new vectors)."""
    out, updates = self.discriminator.apply({'params': d_params, 'spectral': spectral}, images,
                                            update_stats=True, mutable=['spectral'])
    return out, updates['spectral']

  def _run_d_on(self, d_params, spectral, inputs: dict) -> tuple[dict, PyTree]:
    """D's outputs on each named batch of `inputs` and the new spectral vectors.

    Fast form (default): one call on the concatenated batches, one power iteration.
    train.reference_schedule: one call per batch in the order of `inputs` (the
    reference's), each with its own power iteration on the vectors the previous call left.
    D normalises per instance, so only the spectral-norm vectors tell the two apart.
    """
    if self.config.train.reference_schedule:
      outputs = {}
      for name, images in inputs.items():
        outputs[name], spectral = self._run_d(d_params, spectral, images)
      return outputs, spectral
    out, spectral = self._run_d(d_params, spectral, jnp.concatenate(list(inputs.values())))
    return dict(zip(inputs, _split(out, len(inputs)))), spectral

  def discriminator_update(self, state: TrainState, real: jax.Array,
                           key: jax.Array) -> tuple[TrainState, dict]:
    """One D update on a real D input (from `real_input`); G is untouched."""
    w = self.config.loss
    key_latents, key_penalty = jax.random.split(key)
    latents = self.latents(key_latents, real.shape[0])
    # Constants for this phase: no gradient flows into G (the reference's was discarded).
    fake = jax.lax.stop_gradient(self.generate(state.g_params, latents))

    def loss_fn(d_params):
      on, spectral = self._run_d_on(d_params, state.spectral, dict(fake['inputs'], real=real))
      on_position = on.get('position', on['fake'])
      terms = {
          'd_gan': losses.bce(on['real']['logit'], 1.0) + losses.bce(on['fake']['logit'], 0.0),
          'd_style': (losses.style_bce(on['real']['style'], 1.0)
                      + losses.style_bce(on['fake']['style'], 0.0)),
          'd_position': losses.position_loss(on_position['position'], fake['target']),
      }
      total = (w.gan * terms['d_gan'] + w.style_disc * terms['d_style']
               + w.position * terms['d_position'])
      if w.gradient_penalty:
        def logit_fn(x):
          out, vectors = self._run_d(d_params, spectral, x)
          return out['logit'], vectors
        terms['d_penalty'], penalty_spectral = losses.gradient_penalty(
            logit_fn, real, key_penalty)
        if self.config.train.reference_schedule:  # The reference's 4th D call iterates too.
          spectral = penalty_spectral
        total = total + w.gradient_penalty * terms['d_penalty']
      return total, (terms, spectral)

    (total, (terms, spectral)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
    updates, d_opt = self.optimizer.update(grads, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)
    state = state.replace(d_params=d_params, d_opt=d_opt, spectral=spectral)
    return state, dict(terms, d_total=total)

  def generator_update(self, state: TrainState, batch: int,
                       key: jax.Array) -> tuple[TrainState, dict]:
    """One update of the generator side with fresh latents; D's weights are constants."""
    w = self.config.loss
    latents = self.latents(key, batch)

    def loss_fn(g_params):
      fake = self.generate(g_params, latents)
      on, spectral = self._run_d_on(state.d_params, state.spectral, fake['inputs'])
      on_position = on.get('position', on['fake'])
      terms = {
          'g_gan': losses.bce(on['fake']['logit'], 1.0),
          'g_style': losses.style_bce(on['fake']['style'], 1.0),
          'g_position': losses.position_loss(on_position['position'], fake['target']),
      }
      total = (w.gan * terms['g_gan'] + w.style_gen * terms['g_style']
               + w.position * terms['g_position'])
      return total, (terms, spectral)

    (total, (terms, spectral)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
    updates, g_opt = self.optimizer.update(grads, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    state = state.replace(g_params=g_params, g_opt=g_opt, spectral=spectral)
    return state, dict(terms, g_total=total)


def train_iteration(state: TrainState, images: jax.Array, *, config: ml_collections.ConfigDict,
                    train_key: jax.Array, batch_sharding=None) -> tuple[TrainState, dict]:
  """1 D update then M G updates. images: real batch uint8 (B, S, S, 3), or clips
  (B, T, S, S, 3) for the video model."""
  phases = Phases(config, batch_sharding)
  key = jax.random.fold_in(train_key, state.step)
  key_d, key_g = jax.random.split(key)
  state, d_metrics = phases.discriminator_update(state, phases.real_input(images), key_d)

  # Unrolled on purpose: inside a while loop (lax.scan) XLA:CPU ran the convolutions 13x
  # slower (measured with tools/benchmark.py on configs/shapes.py); M is 1 or 2.
  g_metrics = []
  for k in jax.random.split(key_g, config.optim.gen_steps):
    state, m = phases.generator_update(state, images.shape[0], k)
    g_metrics.append(m)

  if state.ema_params is not None:
    decay = config.train.ema_decay
    state = state.replace(ema_params=jax.tree.map(
        lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, state.g_params))
  state = state.replace(step=state.step + 1)
  mean_g = jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *g_metrics)  # Over the M updates.
  return state, dict(d_metrics, **mean_g)


def compile_train_step(config: ml_collections.ConfigDict, mesh: Mesh,
                       train_key: jax.Array | None = None):
  """jit-compiled `(state, images) -> (state, metrics)` over `mesh` (state replicated,
  batch sharded along 'data', the state donated). train_key: the key folded with the step
  (default: the seed's 'train' stream; a NaN rollback passes a new one)."""
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))
  train_key = stream_keys(config.seed)['train'] if train_key is None else train_key
  fn = functools.partial(train_iteration, config=config, train_key=train_key,
                         batch_sharding=batch_sharding if mesh.size > 1 else None)
  return jax.jit(fn, in_shardings=(replicated, batch_sharding),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def generator_params(state: TrainState) -> PyTree:
  """The weights used for sampling: the EMA when enabled, else the live generator."""
  return state.g_params if state.ema_params is None else state.ema_params
