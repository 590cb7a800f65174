r"""Prepare a dataset and look at it.

  python -m relate_jax.data --config=configs/shapes.py [--config.data.data_dir=DIR] \
      --split=train --show=16 --out=grid.png

Builds the prepared files if needed, prints `num_examples=N` and the shape,
dtype and range of the first examples, and writes a grid PNG of them (clips:
one row of frames per clip).
"""

import sys

import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from relate_jax.data import common
from relate_jax.data import pipeline

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.')
_SPLIT = flags.DEFINE_enum('split', 'train', ['train', 'test'], 'Split to show.')
_SHOW = flags.DEFINE_integer('show', 16, 'Examples (clips) in the grid; 0 = no grid.')
_OUT = flags.DEFINE_string('out', 'grid.png', 'Where to write the grid PNG.')
_NCOL = flags.DEFINE_integer('ncol', 8, 'Images per grid row (static data).')


def main(argv):
  del argv
  config = _CONFIG.value
  try:
    pipeline.prepare(config)
  except common.MissingDataError as e:
    sys.exit(f'error: {e}')  # The message says what to download and where to put it.
  split = _SPLIT.value
  n = pipeline.num_examples(config, split)
  print(f'dataset={config.data.name} split={split} image_size={config.data.image_size}')
  print(f'num_examples={n}')
  print(f'prepared in {pipeline.builder(config).data_dir}')
  show = min(_SHOW.value, n)
  if show <= 0:
    return
  examples = np.concatenate(list(pipeline.iterate_split(config, split, show, num=show)))
  print(f'{pipeline.feature_key(config)}: shape={examples.shape[1:]} dtype={examples.dtype} '
        f'min={examples.min()} max={examples.max()} mean={examples.mean():.1f}')
  common.save_png(_OUT.value, common.make_grid(examples, _NCOL.value))
  print(f'wrote {_OUT.value}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main)
