"""CLEVR v1.0 (Johnson et al., 2017) as RELATE trains on it.

Splits, as the reference's `CLEVR_v1` loader:
  train: images/train + images/val whose scene (scenes/CLEVR_{train,val}_scenes.json)
    has MIN_OBJECTS..MAX_OBJECTS (3-6) entries in `objects`;
  test: every image in images/test (CLEVR publishes no scenes for test, no filter).
Images are 480x320 PNGs, squashed to S x S with LANCZOS (aspect ratio not kept).

The raw data is read either extracted or straight from the published
CLEVR_v1.0.zip (18 GB), without unpacking it.
"""

from __future__ import annotations

import json
import os
import posixpath
import zipfile
from collections.abc import Callable, Iterator

import tensorflow_datasets as tfds
from absl import logging

from relate_jax.data import common
from relate_jax.data.builders import raw

NAME = 'CLEVR v1.0'
PUBLISHED = ('https://cs.stanford.edu/people/jcjohns/clevr/ '
             '(https://dl.fbaipublicfiles.com/clevr/CLEVR_v1.0.zip)')
MIN_OBJECTS, MAX_OBJECTS = 3, 6  # Reference num_objects_min / num_objects_max.
FOLDER = 'CLEVR_v1.0'
ZIP_NAME = 'CLEVR_v1.0.zip'
SPLITS = ('train', 'val', 'test')
SCENE_SPLITS = ('train', 'val')  # test has no scene file.

LAYOUT = f"""\
{FOLDER}/                      (data_dir may be this folder or its parent)
  images/train/CLEVR_train_000000.png ...  (70,000)
  images/val/CLEVR_val_000000.png ...      (15,000)
  images/test/CLEVR_test_000000.png ...    (15,000)
  scenes/CLEVR_train_scenes.json
  scenes/CLEVR_val_scenes.json
or the unopened {ZIP_NAME} directly inside data_dir (read in place, no extraction)."""

_REQUIRED = tuple(f'images/{s}' for s in SPLITS) + tuple(
    f'scenes/CLEVR_{s}_scenes.json' for s in SCENE_SPLITS)


class ClevrFiles:
  """Read access to a CLEVR_v1.0 tree, extracted on disk or inside the zip.

  Paths are relative to the CLEVR_v1.0 root with '/' separators, e.g.
  'images/train/CLEVR_train_000000.png'.
  """

  def __init__(self, root: str | None = None, zip_path: str | None = None):
    self.root = root
    self.zip_path = zip_path
    self._zip = None
    self._prefix = ''
    self._members: dict[str, list[str]] = {}
    if zip_path is not None:
      self._zip = zipfile.ZipFile(zip_path)
      self._index_zip()

  @property
  def location(self) -> str:
    return self.zip_path if self.zip_path else self.root

  def _index_zip(self):
    """Finds the CLEVR root inside the zip and lists the images of every split."""
    names = self._zip.namelist()
    marker = 'scenes/CLEVR_train_scenes.json'
    roots = [n[:-len(marker)] for n in names if n.endswith(marker)]
    self._prefix = roots[0] if roots else f'{FOLDER}/'
    present = set(names)
    for name in names:
      if not name.startswith(self._prefix):
        continue
      rel = name[len(self._prefix):]
      parent, base = posixpath.split(rel)
      if base and posixpath.dirname(parent) == 'images':
        self._members.setdefault(parent, []).append(base)
    missing = [r for r in _REQUIRED
               if r not in self._members and self._prefix + r not in present]
    if missing:
      self._zip.close()
      raise raw.missing_data(NAME, f'{self.zip_path} lacks ' + ', '.join(missing),
                             [self.zip_path], LAYOUT, PUBLISHED)

  @classmethod
  def find(cls, data_dir: str) -> 'ClevrFiles':
    """Opens CLEVR in data_dir, data_dir/CLEVR_v1.0 or data_dir/CLEVR_v1.0.zip.

    Raises:
      MissingDataError: none of these holds the published layout.
    """
    zip_path = os.path.join(data_dir, ZIP_NAME)
    for root in (data_dir, os.path.join(data_dir, FOLDER)):
      if all(os.path.exists(os.path.join(root, r)) for r in _REQUIRED):
        return cls(root=root)
    if os.path.isfile(zip_path):
      return cls(zip_path=zip_path)
    missing = [r for r in _REQUIRED if not os.path.exists(os.path.join(data_dir, r))]
    raise raw.missing_data(
        NAME, 'missing ' + ', '.join(missing) + f' and no {ZIP_NAME}',
        [data_dir, os.path.join(data_dir, FOLDER), zip_path], LAYOUT, PUBLISHED)

  def close(self):
    if self._zip is not None:
      self._zip.close()

  def images(self, split: str) -> list[str]:
    """Sorted file names of the PNGs in images/<split>; other files are logged."""
    if self._zip is not None:
      names = self._members.get(f'images/{split}', [])
    else:
      names = os.listdir(os.path.join(self.root, 'images', split))
    pngs = sorted(n for n in names if n.endswith('.png'))
    if len(pngs) != len(names):
      logging.warning('CLEVR images/%s: ignored %d non-PNG entries', split,
                      len(names) - len(pngs))
    return pngs

  def read_bytes(self, rel: str) -> bytes:
    if self._zip is not None:
      return self._zip.read(self._prefix + rel)
    with open(os.path.join(self.root, *rel.split('/')), 'rb') as f:
      return f.read()

  def reader(self, rel: str) -> tuple[Callable[[], bytes], str]:
    """A function returning the bytes of `rel`, and its name for error messages."""
    where = f'{self.zip_path}:{self._prefix}{rel}' if self._zip else os.path.join(
        self.root, *rel.split('/'))
    return (lambda: self.read_bytes(rel)), where

  def scenes(self, split: str) -> list[dict]:
    rel = f'scenes/CLEVR_{split}_scenes.json'
    read, where = self.reader(rel)
    try:
      return json.loads(read())['scenes']
    except (ValueError, KeyError) as e:
      raise ValueError(f'cannot parse CLEVR scene file {where}: {e!r}') from e


