"""CLEVR5 and CLEVR5-vbg, as distributed by the RELATE authors.

Both were rendered with the generator of the object-centric-flow (OCF) authors:
90,000 training and 10,000 test scenes of up to 5 objects, 'vbg' with a varying
background colour. Splits are the flat train/ and test/ folders; every PNG is
used (the reference's `CLEVROBC` loader, which lists them unsorted: sorted here
so the build is deterministic).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import tensorflow_datasets as tfds
from absl import logging

from relate_jax.data import common
from relate_jax.data.builders import raw

VARIANTS = {
    '': ('CLEVR5', 'https://www.dropbox.com/s/upweooedy0wpx89/clevr5.zip (RELATE README)'),
    'vbg': ('CLEVR5_vbg',
            'https://www.dropbox.com/s/w5lze0nvgr314p1/clevr5_vbg.zip (RELATE README)'),
}


def layout(folder: str) -> str:
  return f"""\
{folder}/          (data_dir may be this folder or its parent)
  train/*.png     (90,000 flat, no sub-folders)
  test/*.png      (10,000)"""


def list_split(root: str, split: str) -> list[str]:
  """Sorted absolute paths of the PNGs in root/<split>/; other entries are logged."""
  directory = os.path.join(root, split)
  names = os.listdir(directory)
  pngs = sorted(n for n in names if n.endswith('.png'))
  if len(pngs) != len(names):
    logging.warning('%s: ignored %d entries that are not .png files', directory,
                    len(names) - len(pngs))
  return [os.path.join(directory, n) for n in pngs]


class Clevr5(common.RelateBuilder):
  """CLEVR5 (config '128', ...) and CLEVR5-vbg ('vbg_128', ...): train/ and test/ PNGs."""

  name = 'relate_clevr5'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Every PNG of train/ and test/, sorted.'}
  BUILDER_CONFIGS = common.resolution_configs(common.SIZES, variants=tuple(VARIANTS))
  MANUAL_DOWNLOAD_INSTRUCTIONS = '\n'.join(
      f'{folder}: download {url}, unzip, and set config.data.data_dir to a directory '
      f'holding:\n{layout(folder)}' for folder, url in VARIANTS.values())

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info({'image': common.image_feature(self.builder_config.image_size)})

  def _split_generators(self, dl_manager):
    folder, url = VARIANTS[self.builder_config.variant]
    data_dir = common.require_manual_dir(dl_manager, folder, layout(folder), url)
    root = raw.locate_root(data_dir, (folder, folder.lower()), ('train', 'test'), folder,
                           layout(folder), url)
    splits = {}
    for split in common.SPLITS:
      paths = list_split(root, split)
      if not paths:
        raise raw.missing_data(folder, f'no .png files in {split}/',
                               [os.path.join(root, split)], layout(folder), url)
      logging.info('%s %s: %d images', folder, split, len(paths))
      splits[split] = self._generate_examples(self.capped(paths, split))
    return splits

  def _generate_examples(self, paths: list[str]) -> Iterator[tuple[str, dict]]:
    size = self.builder_config.image_size
    yield from raw.map_ordered(
        lambda p: (os.path.basename(p), {'image': raw.encoded_square(p, p, size)}), paths)
