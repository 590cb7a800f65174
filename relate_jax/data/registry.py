"""Maps ``config.data.name`` to a TFDS builder class and builder config.

How a dataset plugs in (builder authors):
  1. Write ``relate_jax/data/builders/<module>.py`` with a
     ``common.RelateBuilder`` subclass following ``common.py``.
  2. Its entry below names it as ``'relate_jax.data.builders.<module>:<Class>'``
     (imported lazily, so a broken or slow builder does not affect the others),
     plus the builder-config variant, the feature key ('image' or 'video'),
     how a video dataset stores its videos (``frame_examples``) and whether raw data
     must be given through ``config.data.data_dir``.
  The builder config used is ``common.config_name(config.data.image_size,
  entry.variant)``, e.g. 'vbg_128'. Entries for the datasets written by others
  are already listed here with the module and class name to use.
"""

from __future__ import annotations

import dataclasses
import importlib

from relate_jax.data import common


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
  """How to build and read one `config.data.name`.

  Attributes:
    builder: 'package.module:Class' of the TFDS builder.
    variant: builder-config variant ('' = default), see `common.config_name`.
    feature: what the readers yield: 'image' (S, S, 3) or 'video' clips (T, S, S, 3).
    frame_examples: video stored one frame per example ('image', 'video_id', 'frame',
      'video_frames'); False: one whole sequence per example ('video'). Either way
      clips are cut at read time (pipeline.py).
    needs_data_dir: raw data must be given as config.data.data_dir (TFDS manual dir).
  """

  builder: str
  variant: str = ''
  feature: str = 'image'
  frame_examples: bool = False
  needs_data_dir: bool = True


_SHAPES = 'relate_jax.data.builders.shapes:Shapes'

DATASETS: dict[str, DatasetEntry] = {
    # Embedded, rendered locally on first use (20k train / 2k test).
    'shapes': DatasetEntry(_SHAPES, needs_data_dir=False),
    # The same renderer, 64 train / 16 test: for tests and smoke runs.
    'shapes_tiny': DatasetEntry(_SHAPES, variant='tiny', needs_data_dir=False),
    'clevr': DatasetEntry('relate_jax.data.builders.clevr:Clevr'),
    'clevr5': DatasetEntry('relate_jax.data.builders.clevr5:Clevr5'),
    'clevr5_vbg': DatasetEntry('relate_jax.data.builders.clevr5:Clevr5', variant='vbg'),
    'shapestacks': DatasetEntry('relate_jax.data.builders.shapestacks:ShapeStacks'),
    # Frames (relate_static), and stride-2 clips gathered from the same stored frames.
    'real_traffic': DatasetEntry('relate_jax.data.builders.real_traffic:RealTraffic'),
    'real_traffic_video': DatasetEntry('relate_jax.data.builders.real_traffic:RealTraffic',
                                       feature='video', frame_examples=True),
    # Simulated locally: static frames, and whole sequences as clips.
    'balls_in_bowl': DatasetEntry('relate_jax.data.builders.balls_in_bowl:BallsInBowl',
                                  needs_data_dir=False),
    'balls_in_bowl_video': DatasetEntry('relate_jax.data.builders.balls_in_bowl:BallsInBowl',
                                        variant='video', feature='video', needs_data_dir=False),
    # The first 4 train / 2 test sequences: for tests and smoke runs of the video model.
    'balls_in_bowl_video_tiny': DatasetEntry(
        'relate_jax.data.builders.balls_in_bowl:BallsInBowl', variant='video_tiny',
        feature='video', needs_data_dir=False),
}


def register(name: str, entry: DatasetEntry) -> None:
  """Adds or replaces a dataset entry (e.g. for experiments outside this file)."""
  DATASETS[name] = entry


def entry(name: str) -> DatasetEntry:
  """The entry for `name`; ValueError listing the known names otherwise."""
  if name not in DATASETS:
    raise ValueError(f'Unknown dataset {name!r}; known: {", ".join(sorted(DATASETS))}')
  return DATASETS[name]


def builder_class(name: str) -> type:
  """Imports and returns the builder class of dataset `name`."""
  module, cls = entry(name).builder.split(':')
  return getattr(importlib.import_module(module), cls)


def builder_config(name: str, image_size: int) -> str:
  """The builder-config name for `name` at `image_size`, checked to exist."""
  e = entry(name)
  cname = common.config_name(image_size, e.variant)
  cls = builder_class(name)
  known = {c.name: c for c in cls.BUILDER_CONFIGS}
  if cname not in known:
    raise ValueError(f'{cls.__name__} has no builder config {cname!r} '
                     f'(data.image_size={image_size}); it has {sorted(known)}')
  return cname
