"""Preparing and reading datasets: TFDS array_record files through grain, no TensorFlow.

``config.data.name`` picks a builder through ``registry``; the prepared files
live under ``tfds_dir(config)``. Every reader calls :func:`prepare` first, so
the first use of a dataset builds it (with progress bars) and later uses only
open it.

Video datasets store videos, not clips; clips of any length T are cut at read
time by random access (grain MapDataset: element i gathers the frames of clip
i). Two layouts (``registry.DatasetEntry.frame_examples``):
  sequences (BallsInBowl): one example holds a whole sequence, a Sequence of
    PNG frames; a clip decodes only the frames it uses.
  frames (RealTraffic): one example per frame, with 'video_id', 'frame' and
    'video_frames'. TFDS writes examples shuffled by key hash, so the map
    (video, frame) -> record is read once from the examples and cached beside
    the prepared files (``frame_index_<split>.npz``).
Which clips exist is the builder's rule: ``training_clips(lengths, T)`` rows
(video, first start, number of starts; a training example draws its start
uniformly from them, anew each epoch), ``evaluation_clips(lengths, T)`` rows
(video, start) in evaluation order, and ``CLIP_STRIDE`` (video frames between
clip frames).
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
  """Number of stored examples in `split` ('train' or 'test') of the prepared dataset:
  images, BallsInBowl sequences, RealTraffic frames (clips are cut at read time)."""
  prepare(config)
  return builder(config).info.splits[split].num_examples


def _source(config, split: str):
  """Random-access source of an image dataset's `split`, images still PNG bytes (they are
  decoded in grain's read threads)."""
  prepare(config)
  return builder(config).as_data_source(split, decoders={'image': tfds.decode.SkipDecoding()})


def _image(example) -> dict[str, np.ndarray]:
  """Example -> {'image': uint8 (S, S, 3)} (drops the annotations)."""
  return {'image': common.decode_png(example['image'])}


def _read_options(config) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=config.data.num_threads,
                           prefetch_buffer_size=config.data.prefetch)


# Seed of the per-clip frame permutations of the time-shuffled view (FVD baseline).
SHUFFLE_SEED = 0


class _EncodedFrames(tfds.decode.Decoder):
  """Leaves a Sequence of images as PNG byte strings, so a clip decodes only its frames.

  (TFDS's SkipDecoding has no NumPy decoding of a Sequence.)
  """

  def decode_example(self, serialized_example):
    return serialized_example

  def decode_batch_example_np(self, serialized_example):
    return serialized_example


class _SequenceVideos:
  """Videos stored one per example, as a Sequence 'video' of L PNG frames (BallsInBowl).

  Per-frame annotations are the features whose first axis is L ('positions',
  'velocities': (L, K, 2)); the others ('sequence', 'bowl_axes') describe the video.
  """

  def __init__(self, source, length: int):
    self.source = source
    self.length = length
    self.lengths = np.full(len(source), length, np.int64)
    self.complete = True  # Every frame of every sequence is stored.

  def stored(self, video: int, times: np.ndarray) -> bool:
    del video
    return bool(times.max(initial=0) < self.length)

  def read(self, video: int, times: np.ndarray) -> np.ndarray:
    """uint8 (F, S, S, 3): frames `times` of `video`."""
    encoded = self.source[int(video)]['video']
    return np.stack([common.decode_png(encoded[t]) for t in times])

  def notes(self, video: int, times: np.ndarray) -> tuple[dict, dict]:
    """Annotations of frames `times` of `video`: per frame (F, ...), per video."""
    per_frame, per_video = {}, {}
    for key, value in self.source[int(video)].items():
      value = np.asarray(value)
      if key == 'video':
        continue
      if value.ndim and value.shape[0] == self.length:
        per_frame[key] = value[times]
      else:
        per_video[key] = value
    return per_frame, per_video


class _FrameVideos:
  """Videos stored one frame per example, found through the frame index (RealTraffic)."""

  def __init__(self, source, index: np.ndarray):
    """index: int (R, 3) rows (video_id, frame, video_frames) of the R records."""
    self.source = source
    video, frame, length = index.T
    self.lengths = np.zeros(video.max(initial=-1) + 1, np.int64)
    self.lengths[video] = length
    self._offsets = np.concatenate([[0], np.cumsum(self.lengths)])
    self._records = np.full(self._offsets[-1], -1, np.int64)  # Frame t of v: [offset_v + t].
    self._records[self._offsets[video] + frame] = np.arange(len(index))
    # Every frame j < n - 3 (all a clip can use) is stored, unless the build was capped.
    self.complete = len(index) == np.maximum(self.lengths - 3, 0).sum()

  def _records_of(self, video: int, times: np.ndarray) -> np.ndarray:
    return self._records[self._offsets[video] + times]

  def stored(self, video: int, times: np.ndarray) -> bool:
    return bool(times.max(initial=0) < self.lengths[video]
                and np.all(self._records_of(video, times) >= 0))

  def _examples(self, video: int, times: np.ndarray) -> list[dict]:
    return self.source.__getitems__(self._records_of(int(video), times).tolist())

  def read(self, video: int, times: np.ndarray) -> np.ndarray:
    """uint8 (F, S, S, 3): frames `times` of `video`."""
    return np.stack([common.decode_png(e['image']) for e in self._examples(video, times)])

  def notes(self, video: int, times: np.ndarray) -> tuple[dict, dict]:
    """Annotations of frames `times` of `video`: per frame (F, ...); none per video."""
    examples = self._examples(video, times)
    return {k: np.stack([e[k] for e in examples]) for k in examples[0] if k != 'image'}, {}


