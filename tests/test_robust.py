"""Long runs that never lose work: interrupts, NaN guard, checkpoint fallback, config guard,
config validation and data provenance, on the tiny test config.

One trained workdir (6 steps, checkpoints 2, 4, 6) is shared by the module; tests that
change a workdir work on copies of it.
"""

import functools
import glob
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relate_jax import checkpoint
from relate_jax import config as config_lib
from relate_jax import data as data_lib
from relate_jax import steps
from relate_jax import train
from relate_jax import workdir as workdir_lib
from relate_jax.data import pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 6
# The overrides that make configs/test.py the module's config, for subprocess runs.
OVERRIDES = (f'--config.train.num_steps={NUM_STEPS}', '--config.train.sample_every=100')


def make_config(**train_fields):
  config = config_lib.load_config_file(os.path.join(ROOT, 'configs', 'test.py'))
  config.train.num_steps = NUM_STEPS
  config.train.sample_every = 100
  for name, value in train_fields.items():
    config.train[name] = value
  return config


def tree_equal(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(
      lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b)))


def abstract_state(config):
  return jax.eval_shape(functools.partial(steps.init_state, config),
                        steps.stream_keys(config.seed)['init'])


def load_final(workdir, config):
  mgr = checkpoint.manager(workdir)
  try:
    return checkpoint.load(mgr, abstract_state(config))
  finally:
    mgr.close()


@pytest.fixture(scope='module', autouse=True)
def compilation_cache(tmp_path_factory):
  """A persistent XLA cache for this module's runs, in-process and in subprocesses: they
  compile the same train step, so only the first run pays for it."""
  from jax.experimental.compilation_cache import compilation_cache as cache
  path = str(tmp_path_factory.mktemp('xla_cache'))
  names = ('jax_compilation_cache_dir', 'jax_persistent_cache_min_compile_time_secs')
  previous = [getattr(jax.config, n) for n in names]
  for name, value in zip(names, (path, 0.0)):
    jax.config.update(name, value)
  cache.reset_cache()
  yield path
  for name, value in zip(names, previous):
    jax.config.update(name, value)
  cache.reset_cache()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """(workdir, final state) of an uninterrupted run of the module's config."""
  workdir = str(tmp_path_factory.mktemp('trained') / 'run')
  with pytest.MonkeyPatch.context() as mp:  # The autouse data cache is function-scoped.
    mp.setenv('RELATE_JAX_DATA', str(tmp_path_factory.getbasetemp() / 'tfds'))
    state = train.train_and_evaluate(make_config(), workdir)
  return workdir, jax.device_get(state)


def copy_workdir(trained, tmp_path) -> str:
  target = str(tmp_path / 'copy')
  shutil.copytree(trained[0], target)
  return target


