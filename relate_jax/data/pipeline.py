"""Preparing and reading datasets: TFDS array_record files through grain, no TensorFlow.

``config.data.name`` picks a builder through ``registry``; the prepared files
live under ``tfds_dir(config)``. Every reader calls :func:`prepare` first, so
the first use of a dataset builds it (with progress bars) and later uses only
open it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Iterator

import grain
import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from relate_jax.data import common
from relate_jax.data import registry

DEFAULT_TFDS_DIR = os.path.join('~', '.cache', 'relate_jax', 'tensorflow_datasets')


def tfds_dir(config) -> str:
  """Prepared-data root: config.data.tfds_dir, else $RELATE_JAX_DATA, else ~/.cache/..."""
  path = config.data.tfds_dir or os.environ.get('RELATE_JAX_DATA') or DEFAULT_TFDS_DIR
  return os.path.abspath(os.path.expanduser(path))


def feature_key(config) -> str:
  """'image' for static datasets, 'video' for clip datasets."""
  return registry.entry(config.data.name).feature


@functools.lru_cache(maxsize=16)
def _builder(name: str, image_size: int, root: str):
  cls = registry.builder_class(name)
  return cls(config=registry.builder_config(name, image_size), data_dir=root)


def builder(config):
  """The TFDS builder instance of `config.data` (not necessarily prepared)."""
  return _builder(config.data.name, int(config.data.image_size), tfds_dir(config))


SOURCE_FILE = 'relate_jax_source.json'  # Beside the prepared files: the raw data they came from.

# Prepared directories rebuilt by this process (data.rebuild acts once, not at every read).
_REBUILT: set[str] = set()


def prepared_from(config) -> str | None:
  """The data_dir the prepared copy of `config.data` was built from ('' for datasets that
  render locally), or None when unknown (prepared before sources were recorded)."""
  path = os.path.join(builder(config).data_dir, SOURCE_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)['data_dir']


@functools.lru_cache(maxsize=16)
def _check_source(name: str, prepared_dir: str, recorded: str | None, given: str) -> None:
  """Warns (once per process) when data_dir is not where the prepared copy came from;
  raises MissingDataError for a data_dir that does not exist."""
  origin = f'from {recorded}' if recorded else '(its source was not recorded)'
  rebuild = '--config.data.rebuild=True prepares it again'
  if given and not os.path.isdir(given):
    raise common.MissingDataError(
        f'data.data_dir={given} does not exist. Dataset {name!r} was prepared {origin} into '
        f'{prepared_dir}: leave data_dir empty to train on that copy, or give an existing '
        f'directory ({rebuild} from it).')
  if not given and recorded:
    logging.warning('data.data_dir is empty: training on %s, prepared from %s.', prepared_dir,
                    recorded)
  elif given and os.path.abspath(given) != recorded:
    logging.warning('data.data_dir=%s, but %s was prepared %s; training on the prepared copy '
                    '(%s from %s).', given, prepared_dir, origin, rebuild, given)


def prepare(config) -> None:
  """Builds the prepared dataset if it is missing (or, once per process, again with
  config.data.rebuild); otherwise checks config.data.data_dir against the directory the
  prepared copy was built from (`prepared_from`).

  Raises:
    MissingDataError: the dataset needs raw data and config.data.data_dir is
      empty or not a directory (the message gives the expected layout and
      where the data set is published), or data_dir names a directory that does
      not exist while a prepared copy exists.
  """
  b = builder(config)
  entry = registry.entry(config.data.name)
  data_dir = config.data.data_dir
  rebuild = config.data.rebuild and b.data_dir not in _REBUILT
  if b.is_prepared() and not rebuild:
    if entry.needs_data_dir:
      _check_source(config.data.name, b.data_dir, prepared_from(config), data_dir)
    return
  if entry.needs_data_dir and not (data_dir and os.path.isdir(data_dir)):
    instructions = getattr(b, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None) or ''
    raise common.MissingDataError(
        f'Dataset {config.data.name!r} needs its raw data in config.data.data_dir.\n'
        f'  directory tried: {data_dir or "(none: pass --config.data.data_dir=DIR)"}\n'
        f'  expected layout and where it is published:\n'
        + ''.join(f'    {line}\n' for line in instructions.strip('\n').splitlines()))
  logging.info('Preparing %s (%s) under %s', config.data.name, b.builder_config.name, b.data_dir)
  print(f'{"Rebuilding" if rebuild else "Preparing"} dataset {config.data.name!r} at '
        f'{config.data.image_size}px into {b.data_dir} (one-time)...', file=sys.stderr, flush=True)
  download_config = tfds.download.DownloadConfig(
      manual_dir=os.path.abspath(data_dir) if data_dir else None,
      download_mode=(tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if rebuild
                     else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  b.download_and_prepare(download_config=download_config)
  if rebuild:
    _REBUILT.add(b.data_dir)
  source = os.path.abspath(data_dir) if entry.needs_data_dir else ''
  with open(os.path.join(b.data_dir, SOURCE_FILE), 'w') as f:
    json.dump({'data_dir': source}, f)


def num_examples(config, split: str) -> int:
  """Number of examples in `split` ('train' or 'test') of the prepared dataset."""
  prepare(config)
  return builder(config).info.splits[split].num_examples


def _source(config, split: str):
  """Random-access source of `split`.

  Static images stay PNG bytes here and are decoded in `_pixels` (TFDS's numpy
  decoder cannot skip a Sequence, so clips arrive decoded as lists of frames).
  """
  prepare(config)
  key = feature_key(config)
  skip = {key: tfds.decode.SkipDecoding()} if key == 'image' else None
  return builder(config).as_data_source(split, decoders=skip)


def _to_uint8(value) -> np.ndarray:
  """PNG bytes, decoded arrays, or a sequence of either (frames) -> uint8 array."""
  if isinstance(value, (bytes, np.bytes_)):
    return common.decode_png(value)
  if isinstance(value, np.ndarray) and value.dtype != object:
    return value.astype(np.uint8, copy=False)
  return np.stack([_to_uint8(v) for v in value])


def _pixels(key: str):
  """Element -> {key: uint8 (S, S, 3) or (T, S, S, 3)} (drops the annotations)."""
  return lambda example: {key: _to_uint8(example[key])}


def _read_options(config) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=config.data.num_threads,
                           prefetch_buffer_size=config.data.prefetch)


def make_train_iterator(config, *, process_index: int | None = None,
                        process_count: int | None = None) -> grain.DatasetIterator:
  """Infinite, shuffled, batched training iterator for one process.

  Each process reads the disjoint shard `process_index::process_count` of the
  train split, shuffled with seed config.seed and reshuffled every epoch.
  The order depends only on (seed, shard): the same config gives the same
  batches, and `get_state`/`set_state` (or grain.checkpoint.CheckpointSave /
  CheckpointRestore inside an orbax Composite) resume it exactly.

  Args:
    config: the full config (seed, data.*, train.batch_size).
    process_index: this process (default jax.process_index()).
    process_count: number of processes (default jax.process_count()).

  Returns:
    An iterator of {'image': uint8 (b, S, S, 3)} (video datasets:
    {'video': uint8 (b, T, S, S, 3)}), b = train.batch_size // process_count.
  """
  if process_index is None or process_count is None:
    import jax  # Deferred: data tools need not start a JAX backend.
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  batch = config.train.batch_size // process_count
  if batch < 1:
    raise ValueError(f'train.batch_size={config.train.batch_size} < {process_count} processes')
  ds = grain.MapDataset.source(_source(config, 'train'))
  ds = ds[process_index::process_count]
  if len(ds) < batch:
    raise ValueError(f'{len(ds)} training examples per process < batch {batch}')
  ds = (ds.seed(config.seed).shuffle().repeat(None)
        .map(_pixels(feature_key(config)))
        .batch(batch, drop_remainder=True))
  return iter(ds.to_iter_dataset(_read_options(config)))


def iterate_split(config, split: str, batch_size: int, num: int | None = None
                  ) -> Iterator[np.ndarray]:
  """Deterministic, finite pass over `split` in stored order.

  Yields uint8 (b, S, S, 3) (video: (b, T, S, S, 3)) arrays; the first `num`
  examples (all if None); the last batch may be smaller.
  """
  ds = grain.MapDataset.source(_source(config, split))
  if num is not None:
    ds = ds[:num]
  key = feature_key(config)
  ds = ds.map(_pixels(key)).batch(batch_size, drop_remainder=False)
  for element in ds.to_iter_dataset(_read_options(config)):
    yield element[key]


def annotations(config, split: str) -> dict[str, np.ndarray]:
  """Every non-pixel feature of `split`, stacked in stored order (same order as
  iterate_split), e.g. shapes: num_objects (N,), poses (N, K, 2), ..."""
  key = feature_key(config)
  ds = grain.MapDataset.source(_source(config, split)).map(
      lambda ex: {k: v for k, v in ex.items() if k != key})
  rows = list(ds.to_iter_dataset(_read_options(config)))
  if not rows or not rows[0]:
    return {}
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

