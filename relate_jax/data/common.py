"""Conventions shared by every dataset builder in ``relate_jax/data/builders/``.

Read this before writing a builder; ``registry.py`` says how a builder is found.

Storage
  One ``tfds.core.GeneratorBasedBuilder`` subclass per dataset, in
  ``relate_jax/data/builders/<dataset>.py`` (inside the package: TFDS looks up
  dataset info by module, and builders outside an installed package break).
  Subclass :class:`RelateBuilder` below: it fixes ``file_format='array_record'``
  (random access through grain; the TFDS default, tfrecord, cannot be written
  without TensorFlow), the per-resolution builder configs and the split names
  ``'train'`` and ``'test'``. No TensorFlow anywhere: feed images as PNG bytes
  (:func:`encode_png`), never numpy arrays (TFDS needs TF to encode arrays).

  Set the class attribute ``name = 'relate_<dataset>'``: the ``relate_`` prefix
  keeps clear of datasets with the same name in the TFDS catalog (it has a
  ``clevr``), which would otherwise collide on registration.

Builder configs (one per resolution)
  ``BUILDER_CONFIGS = resolution_configs(SIZES)`` gives configs named ``'32'``,
  ``'64'``, ``'128'``, ``'256'`` (:func:`config_name`). A dataset with variants
  (CLEVR5 with a varying background, clip lengths, ...) passes
  ``variants=('', 'vbg')`` and gets ``'128'`` and ``'vbg_128'``; the registry
  entry names the variant. Inside ``_generate_examples`` read
  ``self.builder_config.image_size`` (and ``.variant``, ``.clip_length``).
  ``num_train`` / ``num_test`` in a config cap the number of examples written
  (None = all); tests use them to build tiny copies.

Features
  Static images: ``{'image': image_feature(S)}`` =
  ``tfds.features.Image(shape=(S, S, 3), encoding_format='png')``, fed PNG
  bytes from :func:`encode_png`. Read back as uint8 (S, S, 3) numpy arrays.
  Videos: store each frame once and let the pipeline cut clips of any length
  at read time (pipeline.py). Either a whole sequence per example,
  ``{'video': clip_feature(S, L)}`` = ``tfds.features.Sequence(image_feature(S),
  length=L)`` fed a list of L PNG byte strings (BallsInBowl), or one frame per
  example with ``'video_id'``, ``'frame'`` and ``'video_frames'`` scalars
  (RealTraffic; registry entry ``frame_examples=True``). The builder class
  gives the clip rules: ``CLIP_STRIDE``, ``training_clips(lengths, T)`` and
  ``evaluation_clips(lengths, T)``. PNG keeps frames ~10x smaller than a raw
  uint8 Tensor, and decoding them in grain's read threads keeps up with
  training (see tools/bench_data.py).
  Extra per-example annotations (object positions, counts, ...) may be added as
  ``tfds.features.Tensor`` / ``Scalar`` features; the training iterator yields
  only ``'image'`` / ``'video'``.

Resizing
  :func:`resize_square` is the reference's transform: PIL LANCZOS straight to
  S x S, aspect ratio not preserved (CLEVR 480x320 is squashed), RGB.

Missing raw data
  ``pipeline.prepare`` already raises :class:`MissingDataError` (quoting the
  builder's ``MANUAL_DOWNLOAD_INSTRUCTIONS``) when the registry entry needs a
  data_dir and ``config.data.data_dir`` is empty or not a directory. Builders reading raw files from ``dl_manager.manual_dir`` (=
  ``config.data.data_dir``) call :func:`require_manual_dir` first. It raises
  :class:`MissingDataError` naming the expected layout, the directory tried and
  where the data set is published. Put the layout and the address in the class'
  ``MANUAL_DOWNLOAD_INSTRUCTIONS`` too.

Skeleton::

  class Clevr(common.RelateBuilder):
    name = 'relate_clevr'
    VERSION = tfds.core.Version('1.0.0')
    BUILDER_CONFIGS = common.resolution_configs(common.SIZES)
    MANUAL_DOWNLOAD_INSTRUCTIONS = LAYOUT  # exact tree + where published

    def _info(self):
      return self.dataset_info({'image': common.image_feature(self.builder_config.image_size)})

    def _split_generators(self, dl_manager):
      root = common.require_manual_dir(dl_manager, 'CLEVR v1.0', LAYOUT, URL, ('images',))
      return {'train': self._generate_examples(root, 'train'), 'test': ...}

    def _generate_examples(self, root, split):
      for i, path in enumerate(self.capped(paths, split)):
        image = common.resize_square(PIL.Image.open(path), self.builder_config.image_size)
        yield i, {'image': common.encode_png(image)}
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

# Resolutions for which every builder defines a config.
SIZES = (32, 64, 128, 256)
SPLITS = ('train', 'test')


class MissingDataError(ValueError):
  """Raw data for a dataset is absent or not in its published layout."""


@dataclasses.dataclass(eq=False)
class ResolutionConfig(tfds.core.BuilderConfig):
  """Builder config for one image size (and optionally a named variant).

  Attributes:
    image_size: S, side of the square images written.
    variant: dataset-specific variant ('' = the default one).
    clip_length: T, frames per clip for video datasets (0 = static images).
    num_train: cap on the examples written to 'train' (None = all).
    num_test: cap on the examples written to 'test' (None = all).
  """

  image_size: int = 128
  variant: str = ''
  clip_length: int = 0
  num_train: int | None = None
  num_test: int | None = None


def config_name(image_size: int, variant: str = '') -> str:
  """Builder-config name: '128' or, for a variant, 'vbg_128'."""
  return f'{variant}_{image_size}' if variant else str(image_size)


def resolution_configs(sizes: Iterable[int] = SIZES,
                       variants: Sequence[str] = ('',),
                       clip_length: int = 0,
                       **kwargs) -> list[ResolutionConfig]:
  """One :class:`ResolutionConfig` per (variant, size), named by :func:`config_name`."""
  return [
      ResolutionConfig(
          name=config_name(size, variant),
          description=f'{variant or "default"} variant at {size}x{size}',
          image_size=size, variant=variant, clip_length=clip_length, **kwargs)
      for variant in variants for size in sizes
  ]


class RelateBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base for the project's builders: array_record files, resolution configs.

  Subclasses define ``name``, ``VERSION``, ``BUILDER_CONFIGS``, ``_info``,
  ``_split_generators`` and ``_generate_examples`` as in any TFDS builder.
  """

  BUILDER_CONFIGS = resolution_configs(SIZES)

  def __init__(self, **kwargs):
    kwargs.setdefault('file_format', 'array_record')
    super().__init__(**kwargs)

  def dataset_info(self, features: dict, description: str | None = None,
                   homepage: str | None = None, citation: str | None = None
                   ) -> tfds.core.DatasetInfo:
    """`DatasetInfo` with a FeaturesDict of `features` and no supervised keys."""
    return tfds.core.DatasetInfo(
        builder=self, description=description or (self.__doc__ or '').strip(),
        features=tfds.features.FeaturesDict(features), homepage=homepage,
        citation=citation)

  def capped(self, items: Sequence, split: str) -> Sequence:
    """`items` truncated to the config's num_train / num_test cap (for tiny builds)."""
    cap = self.builder_config.num_train if split == 'train' else self.builder_config.num_test
    return items if cap is None else items[:cap]