def cli(workdir, *args, config='configs/test.py', popen=False, env=None):
  """The command line in a subprocess, compiled as the in-process runs (same options, cache);
  `env`: extra environment variables."""
  cmd = [sys.executable, '-m', 'relate_jax.main', f'--config={config}', f'--workdir={workdir}',
         *args]
  env = dict(os.environ, JAX_PLATFORMS='cpu', JAX_DISABLE_MOST_OPTIMIZATIONS='1',
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir or '',
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0', **(env or {}))
  if popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
  return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


# ---------------------------------------------------------------- validation, before anything


def test_rule_table_covers_every_field():
  assert set(config_lib.FIELDS) == set(config_lib.flatten(config_lib.base_config()))


@pytest.mark.parametrize('field, value, words', [
    ('train.log_every', 0, 'train.log_every=0: must be an int >= 1'),
    ('train.checkpoint_every', 0, 'train.checkpoint_every=0: must be an int >= 1'),
    ('train.keep_checkpoints', 0, 'an int >= 1'),
    ('optim.lr', -1.0, 'optim.lr=-1.0: must be a finite number > 0'),
    ('optim.lr', float('nan'), 'optim.lr=nan'),
    ('model.decoder_channels', (8,), 'a tuple of 3 entries, each an int >= 1'),
    ('eval.metrics', ('fid_bogus',), "each one of 'fid10k'"),
    ('train.on_nonfinite', 'ignore', "one of 'stop', 'rollback'"),
    ('data.name', 'nope', "data.name='nope': must be one of"),
    ('model.min_objects', 5, 'model.min_objects=5: must be <= model.num_objects (3)'),
    ('model.render_chunk', -1, 'an int >= 0'),
])
def test_validate_names_the_field_and_what_it_accepts(field, value, words):
  config = make_config()
  group, name = field.split('.')
  config[group][name] = value
  with pytest.raises(config_lib.ConfigError, match='Invalid config') as e:
    config_lib.validate(config)
  assert words in str(e.value)


def test_validate_video_fields_and_unknown_fields():
  config = config_lib.load_config_file(os.path.join(ROOT, 'configs', 'test_video.py'))
  config_lib.validate(config)
  config.model.rollout_steps = config.model.clip_length + 1
  config.model.sample_start = -1
  config.train.num_step = 3  # A typo in a config file adds a field.
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(config)
  message = str(e.value)
  assert 'model.rollout_steps=5: the video model needs >= model.clip_length + 2 = 6' in message
  assert 'model.sample_start=-1: must be an int >= 0' in message
  assert 'train.num_step: unknown field' in message


@pytest.mark.parametrize('args, words', [
    (['--config.model.foo=1'], "has no field 'model.foo'"),
    (['--config.train.checkpoint_every=0'], 'train.checkpoint_every=0: must be an int >= 1'),
])
def test_cli_user_errors_print_one_message(tmp_path, args, words):
  result = cli(tmp_path / 'never', *args)
  assert result.returncode == 1
  assert words in result.stderr
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(tmp_path / 'never')


@pytest.mark.parametrize('spec, words', [
    ('configs/nope.py', "no such file 'configs/nope.py'"),
    ('configs/test.py:bogus', 'has no variants'),
    ('configs/clevr.py:bogus', "Unknown variant 'bogus'"),
])
def test_cli_config_file_errors_print_one_message(tmp_path, spec, words):
  result = cli(tmp_path / 'never', config=spec)
  assert result.returncode == 1
  assert words in result.stderr and 'Traceback' not in result.stderr


# ---------------------------------------------------------------- workdir config guard


def test_model_change_is_refused_and_config_json_kept(trained, tmp_path):
  workdir = copy_workdir(trained, tmp_path)
  before = open(os.path.join(workdir, 'config.json')).read()
  result = cli(workdir, *OVERRIDES, '--config.model.obj_dim=7',
               '--config.model.scale_augment=False')
  assert result.returncode == 1, result.stderr[-2000:]
  assert 'model.obj_dim: 20 (workdir) -> 7 (now)' in result.stderr
  assert 'model.scale_augment: True (workdir) -> False (now)' in result.stderr
  assert 'Traceback' not in result.stderr
  assert open(os.path.join(workdir, 'config.json')).read() == before
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4', '6']


def test_schedule_changes_are_allowed_and_kept_in_the_history(trained, tmp_path):
  workdir = copy_workdir(trained, tmp_path)
  config = make_config(num_steps=9, log_every=3)
  config.optim.lr = 3e-4
  changes = workdir_lib.check_config(config, workdir)
  assert changes == {'optim.lr': (1e-4, 3e-4), 'train.log_every': (1, 3),
                     'train.num_steps': (NUM_STEPS, 9)}
  workdir_lib.record_config(config, workdir, changes)
  history = [json.loads(line) for line in open(os.path.join(workdir, workdir_lib.HISTORY))]
  assert [h['changes'] for h in history] == [
      None, {'optim.lr': [1e-4, 3e-4], 'train.log_every': [1, 3], 'train.num_steps': [6, 9]}]
  assert history[0]['config']['optim']['lr'] == 1e-4  # The first config is kept.
  assert json.load(open(os.path.join(workdir, 'config.json')))['train']['num_steps'] == 9

  config.model.obj_dim = 7
  assert 'model.obj_dim' in workdir_lib.check_config(config, workdir, allow_change=True)


def test_fields_added_since_a_run_started_are_no_change(trained, tmp_path):
  workdir = copy_workdir(trained, tmp_path)
  path = os.path.join(workdir, 'config.json')
  old = json.load(open(path))
  del old['train']['on_nonfinite'], old['model']['clip_length']  # As written before they existed.
  json.dump(old, open(path, 'w'))
  assert workdir_lib.check_config(make_config(), workdir) == {}


# ---------------------------------------------------------------- checkpoints


def _flip(path):
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0xFF
  open(path, 'wb').write(bytes(data))


def _truncate(path):
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:len(data) // 2])


def _garble(path):
  open(path, 'w').write('{"next_ind')


def _empty(step_dir):
  shutil.rmtree(step_dir)
  os.mkdir(step_dir)


CORRUPTIONS = {
    'deleted data json': lambda s: [os.remove(p) for p in glob.glob(f'{s}/data/*.json')],
    'garbled data json': lambda s: [_garble(p) for p in glob.glob(f'{s}/data/*.json')],
    'deleted state': lambda s: shutil.rmtree(f'{s}/state'),
    'empty step dir': _empty,
    'truncated manifests': lambda s: [_truncate(p) for p in glob.glob(
        f'{s}/state/**/manifest.ocdbt', recursive=True)],
    'garbled state metadata': lambda s: _garble(f'{s}/state/_METADATA'),
    'garbled checksums': lambda s: _garble(f'{s}/meta/metadata'),
    'flipped array bytes': lambda s: _flip(max(glob.glob(f'{s}/state/ocdbt.process_0/d/*'),
                                               key=os.path.getsize)),
}


@pytest.mark.parametrize('corruption', sorted(CORRUPTIONS))
def test_corrupt_newest_checkpoint_falls_back(trained, tmp_path, corruption, caplog):
  workdir = copy_workdir(trained, tmp_path)
  CORRUPTIONS[corruption](os.path.join(workdir, 'checkpoints', '6'))
  config = make_config()
  mgr = checkpoint.manager(workdir)
  iterator = data_lib.make_train_iterator(config)
  with caplog.at_level(logging.WARNING):
    restored = checkpoint.restore_newest(mgr, abstract_state(config), iterator)
  mgr.close()
  assert restored.step == 4 and restored.data_restored
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4', '6.corrupt']
  assert f'{workdir}/checkpoints/6 cannot be used' in caplog.text
  mgr = checkpoint.manager(trained[0])
  original = checkpoint.load(mgr, abstract_state(config), step=4)
  mgr.close()
  assert tree_equal(restored.state, original.state)


def test_no_readable_checkpoint_stops_instead_of_starting_over(trained, tmp_path):
  workdir = copy_workdir(trained, tmp_path)
  for step in ('2', '4', '6'):
    shutil.rmtree(os.path.join(workdir, 'checkpoints', step, 'state'))
  config = make_config()
  for _ in range(2):  # Also on the next try, with every step moved aside.
    mgr = checkpoint.manager(workdir)
    with pytest.raises(checkpoint.CheckpointError, match='No readable checkpoint'):
      checkpoint.restore_newest(mgr, abstract_state(config))
    mgr.close()
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [
      '2.corrupt', '4.corrupt', '6.corrupt']


def test_unfinished_write_is_moved_aside_and_checkpoints_without_iterator_load(trained,
                                                                                tmp_path, caplog):
  workdir = copy_workdir(trained, tmp_path)
  config = make_config()
  mgr = checkpoint.manager(workdir)
  state = checkpoint.load(mgr, abstract_state(config)).state
  os.mkdir(os.path.join(workdir, 'checkpoints', '9.orbax-checkpoint-tmp-1'))
  checkpoint.save(mgr, state.replace(step=state.step + 2))  # No iterator, as a converter.
  iterator = data_lib.make_train_iterator(config)
  with caplog.at_level(logging.WARNING):
    restored = checkpoint.restore_newest(mgr, abstract_state(config), iterator)
  mgr.close()
  assert restored.step == 8 and not restored.data_restored
  assert 'the input starts afresh' in caplog.text
  assert 'unfinished checkpoint write' in caplog.text
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '9.orbax-checkpoint-tmp-1.incomplete'))


