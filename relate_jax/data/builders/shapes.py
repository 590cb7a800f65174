"""TFDS builder of the embedded 'shapes' dataset (rendered locally, no download).

Scenes come from ``relate_jax.data.shapes`` (CLEVR-like ground plane with 2-5
non-intersecting spheres, cubes and cylinders). Scene i of a split is a pure
function of (DATA_SEED, split, i), the same at every resolution.
"""

import numpy as np
import tensorflow_datasets as tfds

from relate_jax.data import common
from relate_jax.data import shapes

NUM_TRAIN = 20_000
NUM_TEST = 2_000
# The 'tiny' variant (registry name 'shapes_tiny'): for tests and smoke runs.
NUM_TRAIN_TINY = 64
NUM_TEST_TINY = 16
DATA_SEED = 0  # Fixed: the dataset is the same for every run; config.seed only orders it.


class Shapes(common.RelateBuilder):
  """Procedural CLEVR-like scenes: 2-5 shaded objects that never intersect."""

  name = 'relate_shapes'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = (
      common.resolution_configs(common.SIZES, num_train=NUM_TRAIN, num_test=NUM_TEST)
      + common.resolution_configs(common.SIZES, variants=('tiny',),
                                  num_train=NUM_TRAIN_TINY, num_test=NUM_TEST_TINY))

  def _info(self) -> tfds.core.DatasetInfo:
    k = shapes.MAX_OBJECTS
    return self.dataset_info({
        'image': common.image_feature(self.builder_config.image_size),
        'num_objects': tfds.features.Scalar(np.int32),
        # θ = −(x, y) of each object's centre in normalised image coordinates,
        # absent slots at shapes.ABSENT_POSE; objects in drawing order (far to near).
        'poses': tfds.features.Tensor(shape=(k, 2), dtype=np.float32),
        'shapes': tfds.features.Tensor(shape=(k,), dtype=np.int32),
        'colors': tfds.features.Tensor(shape=(k,), dtype=np.int32),
        'sizes': tfds.features.Tensor(shape=(k,), dtype=np.float32),
    })

  def _split_generators(self, dl_manager):
    del dl_manager  # Rendered locally.
    cfg = self.builder_config
    return {'train': self._generate_examples('train', cfg.num_train),
            'test': self._generate_examples('test', cfg.num_test)}

  def _generate_examples(self, split: str, count: int):
    size = self.builder_config.image_size
    for index in range(count):
      image, notes = shapes.generate(DATA_SEED, split, index, size)
      yield index, {'image': common.encode_png(image), **notes}
