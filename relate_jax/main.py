r"""Command-line entry point.

  python -m relate_jax.main --config=configs/shapes.py --workdir=workdirs/shapes
  python -m relate_jax.main --config=configs/clevr.py --workdir=DIR --config.data.data_dir=...
  python -m relate_jax.main --config=configs/clevr.py --workdir=DIR --dry_run

Overrides use ml_collections syntax, e.g. `--config.train.batch_size=32`. Rerunning the same
command resumes the workdir. User errors (config, workdir, data, checkpoints, NaNs) print one
message and exit with status 1; SIGINT/SIGTERM save a checkpoint and exit with status 0.
"""

import difflib
import os
import shlex
import signal
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and samples.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False,
                             'Print the resolved config and the parameter table, then exit.')
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    'allow_config_change', False, 'Resume a workdir even though the model or data fields of '
    'the config differ from its config.json (the old config stays in config_history.jsonl).')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False, 'Multi-host training: call jax.distributed.initialize() (on SLURM and '
    'other detected clusters the three flags below may stay unset).')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None,
                                   'host:port of process 0 (with --distributed).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'Index of this process.')
flags.mark_flags_as_required(['config', 'workdir'])


class _QuietLibraries:
  """Drops INFO chatter of orbax and TFDS (one line per checkpoint operation)."""

  def filter(self, record) -> bool:
    noisy = ('orbax', 'tensorflow_datasets')
    return record.levelno > 20 or not any(n in record.pathname for n in noisy)


def _flag_value(argv: list[str], name: str) -> str | None:
  """The value of --name=V / --name V / -name=V in argv (the last one wins, as in absl)."""
  value = None
  for i, arg in enumerate(argv):
    for dashes in ('--', '-'):
      if arg.startswith(f'{dashes}{name}='):
        value = arg.split('=', 1)[1]
      elif arg == f'{dashes}{name}' and i + 1 < len(argv):
        value = argv[i + 1]
  return value


def check_config_args(argv: list[str]) -> str | None:
  """A one-line error for the --config problems that ml_collections reports as tracebacks
  (missing file, unknown variant, unknown field in an override), or None."""
  from relate_jax import config as config_lib
  spec = _flag_value(argv, 'config')
  if spec is None:
    return None  # absl reports the missing required flag.
  path, _, variant = spec.partition(':')
  if not os.path.isfile(path):
    folder = os.path.dirname(path) or '.'
    here = sorted(f for f in os.listdir(folder) if f.endswith('.py')) if os.path.isdir(
        folder) else []
    return f'--config={spec}: no such file {path!r}' + (f' (in {folder}: {", ".join(here)})'
                                                         if here else '')
  try:
    config = config_lib.load_config_file(spec)
  except ValueError as e:  # apply_variant: unknown variant.
    return f'--config={spec}: {e}'
  except TypeError as e:
    if variant and 'positional argument' in str(e):
      return f'--config={spec}: {path} has no variants (its get_config takes none)'
    raise
  fields = config_lib.flatten(config)
  for arg in argv:
    name = None
    for prefix in ('--config.', '-config.', '--noconfig.', '-noconfig.'):
      if arg.startswith(prefix):
        name = arg[len(prefix):].split('=', 1)[0]
    if name is not None and name not in fields:
      close = difflib.get_close_matches(name, fields, n=3)
      hint = f'; did you mean {" or ".join(close)}?' if close else ''
      return f'{arg}: {path} has no field {name!r}{hint}'
  return None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  # Import after flag parsing so `--help` stays fast.
  from relate_jax import checkpoint
  from relate_jax import config as config_lib
  from relate_jax import data as data_lib
  from relate_jax import train

  if _DISTRIBUTED.value:
    import jax
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  config = _CONFIG.value
  try:
    config_lib.validate(config)
  except config_lib.ConfigError as e:
    sys.exit(str(e))
  if _DRY_RUN.value:
    print(config)
    print(train.describe(config))
    return
  workdir = _WORKDIR.value
  try:
    train.train_and_evaluate(config, workdir, allow_config_change=_ALLOW_CONFIG_CHANGE.value)
  except train.Interrupted as e:
    for s in (signal.SIGINT, signal.SIGTERM):  # Saved: later signals must not change the exit.
      signal.signal(s, signal.SIG_IGN)
    command = ['python', '-m', 'relate_jax.main', *sys.argv[1:]]
    print(f'Interrupted by {e.signal_name} at step {e.step}; saved {e.path}. Resume with: '
          f'{shlex.join(command)}', file=sys.stderr, flush=True)
  except KeyboardInterrupt:
    sys.exit('Interrupted before training started: nothing to save.')
  except data_lib.MissingDataError as e:
    sys.exit(f'{e}\n\nTo try RELATE without downloading anything, train on the embedded '
             f'default dataset: python -m relate_jax.main --config=configs/shapes.py '
             f'--workdir={os.path.join(os.path.dirname(workdir) or ".", "shapes")}')
  except checkpoint.CheckpointTimeout as e:
    print(e, file=sys.stderr, flush=True)
    os._exit(1)  # Without waiting for the hung write's thread.
  except (config_lib.ConfigError, checkpoint.CheckpointError, train.NonFiniteError) as e:
    sys.exit(str(e))


def run():
  """Console-script entry point."""
  problem = check_config_args(sys.argv[1:])
  if problem:
    sys.exit(problem)
  app.run(main)


if __name__ == '__main__':
  run()