def _index_path(config, split: str) -> str:
  return os.path.join(builder(config).data_dir, f'frame_index_{split}.npz')


def _frame_index(config, split: str, source) -> np.ndarray:
  """int (R, 3) rows (video_id, frame, video_frames) of every record, cached on disk."""
  path = _index_path(config, split)
  if os.path.exists(path):
    with np.load(path) as f:
      if len(f['index']) == len(source):
        return f['index']
  print(f'Indexing the frames of {config.data.name} {split} ({len(source)} records, '
        f'once; cached in {path})...', file=sys.stderr, flush=True)
  ds = grain.MapDataset.source(source).map(
      lambda e: np.array([e['video_id'], e['frame'], e['video_frames']], np.int64))
  rows = list(ds.to_iter_dataset(_read_options(config)))
  index = np.stack(rows) if rows else np.zeros((0, 3), np.int64)
  try:
    partial = path + '.partial.npz'
    np.savez(partial, index=index)
    os.replace(partial, path)
  except OSError as e:  # A read-only dataset directory: index again next time.
    logging.warning('Could not cache the frame index at %s: %s', path, e)
  return index


# Opened videos per (prepared directory, split): the frame index is read once per process.
_VIDEOS: dict[tuple[str, str], _SequenceVideos | _FrameVideos] = {}


def _videos(config, split: str) -> _SequenceVideos | _FrameVideos:
  """The videos of `split` of a video dataset, opened once per process."""
  prepare(config)
  b = builder(config)
  key = (b.data_dir, split)
  if key not in _VIDEOS:
    if registry.entry(config.data.name).frame_examples:
      source = b.as_data_source(split, decoders={'image': tfds.decode.SkipDecoding()})
      _VIDEOS[key] = _FrameVideos(source, _frame_index(config, split, source))
    else:
      source = b.as_data_source(split, decoders={'video': _EncodedFrames()})
      _VIDEOS[key] = _SequenceVideos(source, b.info.features['video'].shape[0])
  return _VIDEOS[key]


def _clip_times(config, clip_length: int) -> np.ndarray:
  """Offsets of a clip's T frames from its start: 0, s, ..., s(T-1) (s = CLIP_STRIDE)."""
  return registry.builder_class(config.data.name).CLIP_STRIDE * np.arange(clip_length)


def _stored_clips(config, split: str, videos, rows: np.ndarray, clip_length: int
                  ) -> np.ndarray:
  """`rows` (video, start[, count]) whose frames are all stored (capped builds store only
  a prefix of the frames); ValueError if none is left."""
  if not videos.complete and len(rows):
    times = _clip_times(config, clip_length)
    last = rows[:, 1] + (rows[:, 2] - 1 if rows.shape[1] > 2 else 0)
    rows = rows[[videos.stored(v, s + times) and videos.stored(v, e + times)
                 for v, s, e in zip(rows[:, 0], rows[:, 1], last)]]
  if not len(rows):
    raise ValueError(
        f'{config.data.name} {split} has no clip of {clip_length} frames (videos have '
        f'{videos.lengths.min(initial=0)}-{videos.lengths.max(initial=0)} frames; see the '
        f'clip rule in {registry.entry(config.data.name).builder.split(":")[0]})')
  return rows


def time_permutation(index: int, frames: int) -> np.ndarray:
  """The frame order of clip `index` in the time-shuffled view (seeded by SHUFFLE_SEED)."""
  return np.random.default_rng((SHUFFLE_SEED, index)).permutation(frames)


def _evaluation_clips(config, split: str, frames: int | None, num: int | None,
                      shuffle_time: bool, notes: bool) -> grain.MapDataset:
  """The first `num` clips of `frames` frames (default model.clip_length) in the builder's
  evaluation order: elements uint8 (F, S, S, 3), or with `notes` their annotations
  {per-frame (F, ...), per-video}; frames in time_permutation order if `shuffle_time`."""
  frames = frames or config.model.clip_length
  videos = _videos(config, split)
  rows = registry.builder_class(config.data.name).evaluation_clips(videos.lengths, frames)
  rows = _stored_clips(config, split, videos, rows, frames)[:num]
  times = _clip_times(config, frames)

  def read(i):
    video, start = rows[i]
    clip = start + (times[time_permutation(i, frames)] if shuffle_time else times)
    if not notes:
      return videos.read(video, clip)
    per_frame, per_video = videos.notes(video, clip)
    return {**per_frame, **per_video}

  return grain.MapDataset.range(len(rows)).map(read)


