"""Datasets for RELATE: preparation (TFDS array_record, no TensorFlow) and grain readers.

  from relate_jax import data
  data.prepare(config)                      # build once (progress bars); clear error if raw data missing
  data.num_examples(config, 'train')
  it = data.make_train_iterator(config)     # infinite {'image': uint8 (b, S, S, 3)}; state via grain.checkpoint
  for images in data.iterate_split(config, 'test', 100): ...   # finite, fixed order
  data.iterate_split(config, 'test', 10, frames=30)           # video: 30-frame evaluation clips
  data.iterate_split(config, 'train', 10, frames=30, shuffle_time=True)  # FVD baseline
  x = data.to_model_range(batch['image'], config.data.pixel_range)
  grid = data.make_grid(images_uint8, ncol=8); data.save_png('grid.png', grid)

Conventions for dataset builders: relate_jax/data/common.py; names: registry.py.
"""

from relate_jax.data.common import MissingDataError, make_grid, save_png
from relate_jax.data.pipeline import (annotations, builder, feature_key, iterate_split,
                                      make_train_iterator, num_examples, prepare, tfds_dir)
from relate_jax.pixels import to_model_range

__all__ = [
    'MissingDataError', 'annotations', 'builder', 'feature_key', 'iterate_split',
    'make_grid', 'make_train_iterator', 'num_examples', 'prepare', 'save_png', 'tfds_dir',
    'to_model_range',
]