def image_feature(image_size: int) -> tfds.features.Image:
  """The static-image feature: uint8 (S, S, 3), stored as PNG."""
  return tfds.features.Image(shape=(image_size, image_size, 3), encoding_format='png')


def clip_feature(image_size: int, clip_length: int) -> tfds.features.Sequence:
  """The clip feature: T PNG frames, read back as uint8 (T, S, S, 3)."""
  return tfds.features.Sequence(image_feature(image_size), length=clip_length)


def resize_square(image: Image.Image | np.ndarray, image_size: int) -> Image.Image:
  """The reference transform: RGB, PIL LANCZOS to S x S (aspect ratio not kept)."""
  if isinstance(image, np.ndarray):
    image = Image.fromarray(image)
  image = image.convert('RGB')
  if image.size != (image_size, image_size):
    image = image.resize((image_size, image_size), Image.LANCZOS)
  return image


def encode_png(image: Image.Image | np.ndarray, compress_level: int = 1) -> bytes:
  """PNG bytes of an RGB image (uint8 (H, W, 3) array or PIL image).

  Level 1 compresses ~10x faster than PIL's default and within a few % of it on
  rendered and photographic data.
  """
  if isinstance(image, np.ndarray):
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
      raise ValueError(f'expected uint8 (H, W, 3), got {image.dtype} {image.shape}')
    image = Image.fromarray(image)
  buffer = io.BytesIO()
  image.save(buffer, format='PNG', compress_level=compress_level)
  return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
  """uint8 (H, W, 3) array from PNG (or any PIL-readable) bytes."""
  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image.convert('RGB'), dtype=np.uint8)


