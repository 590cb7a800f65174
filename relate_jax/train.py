"""The training loop: restore-or-init, then periodic log / sample / eval / checkpoint.

All maths lives in `steps.py`; this file only drives it. Outputs in the workdir:
  config.json, config_history.jsonl  the resolved config and its history (`workdir.py`)
  checkpoints/<step>/  Orbax checkpoints (train state + input iterator + checksums)
  tensorboard/         TensorBoard scalars and sample grids
  samples/             sample grids from fixed latents, step_<step>.png (video: .gif)
  metrics.jsonl        evaluation results (when config.eval.metrics is set)

Long runs never lose work:
  * SIGINT / SIGTERM only set a flag, read between iterations (in a multi-process run
    the processes agree on it, so all stop at the same step); the loop then saves the
    state and the iterator position of the same step and raises `Interrupted`. Further
    signals wait for that save.
  * NaN/Inf: the losses the step returns are checked on the host where the loop already
    syncs (log and checkpoint steps), and the whole state before each save
    (`checkpoint.save` refuses non-finite states). train.on_nonfinite='stop' raises
    `NonFiniteError` with a report; 'rollback' restores the newest checkpoint and
    continues with the train key folded with the rollback count (recorded in every later
    checkpoint, so resumed runs draw the same noise), at most train.max_rollbacks times.
  * The newest readable checkpoint is resumed (`checkpoint.restore_newest`), after the
    config was compared with the workdir's (`workdir.check_config`).
"""

import functools
import os
import signal
import threading
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from PIL import Image

from relate_jax import api
from relate_jax import checkpoint
from relate_jax import config as config_lib
from relate_jax import data as data_lib
from relate_jax import models
from relate_jax import pixels
from relate_jax import steps
from relate_jax import video_io
from relate_jax import workdir as workdir_lib


class Interrupted(KeyboardInterrupt):
  """Training stopped on a signal; the checkpoint of the step it stopped at is on disk."""

  def __init__(self, signal_name: str, step: int, path: str):
    super().__init__(f'{signal_name} at step {step}: checkpoint {path}')
    self.signal_name, self.step, self.path = signal_name, step, path


class NonFiniteError(RuntimeError):
  """Losses or state became NaN/Inf; the message reports the step, the losses and the newest
  good checkpoint."""


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
  """config.json (earlier versions kept in the history) for tools that fill a workdir
  themselves, e.g. the PyTorch checkpoint converter."""
  workdir_lib.record_config(config, workdir,
                            workdir_lib.check_config(config, workdir, allow_change=True))


def local(tree):
  """This process's copy of replicated arrays (works on one host and across hosts)."""
  return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


def train_key(config: ml_collections.ConfigDict, rollbacks: int) -> jax.Array:
  """The key the step folds with `state.step`: the seed's 'train' stream, folded with the
  number of NaN rollbacks so far (none: the stream itself)."""
  key = steps.stream_keys(config.seed)['train']
  return jax.random.fold_in(key, rollbacks) if rollbacks else key


class StopRequest:
  """SIGINT/SIGTERM handlers that only record the signal (the loop reads `signal_name`
  between iterations), so no exception can split a step from its iterator position.
  Handlers are installed only in the main thread (elsewhere signals keep their handlers)."""

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.signal_name = None
    self.count = 0
    self._previous = {}

  def _handle(self, signum, frame):
    del frame  # No logging here: a handler may interrupt a write to the same stream.
    self.count += 1
    self.signal_name = self.signal_name or signal.Signals(signum).name

  def agreed(self) -> str | None:
    """The signal to stop on, the same in every process (None: go on). A multi-process run
    stops when any process got one: clusters signal the processes at different moments,
    and a process stopping alone would wait forever in the save's collectives while the
    others wait in the next step's. Costs an all-gather per call there, none on one process."""
    name = self.signal_name  # Read once: a signal may arrive during the all-gather.
    if jax.process_count() == 1:
      return name
    signums = multihost_utils.process_allgather(
        np.int32(signal.Signals[name].value if name else 0))
    return signal.Signals(int(signums.max())).name if signums.any() else None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)


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