def test_model_mismatch_is_reported_not_moved_aside(trained, tmp_path):
  workdir = copy_workdir(trained, tmp_path)
  config = make_config()
  config.model.obj_dim = 7
  mgr = checkpoint.manager(workdir)
  with pytest.raises(checkpoint.IncompatibleCheckpoint, match='different model'):
    checkpoint.restore_newest(mgr, abstract_state(config))
  mgr.close()
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4', '6']


def test_non_finite_state_is_never_saved_or_rotated_in(trained, tmp_path):
  workdir = copy_workdir(trained, tmp_path)
  config = make_config()
  mgr = checkpoint.manager(workdir, keep=3)
  state = checkpoint.load(mgr, abstract_state(config)).state
  for k in range(1, 4):
    bad = state.replace(step=state.step + k,
                        g_params=jax.tree.map(lambda x: x * jnp.nan, state.g_params))
    with pytest.raises(checkpoint.NonFiniteState, match='NaN/Inf'):
      checkpoint.save(mgr, bad)
  mgr.close()
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4', '6']


def test_a_hung_write_is_bounded(trained, tmp_path, monkeypatch):
  workdir = copy_workdir(trained, tmp_path)
  config = make_config()
  mgr = checkpoint.manager(workdir, timeout_s=1.0)
  state = checkpoint.load(mgr, abstract_state(config)).state
  monkeypatch.setattr(mgr, 'is_saving_in_progress', lambda: True)  # A write that never ends.
  start = time.monotonic()
  with pytest.raises(checkpoint.CheckpointTimeout, match='took longer than 0.2 s'):
    checkpoint.save(mgr, state.replace(step=state.step + 1), timeout_s=0.2)
  assert time.monotonic() - start < 5
  mgr.wait_until_finished()
  mgr.close()