def require_manual_dir(dl_manager, dataset: str, layout: str, published: str,
                       required: Sequence[str] = ()) -> str:
  """The raw-data directory (`config.data.data_dir`), checked; raises if unusable.

  Args:
    dl_manager: the TFDS download manager passed to `_split_generators`.
    dataset: human name, e.g. 'CLEVR v1.0'.
    layout: the expected directory tree under data_dir, as text.
    published: where the data set can be downloaded.
    required: paths relative to data_dir that must exist.

  Returns:
    data_dir as a string.

  Raises:
    MissingDataError: data_dir unset, absent, or missing one of `required`.
  """
  try:
    root = dl_manager.manual_dir
  except Exception:  # TFDS raises AssertionError when manual_dir was not given.
    root = None
  root = os.fspath(root) if root else ''
  missing = [p for p in required if root and not os.path.exists(os.path.join(root, p))]
  if root and os.path.isdir(root) and not missing:
    return root
  tried = root or '(none: set --config.data.data_dir)'
  reason = (f'missing {", ".join(missing)}' if missing and os.path.isdir(root)
            else 'directory does not exist')
  raise MissingDataError(
      f'{dataset}: raw data not found ({reason}).\n'
      f'  directory tried: {tried}\n'
      f'  expected layout under config.data.data_dir:\n'
      + ''.join(f'    {line}\n' for line in layout.strip('\n').splitlines())
      + f'  published at: {published}\n'
      f'  download it there and pass --config.data.data_dir=DIR.')


def make_grid(images: np.ndarray, ncol: int = 8, pad: int = 2,
              pad_value: int = 255) -> np.ndarray:
  """Tiles images into one uint8 grid image.

  Args:
    images: uint8 (N, H, W, C) or (N, T, H, W, C) (clips: one row per clip,
      its frames left to right; `ncol` is then ignored).
    ncol: images per row.
    pad: pixels between tiles and around the grid.
    pad_value: colour of the padding.

  Returns:
    uint8 (rows·(H+pad)+pad, cols·(W+pad)+pad, C).
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise ValueError(f'make_grid expects uint8 images, got {images.dtype}')
  if images.ndim == 5:
    rows, ncol = images.shape[:2]
    images = images.reshape((-1,) + images.shape[2:])
  elif images.ndim == 4:
    ncol = max(1, min(ncol, len(images)))
    rows = -(-len(images) // ncol)
  else:
    raise ValueError(f'make_grid expects (N, H, W, C) or (N, T, H, W, C), got {images.shape}')
  n, h, w, c = images.shape
  grid = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), pad_value, np.uint8)
  for i in range(n):
    r, q = divmod(i, ncol)
    y, x = pad + r * (h + pad), pad + q * (w + pad)
    grid[y:y + h, x:x + w] = images[i]
  return grid


def save_png(path: str, image: np.ndarray) -> None:
  """Writes a uint8 (H, W, 3) image (e.g. from :func:`make_grid`) to `path`."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(np.asarray(image, np.uint8)).save(path)