def make_train_iterator(config, *, process_index: int | None = None,
                        process_count: int | None = None) -> grain.DatasetIterator:
  """Infinite, shuffled, batched training iterator for one process.

  Each process reads the disjoint shard `process_index::process_count` of the
  train split, shuffled with seed config.seed and reshuffled every epoch.
  The order depends only on (seed, shard): the same config gives the same
  batches, and `get_state`/`set_state` (or grain.checkpoint.CheckpointSave /
  CheckpointRestore inside an orbax Composite) resume it exactly.

  Video datasets: an epoch is the builder's training clips of T =
  config.model.clip_length frames (RealTraffic: every clip once; BallsInBowl:
  every sequence once, from a start drawn per example and epoch by grain's
  random_map, seeded by config.seed and the element's position, so a restored
  iterator draws the same starts).

  Args:
    config: the full config (seed, data.*, train.batch_size; model.clip_length).
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
  if feature_key(config) == 'video':
    ds, read = _training_clips(config)
  else:
    ds, read = grain.MapDataset.source(_source(config, 'train')), None
  ds = ds[process_index::process_count]
  if len(ds) < batch:
    raise ValueError(f'{len(ds)} training examples per process < batch {batch}')
  ds = ds.seed(config.seed).shuffle().repeat(None)
  ds = ds.random_map(read) if read else ds.map(_image)
  ds = ds.batch(batch, drop_remainder=True)
  return iter(ds.to_iter_dataset(_read_options(config)))


def _training_clips(config):
  """(MapDataset of training-clip numbers, random_map reading clip i from a drawn start)."""
  clip_length = config.model.clip_length
  videos = _videos(config, 'train')
  rows = registry.builder_class(config.data.name).training_clips(videos.lengths, clip_length)
  rows = _stored_clips(config, 'train', videos, rows, clip_length)
  times = _clip_times(config, clip_length)
  logging.info('%s train: %d training examples of %d-frame clips from %d videos',
               config.data.name, len(rows), clip_length, len(videos.lengths))

  def read(i, rng: np.random.Generator):
    video, start, count = rows[i]
    return {'video': videos.read(video, start + rng.integers(count) + times)}

  return grain.MapDataset.range(len(rows)), read


def _split_dataset(config, split: str, num: int | None, frames: int | None,
                   shuffle_time: bool, notes: bool) -> grain.MapDataset:
  """The fixed-order view of iterate_split (pixels) and annotations (`notes`)."""
  if feature_key(config) == 'video':
    return _evaluation_clips(config, split, frames, num, shuffle_time, notes)
  if frames is not None or shuffle_time:
    raise ValueError(f'frames= and shuffle_time= are for video datasets; '
                     f'{config.data.name!r} is a dataset of images')
  ds = grain.MapDataset.source(_source(config, split))[:num]
  if notes:
    return ds.map(lambda example: {k: v for k, v in example.items() if k != 'image'})
  return ds.map(lambda example: common.decode_png(example['image']))


def iterate_split(config, split: str, batch_size: int, num: int | None = None, *,
                  frames: int | None = None, shuffle_time: bool = False
                  ) -> Iterator[np.ndarray]:
  """Deterministic, finite pass over `split` in a fixed order.

  Images: uint8 (b, S, S, 3) batches in stored order. Video datasets: uint8
  (b, F, S, S, 3) batches of the builder's evaluation clips of F = `frames`
  frames (default model.clip_length): BallsInBowl the first F frames of every
  sequence; RealTraffic one clip per video from frame 0, then further
  non-overlapping clips from the longest videos (builders/real_traffic.py).
  shuffle_time: each clip's frames in a random order (time_permutation: the
  same for the same clip at every call), the FVD baseline of the paper.
  The first `num` examples (all if None); the last batch may be smaller.
  """
  ds = _split_dataset(config, split, num, frames, shuffle_time, notes=False)
  yield from ds.batch(batch_size, drop_remainder=False).to_iter_dataset(_read_options(config))


def annotations(config, split: str, num: int | None = None, *, frames: int | None = None,
                shuffle_time: bool = False) -> dict[str, np.ndarray]:
  """Every non-pixel feature of `split`, stacked in the order of iterate_split (same
  arguments), e.g. shapes: num_objects (N,), poses (N, K, 2), ...; video datasets per
  clip: per-frame features (N, F, ...) (BallsInBowl positions (N, F, K, 2); RealTraffic
  video_id, frame, video_frames (N, F)), per-video ones (N, ...)."""
  ds = _split_dataset(config, split, num, frames, shuffle_time, notes=True)
  rows = list(ds.to_iter_dataset(_read_options(config)))
  if not rows or not rows[0]:
    return {}
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}