# ---------------------------------------------------------------- NaN guard


@pytest.fixture
def poison_after_step(monkeypatch):
  """poison_after_step(k): the train step's output state turns NaN once, after step k (the
  compiled step itself is unchanged, so it comes from the compilation cache)."""
  compile_step = steps.compile_train_step

  def install(k):
    poisoned = []

    def poisoning_compile(*args, **kwargs):
      step_fn = compile_step(*args, **kwargs)

      def run(state, images):
        state, metrics = step_fn(state, images)
        if int(state.step) == k and not poisoned:
          poisoned.append(k)
          state = state.replace(d_params=jax.tree.map(lambda x: x * jnp.nan, state.d_params))
        return state, metrics
      return run

    monkeypatch.setattr(steps, 'compile_train_step', poisoning_compile)
  return install


def test_nan_run_stops_and_keeps_its_good_checkpoints(trained, tmp_path, poison_after_step):
  """NaN after step 7 of a resumed run (keep 3, a checkpoint every step): nothing is saved
  or rotated out, and the report names the newest good checkpoint."""
  workdir = copy_workdir(trained, tmp_path)
  poison_after_step(NUM_STEPS + 1)
  config = make_config(num_steps=NUM_STEPS + 4, checkpoint_every=1)
  with pytest.raises(train.NonFiniteError) as e:
    train.train_and_evaluate(config, workdir)
  message = str(e.value)  # Caught by the state check before the save of step 7.
  assert message.startswith(f'Non-finite state at step {NUM_STEPS + 1}')
  assert f'{workdir}/checkpoints/6 (step 6); nothing was saved after it' in message
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4', '6']
  assert tree_equal(load_final(workdir, config).state, trained[1])


def test_rollback_restores_the_newest_good_checkpoint_with_a_new_key(tmp_path, poison_after_step,
                                                                     caplog):
  """A state poisoned after step 3 is caught at step 4 and rolled back to step 2; the
  rollback count is stored with later checkpoints."""
  poison_after_step(3)
  config = make_config(on_nonfinite='rollback', max_rollbacks=1)
  with caplog.at_level(logging.WARNING):
    state = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert int(state.step) == NUM_STEPS
  assert 'Non-finite losses at step 4' in caplog.text and 'rolled back to step 2' in caplog.text
  restored = load_final(str(tmp_path / 'run'), config)
  assert restored.step == NUM_STEPS and restored.rollbacks == 1
  assert not checkpoint.nonfinite_arrays(checkpoint._host_arrays(restored.state))


@pytest.mark.slow
def test_huge_learning_rate_stops_then_rollback_gives_up(trained, tmp_path):
  """--config.optim.lr=1e30 on a healthy workdir: stop (default) keeps every checkpoint;
  rollback retries twice with new keys, then gives up."""
  workdir = copy_workdir(trained, tmp_path)
  args = (f'--config.train.num_steps={NUM_STEPS + 4}', '--config.optim.lr=1e30',
          '--config.train.sample_every=100')
  result = cli(workdir, *args)
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert f'The newest good checkpoint is {workdir}/checkpoints/6' in result.stderr
  result = cli(workdir, *args, '--config.train.on_nonfinite=rollback',
               '--config.train.max_rollbacks=2')
  assert result.returncode == 1
  assert result.stderr.count('rolled back to step 6') == 2
  assert 'Gave up after 2 rollbacks' in result.stderr
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4', '6']


# ---------------------------------------------------------------- interrupts


