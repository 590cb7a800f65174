"""RealTraffic: frames of traffic-camera videos (YouTube, 10 fps), RELATE authors' release.

Selection (the reference's `CarsRealTraffic` loader):
  videos: the folders of data_dir whose name starts with 'f' and ends in a
    three-digit number NNN: train = NNN < 550 (at most the first 550 of them),
    test = NNN >= 550.
  clips: a video's *.jpeg frames in name order f_0 .. f_{n-1} give, for every
    start j < n - 3T, the clip (f_j, f_{j+2}, ..., f_{j+2(T-1)}) (stride 2).
  Two views share this rule:
    static (builder configs '128', ...; feature 'image'): T = 1, every frame
      f_j with j < n - 3 (the reference's static configs use seq_len 1, so the
      last three frames of every video are never used);
    video (configs 'video_128', ...; feature 'video', T = CLIP_LENGTH = 10, the
      training clip length of cars_real_traffic-video-train).

Differences from the reference, on purpose:
  * Folders and frames are sorted by name with numbers compared by value. The
    reference cuts the train list to 550 entries of an unsorted os.listdir, so
    which videos it trains on depends on the file system; here it is fixed.
    Zero-padded names sort the same either way; unpadded frame names
    (img_9, img_10) are ordered in time here, not as strings.
  * Each clip is stored once (the reference samples clip index mod #clips in a
    100,000-item virtual epoch, which weights clips the same way).
  * The video view stores every overlapping clip, so each frame is written
    about T times: budget ~T x the static view's disk space.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
CLIP_LENGTH = 10  # T of the video view (reference seq_len for training).
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


def clip_frames(n_frames: int, clip_length: int, stride: int = STRIDE) -> list[list[int]]:
  """Frame indices of every clip of a video: [j, j+s, ..., j+s(T-1)] for j < n - 3T.

  The reference's bound n - 3T leaves T frames of slack past the last clip
  frame (at index j + 2(T-1) < n - T - 2); it is kept so the clip sets match.
  """
  return [list(range(j, j + stride * clip_length, stride))
          for j in range(max(0, n_frames - 3 * clip_length))]


class RealTraffic(common.RelateBuilder):
  """RealTraffic frames ('128', ...) or T-frame clips ('video_128', ...)."""

  name = 'relate_real_traffic'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Sorted folders; static frames and stride-2 clips.'}
  BUILDER_CONFIGS = (common.resolution_configs(common.SIZES) + common.resolution_configs(
      common.SIZES, variants=('video',), clip_length=CLIP_LENGTH))
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f'Download {PUBLISHED}, unzip, and set config.data.data_dir to a directory '
      f'holding:\n{LAYOUT}')

  @property
  def clip_length(self) -> int:
    """T: 1 for the static view."""
    return self.builder_config.clip_length or 1

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    if self.builder_config.clip_length:
      features = {'video': common.clip_feature(size, self.builder_config.clip_length)}
    else:
      features = {'image': common.image_feature(size)}
    return self.dataset_info(features)

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
      videos, too_short = [], 0
      for video in select_videos(root, split)[0]:
        directory = os.path.join(root, video)
        frames = [os.path.join(directory, f) for f in list_frames(directory)]
        clips = clip_frames(len(frames), self.clip_length)
        if clips:
          videos.append((video, frames, clips))
        else:
          too_short += 1
      num_clips = sum(len(clips) for _, _, clips in videos)
      if not num_clips:
        raise raw.missing_data(
            NAME, f'no {split} video has more than {3 * self.clip_length} .jpeg frames',
            [root], LAYOUT, PUBLISHED)
      logging.info('RealTraffic %s: %d clips of %d frames from %d videos (%d videos '
                   'with <= %d frames give none)', split, num_clips, self.clip_length,
                   len(videos), too_short, 3 * self.clip_length)
      num_clips = len(self.capped(range(num_clips), split))
      splits[split] = self._generate_examples(videos, num_clips)
    return splits

  def _generate_examples(self, videos: list[tuple[str, list[str], list[list[int]]]],
                         num_clips: int) -> Iterator[tuple[str, dict]]:
    """The first `num_clips` clips; a video's frames are encoded once for all its clips."""
    size = self.builder_config.image_size
    static = not self.builder_config.clip_length
    for video, frames, clips in videos:
      clips = clips[:num_clips]
      num_clips -= len(clips)
      needed = sorted({i for clip in clips for i in clip})
      encoded = dict(zip(needed, raw.map_ordered(
          lambda i: raw.encoded_square(frames[i], frames[i], size), needed)))
      for clip in clips:
        key = f'{video}/{os.path.basename(frames[clip[0]])}'
        yield key, ({'image': encoded[clip[0]]} if static
                    else {'video': [encoded[i] for i in clip]})