def select_train(files: ClevrFiles, min_objects: int = MIN_OBJECTS,
                 max_objects: int = MAX_OBJECTS) -> tuple[list[str], dict]:
  """Train + val images whose scene has min_objects..max_objects objects.

  Images are matched to scenes by `image_filename` (the reference zips sorted
  file names with the scene list by position, which is the same pairing for
  the published files but silently misaligns if one is missing).

  Returns:
    Sorted relative paths ('images/<split>/<file>') of the kept images, and
    per-split counts {'train': {'images', 'kept', 'too_few', 'too_many'}, ...}.

  Raises:
    ValueError: an image has no scene entry (the two disagree).
  """
  kept, stats = [], {}
  for split in SCENE_SPLITS:
    names = files.images(split)
    counts = {s['image_filename']: len(s['objects']) for s in files.scenes(split)}
    unmatched = [n for n in names if n not in counts]
    if unmatched:
      raise ValueError(
          f'CLEVR {split}: {len(unmatched)} images have no entry in '
          f'scenes/CLEVR_{split}_scenes.json (e.g. {unmatched[0]}) in {files.location}; '
          'the download is incomplete or mixed.')
    n_objects = [counts[n] for n in names]
    split_kept = [f'images/{split}/{n}' for n, c in zip(names, n_objects)
                  if min_objects <= c <= max_objects]
    stats[split] = {
        'images': len(names),
        'kept': len(split_kept),
        'too_few': sum(c < min_objects for c in n_objects),
        'too_many': sum(c > max_objects for c in n_objects),
        'scenes_without_image': len(counts) - len(names),
    }
    kept += split_kept
    logging.info(
        'CLEVR %s: kept %d of %d images with %d-%d objects (dropped %d with fewer, '
        '%d with more)', split, stats[split]['kept'], len(names), min_objects,
        max_objects, stats[split]['too_few'], stats[split]['too_many'])
    if stats[split]['scenes_without_image']:
      logging.warning('CLEVR %s: %d scenes have no image file', split,
                      stats[split]['scenes_without_image'])
  return kept, stats


def select_test(files: ClevrFiles) -> list[str]:
  """Every image in images/test, sorted (no scene file exists for test)."""
  return [f'images/test/{n}' for n in files.images('test')]


class Clevr(common.RelateBuilder):
  """CLEVR v1.0: train+val scenes with 3-6 objects (train), all test images (test)."""

  name = 'relate_clevr'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Reference selection: train+val with 3-6 objects; test unfiltered.'}
  BUILDER_CONFIGS = common.resolution_configs(common.SIZES)
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f'Download CLEVR v1.0 from {PUBLISHED} and set config.data.data_dir to a '
      f'directory holding:\n{LAYOUT}')

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info(
        {'image': common.image_feature(self.builder_config.image_size)},
        homepage='https://cs.stanford.edu/people/jcjohns/clevr/')

  def _split_generators(self, dl_manager):
    data_dir = common.require_manual_dir(dl_manager, NAME, LAYOUT, PUBLISHED)
    files = ClevrFiles.find(data_dir)
    train, _ = select_train(files)
    test = select_test(files)
    return {'train': self._generate_examples(files, self.capped(train, 'train')),
            'test': self._generate_examples(files, self.capped(test, 'test'))}

  def _generate_examples(self, files: ClevrFiles, paths: list[str]
                         ) -> Iterator[tuple[str, dict]]:
    size = self.builder_config.image_size

    def example(rel):
      read, where = files.reader(rel)
      return rel, {'image': raw.encoded_square(read, where, size)}

    yield from raw.map_ordered(example, paths)