def test_signal_between_batch_and_step_saves_that_step(trained, tmp_path, monkeypatch):
  """SIGTERM right after next(data_iter), before the step (where an exception used to split
  the state from the iterator): the run saves the finished step and resumes bitwise equal."""
  make_array = jax.make_array_from_process_local_data
  calls = []

  def signal_on_third(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
      os.kill(os.getpid(), signal.SIGTERM)
    return make_array(*args, **kwargs)

  monkeypatch.setattr(jax, 'make_array_from_process_local_data', signal_on_third)
  workdir = str(tmp_path / 'run')
  with pytest.raises(train.Interrupted) as e:
    train.train_and_evaluate(make_config(), workdir)
  assert e.value.step == 3 and e.value.signal_name == 'SIGTERM'
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '3']
  monkeypatch.setattr(jax, 'make_array_from_process_local_data', make_array)
  state = train.train_and_evaluate(make_config(), workdir)
  assert tree_equal(jax.device_get(state), trained[1])


def _interrupt_and_resume(workdir, signum, after_line):
  """Runs the CLI, sends `signum` once stderr shows `after_line`; returns (interrupted run's
  stderr, its exit status); then resumes to the end and returns its result too."""
  proc = cli(workdir, *OVERRIDES, popen=True)
  lines = []
  for line in proc.stderr:
    lines.append(line)
    if after_line in line:
      proc.send_signal(signum)
      break
  lines += proc.stderr.readlines()
  proc.wait(timeout=600)
  resumed = cli(workdir, *OVERRIDES)
  return ''.join(lines), proc.returncode, resumed


def test_sigterm_exits_zero_with_a_resume_line_and_resumes_bitwise(trained, tmp_path):
  workdir = str(tmp_path / 'run')
  stderr, status, resumed = _interrupt_and_resume(workdir, signal.SIGTERM, 'step 1/')
  assert status == 0, stderr[-3000:]
  resume_lines = [line for line in stderr.splitlines() if line.startswith('Interrupted by SIGTERM')]
  assert len(resume_lines) == 1 and 'Resume with: python -m relate_jax.main' in resume_lines[0]
  assert 'Traceback' not in stderr
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'Resumed from' in resumed.stderr
  assert tree_equal(load_final(workdir, make_config()).state, trained[1])


@pytest.mark.slow
def test_random_interrupts_resume_bitwise(trained, tmp_path):
  """SIGINT / SIGTERM (twice, sometimes) at random moments, including checkpoint writes, in
  several tries: every resumed run ends bitwise equal to the uninterrupted one."""
  rng = np.random.default_rng(0)
  stops = []
  for attempt in range(6):
    workdir = str(tmp_path / f'run{attempt}')
    signum = (signal.SIGINT, signal.SIGTERM)[attempt % 2]
    proc = cli(workdir, *OVERRIDES, popen=True)
    after = f'step {rng.integers(1, 5)}/'
    for line in proc.stderr:
      if after in line:
        break
    time.sleep(rng.uniform(0.0, 0.2))
    proc.send_signal(signum)
    if attempt >= 4:  # A second signal while the first one's checkpoint is being written.
      time.sleep(0.05)
      proc.send_signal(signum)
    rest = proc.stderr.read()
    proc.wait(timeout=600)
    assert proc.returncode == 0, rest[-3000:]
    stop = [line for line in rest.splitlines() if line.startswith('Interrupted by')]
    assert len(stop) == 1, rest[-3000:]
    stops.append(stop[0].split(';')[0])
    resumed = cli(workdir, *OVERRIDES)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert tree_equal(load_final(workdir, make_config()).state, trained[1]), attempt
  print('\n'.join(stops))


def test_processes_agree_on_a_signal_only_one_of_them_got(monkeypatch):
  """Multi-process: the stop decision is the all-gather of every process's signal, so a
  process without a signal stops too (and one with a signal waits for the others' answer)."""
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  gathered = []

  def allgather(x, others):
    gathered.append(int(x))
    return np.array([int(x), others])

  stop = train.StopRequest()
  monkeypatch.setattr(train.multihost_utils, 'process_allgather',
                      functools.partial(allgather, others=0))
  assert stop.agreed() is None
  monkeypatch.setattr(train.multihost_utils, 'process_allgather',
                      functools.partial(allgather, others=int(signal.SIGTERM)))
  assert stop.agreed() == 'SIGTERM'
  stop._handle(signal.SIGINT, None)
  assert stop.agreed() == 'SIGTERM'  # max(SIGINT=2, SIGTERM=15): the same name everywhere.
  assert gathered == [0, 0, int(signal.SIGINT)]


