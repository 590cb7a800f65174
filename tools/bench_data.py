r"""Read throughput of the training iterator (examples/s), e.g. on 'shapes' at 128 px.

  python tools/bench_data.py --config=configs/shapes.py --config.data.image_size=128 \
      --config.train.batch_size=64 --batches=200

Prepares the dataset if needed (not timed), skips `--warmup` batches (thread
start, file open), then times `--batches` batches of make_train_iterator.
"""

import time

from absl import app
from absl import flags
from ml_collections import config_flags

from relate_jax import data

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.')
_BATCHES = flags.DEFINE_integer('batches', 200, 'Timed batches.')
_WARMUP = flags.DEFINE_integer('warmup', 10, 'Untimed batches first.')


def main(argv):
  del argv
  config = _CONFIG.value
  start = time.perf_counter()
  data.prepare(config)
  print(f'prepare: {time.perf_counter() - start:.1f} s '
        f'({data.num_examples(config, "train")} train examples)')
  it = data.make_train_iterator(config, process_index=0, process_count=1)
  key = data.feature_key(config)
  for _ in range(_WARMUP.value):
    next(it)
  start, cpu = time.perf_counter(), time.process_time()
  n = 0
  for _ in range(_BATCHES.value):
    n += len(next(it)[key])
  wall, cpu = time.perf_counter() - start, time.process_time() - cpu
  print(f'{config.data.name} {config.data.image_size}px batch {config.train.batch_size} '
        f'threads {config.data.num_threads}: {n / wall:.0f} examples/s '
        f'({n} examples in {wall:.2f} s wall, {cpu:.2f} s CPU)')


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main)
