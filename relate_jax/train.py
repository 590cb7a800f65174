"""The training loop: restore-or-init, then periodic log / sample / eval / checkpoint.

All maths lives in `steps.py`; this file only drives it. Outputs in the workdir:
  config.json          the resolved config
  checkpoints/<step>/  Orbax checkpoints (train state + input iterator state)
  tensorboard/         TensorBoard scalars and sample grids
  samples/             sample grids from fixed latents, step_<step>.png (video: .gif)
  metrics.jsonl        evaluation results (when config.eval.metrics is set)
"""

import functools
import os
import signal
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from PIL import Image

from relate_jax import api
from relate_jax import checkpoint
from relate_jax import config as config_lib
from relate_jax import data as data_lib
from relate_jax import models
from relate_jax import pixels
from relate_jax import steps
from relate_jax import video_io


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  hours, rest = divmod(seconds, 3600)
  return f'{hours:d}:{rest // 60:02d}:{rest % 60:02d}'


def describe(config: ml_collections.ConfigDict) -> str:
  """Parameter table of both players, computed without allocating anything."""
  state = jax.eval_shape(functools.partial(steps.init_state, config),
                         steps.stream_keys(config.seed)['init'])
  lines = ['Generator side (T_b, T_f, Ψb, Ψf, sc, Γ, G):', models.param_table(state.g_params),
           f'  total generator-side parameters: {models.count_params(state.g_params):,}',
           'Discriminator (D with position head P):', models.param_table(state.d_params),
           f'  total discriminator parameters: {models.count_params(state.d_params):,}']
  return '\n'.join(lines)


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True) + '\n')


def local(tree):
  """This process's copy of replicated arrays (works on one host and across hosts)."""
  return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


class _Stop(Exception):
  """Raised by the SIGTERM handler so the loop saves before exiting."""


def _raise_stop(signum, frame):
  del signum, frame
  raise _Stop()


class SampleGrid:
  """Renders the same fixed latents at every call, so grids over training compare."""

  def __init__(self, config: ml_collections.ConfigDict):
    self._model = api.Relate(config, params=None)
    self.latents = models.sample_latents(steps.stream_keys(config.seed)['grid'], config.model,
                                         config.train.num_grid, train=False)

  def __call__(self, params) -> np.ndarray:
    """uint8 grid (H, W, 3) of the fixed latents rendered with `params`; for the video
    model one grid per frame (F, H, W, 3)."""
    images, _ = self._model.render(self.latents, params=local(params))
    images = pixels.to_uint8(jax.device_get(images))
    if images.ndim == 5:
      return np.stack([data_lib.make_grid(images[:, t]) for t in range(images.shape[1])])
    return data_lib.make_grid(images)


def write_samples(writer, workdir: str, grid: np.ndarray, step: int) -> None:
  """samples/step_<step>.png (or .gif for a video grid) and the same in TensorBoard."""
  name = os.path.join(workdir, 'samples', f'step_{step:08d}')
  if grid.ndim == 4:
    video_io.write_gif(name + '.gif', grid, fps=4.0)
    video_io.add_tensorboard_gif(writer, 'samples', grid, step)
  else:
    Image.fromarray(grid).save(name + '.png')
    writer.add_image('samples', grid, step, dataformats='HWC')
  writer.flush()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> steps.TrainState:
  """Trains `config` in `workdir`, resuming from its newest checkpoint."""
  config_lib.validate(config)
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    write_config(config, workdir)
  logging.info('JAX %s, %d process(es), devices: %s', jax.__version__, jax.process_count(),
               jax.devices())
  logging.info('\n%s', describe(config))

  mesh = steps.make_mesh()
  if config.train.batch_size % mesh.size:
    raise ValueError(f'train.batch_size={config.train.batch_size} must be divisible by the '
                     f'{mesh.size} devices')
  data_lib.prepare(config)
  data_iter = data_lib.make_train_iterator(config)

  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  init = jax.jit(functools.partial(steps.init_state, config), out_shardings=replicated)
  key = steps.stream_keys(config.seed)['init']
  ckpt = checkpoint.manager(workdir, config.train.keep_checkpoints)
  if ckpt.latest_step() is not None:
    abstract = jax.eval_shape(init, key)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
    state = checkpoint.restore(ckpt, abstract, data_iter)
    logging.info('Resumed from %s at step %d', ckpt.directory, int(state.step))
  else:
    state = init(key)
  train_step = steps.compile_train_step(config, mesh)

  writer = None
  if jax.process_index() == 0:
    from tensorboardX import SummaryWriter  # Writes event files without TensorFlow.
    writer = SummaryWriter(os.path.join(workdir, 'tensorboard'))
    os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
  grid = SampleGrid(config)
  evaluator = None
  if config.eval.metrics and config.eval.every:
    evaluator = api.TrainingEvaluator(config, workdir)  # Fetches detector weights now.

  step = int(jax.device_get(local(state.step)))
  num_steps = config.train.num_steps
  batch = config.train.batch_size
  previous_handler = signal.signal(signal.SIGTERM, _raise_stop)
  last_time, last_step, first_log = time.time(), step, True
  try:
    while step < num_steps:
      host_batch = next(data_iter)[data_lib.feature_key(config)]
      images = jax.make_array_from_process_local_data(batch_sharding, host_batch)
      state, metrics = train_step(state, images)
      step += 1
      if step % config.train.log_every == 0 or step == num_steps:
        metrics = {k: float(v) for k, v in jax.device_get(local(metrics)).items()}
        now = time.time()
        rate = (step - last_step) / max(now - last_time, 1e-9)
        note = ' (includes compilation)' if first_log else ''
        logging.info('step %d/%d | %.2f it/s | %.1f img/s%s | ETA %s | D %.4f | G %.4f | '
                     'pos %.4f', step, num_steps, rate, rate * batch, note,
                     _format_duration((num_steps - step) / max(rate, 1e-9)),
                     metrics['d_total'], metrics['g_total'], metrics['g_position'])
        if writer is not None:
          for name, value in metrics.items():
            writer.add_scalar(f'train/{name}', value, step)
          writer.add_scalar('train/steps_per_second', rate, step)
          writer.flush()
        last_time, last_step, first_log = now, step, False
      if step % config.train.sample_every == 0 or step == num_steps:
        image = grid(steps.generator_params(state))
        if writer is not None:
          write_samples(writer, workdir, image, step)
      if evaluator is not None and (step % config.eval.every == 0 or step == num_steps):
        results = evaluator(state, step)
        if writer is not None:
          for name, value in results.items():
            writer.add_scalar(f'eval/{name}', value, step)
          writer.flush()
      if step % config.train.checkpoint_every == 0 or step == num_steps:
        checkpoint.save(ckpt, state, data_iter)
        logging.info('Saved checkpoint at step %d', step)
  except (KeyboardInterrupt, _Stop):
    if ckpt.latest_step() != step:
      logging.warning('Interrupted at step %d: saving a checkpoint before exiting.', step)
      checkpoint.save(ckpt, state, data_iter, force=True)
    raise
  finally:
    signal.signal(signal.SIGTERM, previous_handler)
    if writer is not None:
      writer.close()
    ckpt.close()
  return state