def _free_port() -> int:
  import socket
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_sigterm_to_one_of_two_processes_stops_both(tmp_path):
  """Two CPU processes (--distributed): SIGTERM to process 0 only. Both stop at the same
  step, save, exit 0 (they used to wait on each other until the coordination service
  aborted them, with nothing saved), and the resumed run ends bitwise equal to an
  uninterrupted two-process run."""
  args = ('--config.train.num_steps=8', '--config.train.sample_every=100',
          '--config.train.checkpoint_every=100')

  def pair(workdir):
    port = _free_port()
    return [cli(workdir, *args, '--distributed', f'--coordinator_address=localhost:{port}',
                '--num_processes=2', f'--process_id={i}', popen=True,
                env={'JAX_CPU_COLLECTIVES_IMPLEMENTATION': 'gloo'}) for i in range(2)]

  def finish(procs):
    outs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-2000:] for o in outs]
    return outs

  data_lib.prepare(make_config())  # Two processes preparing one dataset at once would race.
  finish(pair(tmp_path / 'whole'))
  workdir = tmp_path / 'interrupted'
  procs = pair(workdir)
  for line in procs[0].stderr:
    if 'step 3/' in line:
      break
  procs[0].send_signal(signal.SIGTERM)
  outs = finish(procs)
  stops = [[line.split(';')[0] for line in o.splitlines() if line.startswith('Interrupted by')]
           for o in outs]
  assert len(stops[0]) == 1 and stops[0] == stops[1], stops
  finish(pair(workdir))
  # Compared by the arrays' sha256 in meta/ (one process cannot restore two processes' state).
  sums = [json.load(open(d / 'checkpoints' / '8' / 'meta' / 'metadata'))['sha256']
          for d in (workdir, tmp_path / 'whole')]
  assert len(sums[0]) > 100 and sums[0] == sums[1]


@pytest.mark.slow
def test_kill_during_checkpoint_write_resumes(trained, tmp_path):
  """SIGKILL at random moments (often inside a write): the restart moves unfinished writes
  aside, resumes from the newest complete checkpoint and ends bitwise equal."""
  rng = np.random.default_rng(1)
  for attempt in range(4):
    workdir = str(tmp_path / f'run{attempt}')
    proc = cli(workdir, *OVERRIDES, popen=True)
    for line in proc.stderr:
      if 'step 2/' in line:
        break
    time.sleep(rng.uniform(0.0, 0.4))
    proc.kill()
    proc.wait(timeout=60)
    print(attempt, sorted(os.listdir(os.path.join(workdir, 'checkpoints'))))
    resumed = cli(workdir, *OVERRIDES)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert tree_equal(load_final(workdir, make_config()).state, trained[1]), attempt


# ---------------------------------------------------------------- data provenance


def test_prepared_dataset_remembers_its_source(tmp_path, monkeypatch, caplog):
  """A dataset that needs raw data (here: the tiny shapes builder registered as one)."""
  from relate_jax.data import registry
  monkeypatch.setitem(registry.DATASETS, 'shapes_raw', registry.DatasetEntry(
      'relate_jax.data.builders.shapes:Shapes', variant='tiny', needs_data_dir=True))
  raw_a, raw_b = tmp_path / 'raw_a', tmp_path / 'raw_b'
  raw_a.mkdir()
  raw_b.mkdir()
  config = make_config()
  config.data.name = 'shapes_raw'
  config.data.tfds_dir = str(tmp_path / 'prepared')
  config.data.data_dir = str(raw_a)
  data_lib.prepare(config)
  assert pipeline.prepared_from(config) == str(raw_a)

  with caplog.at_level(logging.WARNING):
    config.data.data_dir = str(raw_b)
    data_lib.prepare(config)
    assert f'data.data_dir={raw_b}, but' in caplog.text and f'prepared from {raw_a}' in caplog.text
    config.data.data_dir = ''
    data_lib.prepare(config)
    assert 'data.data_dir is empty: training on' in caplog.text
  config.data.data_dir = str(tmp_path / 'moved')
  with pytest.raises(data_lib.MissingDataError, match='does not exist'):
    data_lib.prepare(config)

  config.data.data_dir, config.data.rebuild = str(raw_b), True
  data_lib.prepare(config)
  assert pipeline.prepared_from(config) == str(raw_b)
  assert data_lib.num_examples(config, 'train') == 64
