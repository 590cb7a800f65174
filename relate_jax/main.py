r"""Command-line entry point.

  python -m relate_jax.main --config=configs/shapes.py --workdir=workdirs/shapes
  python -m relate_jax.main --config=configs/clevr.py --workdir=DIR --config.data.data_dir=...
  python -m relate_jax.main --config=configs/clevr.py --workdir=DIR --dry_run

Overrides use ml_collections syntax, e.g. `--config.train.batch_size=32`.
"""

import os
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  # Import after flag parsing so `--help` stays fast.
  from relate_jax import config as config_lib
  from relate_jax import data as data_lib
  from relate_jax import train

  if _DISTRIBUTED.value:
    import jax
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  config = _CONFIG.value
  config_lib.validate(config)
  if _DRY_RUN.value:
    print(config)
    print(train.describe(config))
    return
  try:
    train.train_and_evaluate(config, _WORKDIR.value)
  except data_lib.MissingDataError as e:
    logging.error('%s', e)
    sys.exit(f'{e}\n\nTo try RELATE without downloading anything, train on the embedded '
             f'default dataset: python -m relate_jax.main --config=configs/shapes.py '
             f'--workdir={os.path.join(os.path.dirname(_WORKDIR.value) or ".", "shapes")}')


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == '__main__':
  run()
