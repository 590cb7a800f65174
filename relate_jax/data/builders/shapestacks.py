"""ShapeStacks (Groth et al., 2018) RGB renders as RELATE trains on it.

Selection (the reference's `ShapeStack` loader):
  scenario directories: test = the names in splits/default/test.txt; train =
    every directory in recordings/ whose name starts with 'e' (env_...) and is
    not in test.txt, i.e. the published train and eval splits together.
    Both keep only towers of height <= MAX_HEIGHT (the number after '-h=' in
    the scenario name, e.g. env_ccs-easy-h=3-vcom=1-vpsf=0-v=12: height 3).
  frames inside a directory: RGB renders named
    rgb-w=<W>-f=<F>-l=<L>-c=<C>-cam_<N>-mono-<I>.png with camera N <= MAX_CAMERA
    (cam_1..cam_11: the 75-degree side views and cam_12 excluded with the
    45-degree top views cam_13..16, exactly as the reference's filename test
    `f[-13] == '_' or int(f[-12]) < 2` selects them).

Differences from the reference, on purpose:
  * Only 'rgb-' files are used. The reference takes every .png with a matching
    camera, so depth/segmentation maps unpacked into the same folders would be
    trained on as images; the published RGB archive holds rgb- files only, so
    on it both select the same frames.
  * Sampling: the reference draws a scenario uniformly, then one of its frames
    uniformly (a 100,000-item virtual epoch). A static dataset stores every
    selected frame once, so each scenario is weighted by its frame count. With
    the published data every kept scenario has the same 11 frames (one per
    camera), which makes the two schemes identical in distribution; scenarios
    with fewer frames would be weighted less.
  * The test split is a fixed set of every selected frame of the test
    scenarios, not one frame per index drawn with seed = index.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import tensorflow_datasets as tfds
from absl import logging

from relate_jax.data import common
from relate_jax.data.builders import raw

NAME = 'ShapeStacks'
PUBLISHED = ('https://shapestacks.robots.ox.ac.uk/#data (shapestacks-rgb + splits; '
             'test set also at https://www.dropbox.com/s/39rwcsfi3lzdr5i/shapestacks.zip '
             'from the RELATE README)')
MAX_HEIGHT = 5
MAX_CAMERA = 11
FOLDER = 'shapestacks'
SPLIT_FILE = os.path.join('splits', 'default', 'test.txt')

LAYOUT = f"""\
{FOLDER}/                 (data_dir may be this folder or its parent)
  recordings/env_ccs-easy-h=2-vcom=0-vpsf=0-v=1/
    rgb-w=0-f=0-l=0-c=original-cam_1-mono-0.png ... cam_16-mono-0.png
  recordings/env_.../      (one folder per scenario)
  splits/default/test.txt  (one scenario folder name per line; train.txt, eval.txt unused)"""

_HEIGHT = re.compile(r'-h=(\d+)')
_FRAME = re.compile(r'^rgb-.*-cam_(\d+)-mono-\d+\.png$')


def tower_height(scenario: str) -> int | None:
  """The tower height in a scenario name ('...-h=3-...' -> 3), None if absent."""
  found = _HEIGHT.findall(scenario)
  return int(found[-1]) if found else None


def camera_index(filename: str) -> int | None:
  """N of an RGB frame '...-cam_N-mono-I.png', None for any other file."""
  match = _FRAME.match(filename)
  return int(match.group(1)) if match else None


def read_split_file(path: str) -> list[str]:
  """Scenario names listed one per line (blank lines ignored)."""
  with open(path) as f:
    return [line.strip() for line in f if line.strip()]


def select(root: str, split: str) -> tuple[list[tuple[str, list[str]]], dict]:
  """Scenarios of `split` and their selected frames.

  Args:
    root: the ShapeStacks root (holding recordings/ and splits/).
    split: 'train' or 'test'.

  Returns:
    [(scenario name, sorted frame file names)] sorted by scenario name (only
    scenarios with at least one selected frame), and counts of what was
    dropped: {'scenarios', 'missing', 'no_height', 'too_tall', 'no_frames',
    'frames', 'other_files', 'high_cameras', 'other_entries'} ('other_entries':
    names in recordings/ not starting with 'e', train only).
  """
  recordings = os.path.join(root, 'recordings')
  test = read_split_file(os.path.join(root, SPLIT_FILE))
  stats = dict.fromkeys(('scenarios', 'missing', 'no_height', 'too_tall', 'no_frames',
                         'frames', 'other_files', 'high_cameras', 'other_entries'), 0)
  if split == 'test':
    names = sorted(set(test))
  else:
    held_out = set(test)
    entries = os.listdir(recordings)
    names = sorted(n for n in entries if n.startswith('e') and n not in held_out
                   and os.path.isdir(os.path.join(recordings, n)))
    stats['other_entries'] = sum(not n.startswith('e') for n in entries)
  selected = []
  for name in names:
    directory = os.path.join(recordings, name)
    height = tower_height(name)
    if not os.path.isdir(directory):
      stats['missing'] += 1
      continue
    if height is None:
      stats['no_height'] += 1
      continue
    if height > MAX_HEIGHT:
      stats['too_tall'] += 1
      continue
    frames = []
    for f in sorted(os.listdir(directory)):
      camera = camera_index(f)
      if camera is None:
        stats['other_files'] += 1
      elif camera > MAX_CAMERA:
        stats['high_cameras'] += 1
      else:
        frames.append(f)
    if not frames:
      stats['no_frames'] += 1
      continue
    stats['scenarios'] += 1
    stats['frames'] += len(frames)
    selected.append((name, frames))
  logging.info(
      'ShapeStacks %s: %d scenarios, %d frames kept; dropped %d scenarios taller '
      'than %d, %d without -h=, %d listed but absent, %d without frames; skipped %d '
      'frames from cameras > %d and %d files not named rgb-...-cam_N-mono-I.png; '
      "ignored %d recordings/ entries not starting with 'e'",
      split, stats['scenarios'], stats['frames'], stats['too_tall'], MAX_HEIGHT,
      stats['no_height'], stats['missing'], stats['no_frames'], stats['high_cameras'],
      MAX_CAMERA, stats['other_files'], stats['other_entries'])
  return selected, stats


class ShapeStacks(common.RelateBuilder):
  """ShapeStacks towers of height <= 5, cameras 1-11, split by splits/default/test.txt."""

  name = 'relate_shapestacks'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Every selected frame stored (reference draws one per scenario).'}
  BUILDER_CONFIGS = common.resolution_configs(common.SIZES)
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f'Download ShapeStacks from {PUBLISHED} and set config.data.data_dir to a '
      f'directory holding:\n{LAYOUT}')

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info(
        {'image': common.image_feature(self.builder_config.image_size)},
        homepage='https://shapestacks.robots.ox.ac.uk/')

  def _split_generators(self, dl_manager):
    data_dir = common.require_manual_dir(dl_manager, NAME, LAYOUT, PUBLISHED)
    root = raw.locate_root(data_dir, (FOLDER,), ('recordings', SPLIT_FILE), NAME, LAYOUT,
                           PUBLISHED)
    splits = {}
    for split in common.SPLITS:
      scenarios, _ = select(root, split)
      if not scenarios:
        raise raw.missing_data(NAME, f'no {split} frames pass the selection',
                               [os.path.join(root, 'recordings')], LAYOUT, PUBLISHED)
      paths = [os.path.join(root, 'recordings', name, f)
               for name, frames in scenarios for f in frames]
      splits[split] = self._generate_examples(root, self.capped(paths, split))
    return splits

  def _generate_examples(self, root: str, paths: list[str]) -> Iterator[tuple[str, dict]]:
    size = self.builder_config.image_size
    yield from raw.map_ordered(
        lambda p: (os.path.relpath(p, root), {'image': raw.encoded_square(p, p, size)}),
        paths)