class _Run:
  """The mutable part of a run: state, iterator, step function and rollback count."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, mesh):
    self.config, self.workdir, self.mesh = config, workdir, mesh
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    self.init = jax.jit(functools.partial(steps.init_state, config), out_shardings=replicated)
    self.key = steps.stream_keys(config.seed)['init']
    self.abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
        jax.eval_shape(self.init, self.key))
    self.ckpt = checkpoint.manager(workdir, config.train.keep_checkpoints,
                                   config.train.checkpoint_timeout)
    self.data_iter = data_lib.make_train_iterator(config)
    self.rollbacks = 0
    self.saved_step = None
    self.state = self.train_step = None

  @property
  def step(self) -> int:
    return int(jax.device_get(local(self.state.step)))

  def restore_or_init(self) -> None:
    restored = checkpoint.restore_newest(self.ckpt, self.abstract, self.data_iter)
    if restored is None:
      if self.state is not None:  # A rollback before the first checkpoint: start over.
        self.data_iter = data_lib.make_train_iterator(self.config)
      self.state, self.saved_step = self.init(self.key), None
    else:
      self.state, self.saved_step = restored.state, restored.step
      self.rollbacks = max(self.rollbacks, restored.rollbacks)
      logging.info('Resumed from %s at step %d', checkpoint.step_dir(self.ckpt, restored.step),
                   restored.step)

  def compile(self) -> None:
    self.train_step = steps.compile_train_step(self.config, self.mesh,
                                               train_key(self.config, self.rollbacks))

  def save(self) -> None:
    step = self.step
    checkpoint.save(self.ckpt, self.state, self.data_iter, rollbacks=self.rollbacks,
                    timeout_s=self.config.train.checkpoint_timeout)
    self.saved_step = step
    logging.info('Saved checkpoint at step %d', step)

  def newest_good(self) -> str:
    newest = self.ckpt.latest_step()
    if newest is None:
      return 'No checkpoint has been saved yet.'
    return (f'The newest good checkpoint is {checkpoint.step_dir(self.ckpt, newest)} (step '
            f'{newest}); nothing was saved after it.')

  def recover(self, problem: str) -> None:
    """Rolls back to the newest good checkpoint under train.on_nonfinite='rollback' (at
    most train.max_rollbacks times), else raises NonFiniteError."""
    t = self.config.train
    if t.on_nonfinite != 'rollback' or self.rollbacks >= t.max_rollbacks:
      gave_up = (f' Gave up after {self.rollbacks} rollbacks (train.max_rollbacks).'
                 if t.on_nonfinite == 'rollback' else '')
      raise NonFiniteError(
          f'{problem}.{gave_up} {self.newest_good()} Lower optim.lr (or check the data) and '
          'resume; --config.train.on_nonfinite=rollback retries from the newest checkpoint '
          'with new noise.')
    self.rollbacks += 1
    self.restore_or_init()
    logging.warning('%s: rolled back to step %d with a new train key (rollback %d of %d); '
                    'recompiling the step.', problem, self.step, self.rollbacks, t.max_rollbacks)
    self.compile()


def _nonfinite_losses(metrics: dict, step: int) -> str | None:
  if all(np.isfinite(v) for v in metrics.values()):
    return None
  losses = ', '.join(f'{k}={v:.4g}' for k, v in metrics.items())
  return f'Non-finite losses at step {step}: {losses}'


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_config_change: bool = False) -> steps.TrainState:
  """Trains `config` in `workdir`, resuming from its newest readable checkpoint.

  Raises:
    config.ConfigError: invalid config, or one that changes the workdir's model or data
      (unless allow_config_change); raised before anything is compiled or prepared.
    data.MissingDataError, checkpoint.CheckpointError: data or checkpoints unusable.
    NonFiniteError: NaN/Inf under train.on_nonfinite='stop' (or after max_rollbacks).
    Interrupted: after SIGINT/SIGTERM, once the checkpoint of the current step is saved.
  """
  config_lib.validate(config)
  mesh = steps.make_mesh()
  if config.train.batch_size % mesh.size:
    raise config_lib.ConfigError(f'train.batch_size={config.train.batch_size} must be '
                                 f'divisible by the {mesh.size} devices')
  changes = workdir_lib.check_config(config, workdir, allow_config_change)
  os.makedirs(workdir, exist_ok=True)
  logging.info('JAX %s, %d process(es), devices: %s', jax.__version__, jax.process_count(),
               jax.devices())
  logging.info('\n%s', describe(config))

  data_lib.prepare(config)
  run = _Run(config, workdir, mesh)
  run.restore_or_init()
  if jax.process_index() == 0:
    workdir_lib.record_config(config, workdir, changes)
  run.compile()

  writer = None
  if jax.process_index() == 0:
    from tensorboardX import SummaryWriter  # Writes event files without TensorFlow.
    writer = SummaryWriter(os.path.join(workdir, 'tensorboard'))
    os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
  grid = SampleGrid(config)
  evaluator = None
  if config.eval.metrics and config.eval.every:
    evaluator = api.TrainingEvaluator(config, workdir)  # Fetches detector weights now.

  t = config.train
  batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  feature = data_lib.feature_key(config)
  step = run.step
  last_time, last_step, first_log = time.time(), step, True
  stopping = None  # The signal every process agreed to stop on, read once per iteration.
  with StopRequest() as stop:  # Also while closing: a second signal must not kill the exit.
    try:
      while step < t.num_steps and stopping is None:
        images = jax.make_array_from_process_local_data(batch_sharding,
                                                        next(run.data_iter)[feature])
        run.state, metrics = run.train_step(run.state, images)
        step += 1
        stopping = stop.agreed()
        log_now = step % t.log_every == 0 or step == t.num_steps
        save_now = step % t.checkpoint_every == 0 or step == t.num_steps
        if log_now or save_now:
          metrics = {k: float(v) for k, v in jax.device_get(local(metrics)).items()}
          problem = _nonfinite_losses(metrics, step)
          if problem:
            run.recover(problem)
            step = last_step = run.step
            last_time, first_log = time.time(), True
            continue
        if log_now:
          now = time.time()
          rate = (step - last_step) / max(now - last_time, 1e-9)
          note = ' (includes compilation)' if first_log else ''
          logging.info('step %d/%d | %.2f it/s | %.1f img/s%s | ETA %s | D %.4f | G %.4f | '
                       'pos %.4f', step, t.num_steps, rate, rate * t.batch_size, note,
                       _format_duration((t.num_steps - step) / max(rate, 1e-9)),
                       metrics['d_total'], metrics['g_total'], metrics['g_position'])
          if writer is not None:
            for name, value in metrics.items():
              writer.add_scalar(f'train/{name}', value, step)
            writer.add_scalar('train/steps_per_second', rate, step)
            writer.flush()
          last_time, last_step, first_log = now, step, False
        if step % t.sample_every == 0 or step == t.num_steps:
          image = grid(steps.generator_params(run.state))
          if writer is not None:
            write_samples(writer, workdir, image, step)
        if evaluator is not None and (step % config.eval.every == 0 or step == t.num_steps):
          if stopping is None:
            results = evaluator(run.state, step)
            if writer is not None:
              for name, value in results.items():
                writer.add_scalar(f'eval/{name}', value, step)
              writer.flush()
          else:  # A preemption's grace period is shorter than an evaluation.
            logging.warning('Skipped the evaluation of step %d to stop; run it with '
                            'python -m relate_jax.evaluate --workdir=%s --step=%d', step,
                            workdir, step)
        if save_now:
          try:
            run.save()
          except checkpoint.NonFiniteState as e:
            run.recover(f'Non-finite state at step {step}: {e}')
            step = last_step = run.step
            last_time, first_log = time.time(), True
      if stopping is not None:
        logging.warning('Received %s: stopping at step %d.', stopping, step)
        if run.saved_step != step:
          try:
            run.save()
          except checkpoint.NonFiniteState as e:
            raise NonFiniteError(f'Stopping at step {step} on {stopping}, but the '
                                 f'state is not finite: {e}. {run.newest_good()}') from e
        if stop.count > 1:
          logging.warning('Received %d signals; the later ones waited for the checkpoint.',
                          stop.count)
        raise Interrupted(stopping, step, checkpoint.step_dir(run.ckpt, step))
    except checkpoint.CheckpointTimeout:
      run.ckpt = None  # Closing would wait for the hung write.
      raise
    finally:
      if writer is not None:
        writer.close()
      if run.ckpt is not None:
        run.ckpt.close()
  return run.state
