"""RealTraffic: frames of traffic-camera videos (YouTube, 10 fps), RELATE authors' release.

Selection (the reference's `CarsRealTraffic` loader):
  videos: the folders of data_dir whose name starts with 'f' and ends in a
    three-digit number NNN: train = NNN < 550 (at most the first 550 of them),
    test = NNN >= 550.
  clips: a video's *.jpeg frames in name order f_0 .. f_{n-1} give, for every
    start j < n - 3T, the clip (f_j, f_{j+2}, ..., f_{j+2(T-1)}) (stride 2).
    The static model reads T = 1 (the reference's static configs use seq_len
    1, so the last three frames of every video are never used); the video
    model T = config.model.clip_length (10 in cars_real_traffic-video-train).

Storage (one builder config per resolution, '32' ... '256'): every frame f_j
with j < n - 3 is one example, stored once: 'image' plus 'video_id' (index of
the video in its split's sorted selection), 'frame' (j) and 'video_frames'
(n). These are all the frames any clip uses, for any T: the last frame of the
last clip is j + 2(T-1) <= n - T - 3 < n - 3. Video datasets
('real_traffic_video') read the same files: relate_jax/data/pipeline.py
gathers a clip's frames by random access at read time, so T is chosen then
(training: config.model.clip_length; evaluation: 30). Storing every clip
instead (version 1.0.0) wrote each frame about T times.

Evaluation clips (:meth:`RealTraffic.evaluation_clips`, F frames, stride 2,
the same rule j < n - 3F): first the clip at start 0 of every video long
enough for one, in video order; then further clips in rounds r = 1, 2, ...:
the clip at start r·2F (its frames follow the previous clip's without
overlap) of every video that still has one, longest videos first.
fvd500/kvd500 take the first 500 of that order, or all when there are fewer
(metrics.jsonl records the count; the paper reports 275 RealTraffic test
clips, a count the reference code has no rule for).

Size (frames x bytes per PNG frame): photographic frames at 128 px take about
39 KB each (measured: 321 frames of a panned camera photo, 12.5 MB prepared;
49 KB is the raw pixel count). The paper's 5 h at 10 fps (180,000 frames in 683
videos, 3 dropped per video) thus need about 7 GB at 128 px, 1.7 GB at 64 px,
for the static and the video model together. Version 1.0.0 wrote each clip of
T = 10 frames separately, about 10 (n - 30) frame copies per video on top of
the static copy: about 67 GB at 128 px (8.3x more on the measured sample).
Indexing the frames once reads every record (about 2,700 records/s on 2 CPU
cores, so about a minute for the full set).

Differences from the reference, on purpose:
  * Folders and frames are sorted by name with numbers compared by value. The
    reference cuts the train list to 550 entries of an unsorted os.listdir, so
    which videos it trains on depends on the file system; here it is fixed.
    Zero-padded names sort the same either way; unpadded frame names
    (img_9, img_10) are ordered in time here, not as strings.
  * Each clip is read once per epoch (the reference samples clip index mod
    #clips in a 100,000-item virtual epoch, which weights clips the same way).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from relate_jax.data import common
from relate_jax.data.builders import raw

NAME = 'RealTraffic'
PUBLISHED = ('https://www.dropbox.com/s/n71t0ln6i43ruuo/cars_real_traffic.zip '
             '(RELATE README, "RealTraffic")')
FOLDER = 'cars_real_traffic'
SPLIT_INDEX = 550  # Videos numbered below this train, the rest test.
MAX_TRAIN_VIDEOS = 550  # The reference keeps the first 550 train folders.
STRIDE = 2  # Frames between consecutive clip frames.

LAYOUT = f"""\
{FOLDER}/                   (data_dir may be this folder or its parent)
  f...000/*.jpeg            (one folder per video: name starts with 'f' and ends in a
  f...001/*.jpeg             3-digit number NNN; NNN < {SPLIT_INDEX} train, >= {SPLIT_INDEX} test;
  ...                        frames in name order)"""


def video_number(name: str) -> int | None:
  """NNN of a video folder 'f...NNN', None if the name does not fit."""
  if not name.startswith('f') or len(name) < 4 or not name[-3:].isdigit():
    return None
  return int(name[-3:])


def select_videos(root: str, split: str) -> tuple[list[str], dict]:
  """Video folder names of `split`, sorted; counts of the entries passed over.

  Returns:
    Names, and {'videos', 'other_split', 'unnumbered', 'over_cap'}: folders in
    the other split, 'f...' entries that are not folders ending in 3 digits,
    and train folders beyond the first MAX_TRAIN_VIDEOS.
  """
  stats = dict.fromkeys(('videos', 'other_split', 'unnumbered', 'over_cap'), 0)
  names = []
  for name in sorted(os.listdir(root), key=raw.natural_key):
    if not name.startswith('f'):
      continue
    number = video_number(name)
    if number is None or not os.path.isdir(os.path.join(root, name)):
      stats['unnumbered'] += 1
    elif (number < SPLIT_INDEX) == (split == 'train'):
      names.append(name)
    else:
      stats['other_split'] += 1
  if split == 'train' and len(names) > MAX_TRAIN_VIDEOS:
    stats['over_cap'] = len(names) - MAX_TRAIN_VIDEOS
    names = names[:MAX_TRAIN_VIDEOS]
  stats['videos'] = len(names)
  logging.info('RealTraffic %s: %d videos; passed over %d of the other split, %d '
               "'f...' entries not folders ending in 3 digits, %d train folders beyond "
               'the first %d', split, len(names), stats['other_split'], stats['unnumbered'],
               stats['over_cap'], MAX_TRAIN_VIDEOS)
  return names, stats


def list_frames(directory: str) -> list[str]:
  """Sorted *.jpeg names in a video folder; other files are logged."""
  names = os.listdir(directory)
  frames = sorted((n for n in names if n.endswith('.jpeg')), key=raw.natural_key)
  if len(frames) != len(names):
    logging.warning('%s: ignored %d files that are not .jpeg', directory,
                    len(names) - len(frames))
  return frames


def num_starts(n_frames: int, clip_length: int) -> int:
  """Clips of T frames in a video of n frames: starts j = 0 .. n - 3T - 1.

  Clip j holds frames j, j+2, ..., j+2(T-1). The reference's bound n - 3T
  leaves T frames of slack past the last clip frame (at index j + 2(T-1) <
  n - T - 2); it is kept so the clip sets match.
  """
  return max(0, n_frames - 3 * clip_length)


class RealTraffic(common.RelateBuilder):
  """RealTraffic frames, each stored once with its video and frame index."""

  name = 'relate_real_traffic'
  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {
      '1.0.0': 'Sorted folders; static frames and stride-2 clips.',
      '1.1.0': 'Frames carry video_id, frame and video_frames; clips are gathered from them '
               'at read time (the stored-clip configs video_* are gone).',
  }
  BUILDER_CONFIGS = common.resolution_configs(common.SIZES)
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f'Download {PUBLISHED}, unzip, and set config.data.data_dir to a directory '
      f'holding:\n{LAYOUT}')
  CLIP_STRIDE = STRIDE  # Video frames between consecutive clip frames.

  @staticmethod
  def training_clips(lengths, clip_length: int) -> np.ndarray:
    """Every clip of the reference rule once: rows (video, start, 1), int64 (C, 3).

    The last column is the number of starts a training example draws from (the
    pipeline picks start + U{0 .. count-1}): 1, each clip is its own example.

    Args:
      lengths: (V,) frames n of each video of the split.
      clip_length: T.
    """
    rows = [(v, j, 1) for v, n in enumerate(lengths) for j in range(num_starts(n, clip_length))]
    return np.asarray(rows, np.int64).reshape(-1, 3)

  @staticmethod
  def evaluation_clips(lengths, clip_length: int) -> np.ndarray:
    """Non-overlapping clips in evaluation order (module docstring): rows (video, start).

    Round 0 takes the clip at start 0 of every video with one, in video order;
    round r the clip at start r·2T of every video that has it, longest first.
    """
    lengths = np.asarray(lengths, np.int64)
    step = STRIDE * clip_length  # A clip spans 2T - 1 frames: the next one starts 2T later.
    rounds = -(-np.maximum(lengths - 3 * clip_length, 0) // step)  # Starts r·2T < n - 3T.
    rows = []
    longest_first = np.argsort(-lengths, kind='stable')
    for r in range(int(rounds.max(initial=0))):
      order = range(len(lengths)) if r == 0 else longest_first
      rows += [(v, r * step) for v in order if rounds[v] > r]
    return np.asarray(rows, np.int64).reshape(-1, 2)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info({
        'image': common.image_feature(self.builder_config.image_size),
        'video_id': tfds.features.Scalar(np.int32),
        'frame': tfds.features.Scalar(np.int32),
        'video_frames': tfds.features.Scalar(np.int32),
    })

  def _split_generators(self, dl_manager):
    data_dir = common.require_manual_dir(dl_manager, NAME, LAYOUT, PUBLISHED)
    root = data_dir
    if not any(video_number(n) is not None for n in os.listdir(data_dir)):
      nested = os.path.join(data_dir, FOLDER)
      if not os.path.isdir(nested):
        raise raw.missing_data(NAME, "no video folders 'f...NNN'", [data_dir, nested],
                               LAYOUT, PUBLISHED)
      root = nested
    splits = {}
    for split in common.SPLITS:
      videos = []
      for video in select_videos(root, split)[0]:
        directory = os.path.join(root, video)
        videos.append([os.path.join(directory, f) for f in list_frames(directory)])
      num_frames = sum(num_starts(len(frames), 1) for frames in videos)
      if not num_frames:
        raise raw.missing_data(NAME, f'no {split} video has more than 3 .jpeg frames',
                               [root], LAYOUT, PUBLISHED)
      logging.info('RealTraffic %s: %d frames (the last 3 of each video dropped) of %d '
                   'videos', split, num_frames, len(videos))
      splits[split] = self._generate_examples(videos, len(self.capped(range(num_frames),
                                                                       split)))
    return splits

  def _generate_examples(self, videos: list[list[str]], num_frames: int
                         ) -> Iterator[tuple[str, dict]]:
    """The first `num_frames` frames f_j, j < n - 3, video by video."""
    size = self.builder_config.image_size
    for video_id, frames in enumerate(videos):
      kept = range(min(num_starts(len(frames), 1), num_frames))
      num_frames -= len(kept)
      encoded = raw.map_ordered(lambda j: raw.encoded_square(frames[j], frames[j], size), kept)
      for j, png in zip(kept, encoded):
        key = f'{os.path.basename(os.path.dirname(frames[j]))}/{os.path.basename(frames[j])}'
        yield key, {'image': png, 'video_id': video_id, 'frame': j,
                    'video_frames': len(frames)}
