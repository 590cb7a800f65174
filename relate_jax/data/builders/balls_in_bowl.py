"""TFDS builder of BallsInBowl (simulated and rendered locally, no download).

Sequences come from ``relate_jax.data.balls_in_bowl`` (two balls, red and blue,
rolling in elliptical bowls; paper A6: 2500 train and 500 test sequences). Each
split has its own seed (train 0, test 1) and sequence i of a split is the same
at every resolution and in both views:
  static (builder configs '32' ... '256', feature 'image'): every frame of every
    sequence is one example, T = NUM_FRAMES examples per sequence;
  video (configs 'video_32' ... 'video_256', feature 'video'): one example per
    sequence, all NUM_FRAMES frames. Clips are cut from them at read time
    (relate_jax/data/pipeline.py): a training example is sequence i from a
    start drawn uniformly in 0 .. NUM_FRAMES - T, anew in every epoch
    (:meth:`BallsInBowl.training_clips`, T = config.model.clip_length); an
    evaluation clip is the first F frames of a sequence
    (:meth:`BallsInBowl.evaluation_clips`: fvd500 uses all 500 test sequences,
    F = 30).
Ground truth is stored with every frame in image coordinates (x right, y down,
the image spanning [-1, 1]; the RELATE pose placing an object there is
θ = (-x·s, -y·s)): 'positions' and 'velocities' (image units per frame) of the
K balls in slot order (0 red, 1 blue), and the bowl's 'bowl_angle' φ and
'bowl_axes' (a, b).

Caps: a config's num_train / num_test cap the examples written (static: frames,
taken sequence by sequence; video: sequences). The 'tiny' and 'video_tiny'
variants ('tiny_32', 'video_tiny_128', ...) hold the first TINY_TRAIN / TINY_TEST
sequences, for tests and smoke runs.

Cost at 128 px (measured on 2 shared CPU cores at load ~10): static view 96,000
frames in 4.5 min wall / 2.3 min CPU, 832 MB; video view 3,000 sequences in
5.2 min wall / 2.2 min CPU, 770 MB.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from relate_jax.data import balls_in_bowl as sim
from relate_jax.data import common

NUM_TRAIN = 2500  # Sequences (paper A6).
NUM_TEST = 500
NUM_FRAMES = 32  # T: frames per sequence (frame 0 is the initial state).
SPLIT_SEEDS = {'train': 0, 'test': 1}
CHUNK = 32  # Sequences rendered at once (bounds memory: 32·T frames).
PHYSICS = sim.Physics()
# Variants 'tiny' / 'video_tiny' (configs 'tiny_32', 'video_tiny_32', ...): the first
# sequences only, for tests and smoke runs.
TINY_TRAIN = 4
TINY_TEST = 2


class BallsInBowl(common.RelateBuilder):
  """Two balls rolling in elliptical bowls: frames ('128', ...) or sequences ('video_128', ...)."""

  name = 'relate_balls_in_bowl'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Simulated BallsInBowl: 2500/500 sequences of 32 frames.'}
  BUILDER_CONFIGS = (
      common.resolution_configs(common.SIZES)
      + common.resolution_configs(common.SIZES, variants=('video',), clip_length=NUM_FRAMES)
      + common.resolution_configs(common.SIZES, variants=('tiny',), num_train=TINY_TRAIN
                                  * NUM_FRAMES, num_test=TINY_TEST * NUM_FRAMES)
      + common.resolution_configs(common.SIZES, variants=('video_tiny',), clip_length=NUM_FRAMES,
                                  num_train=TINY_TRAIN, num_test=TINY_TEST))
  CLIP_STRIDE = 1  # Clips are consecutive frames.

  @staticmethod
  def training_clips(lengths, clip_length: int) -> np.ndarray:
    """One training example per sequence long enough: rows (sequence, 0, n - T + 1).

    The last column is the number of starts the pipeline draws from
    (0 .. n - T, uniformly, per example and epoch).
    """
    lengths = np.asarray(lengths, np.int64)
    keep = np.flatnonzero(lengths >= clip_length)
    return np.stack([keep, np.zeros_like(keep), lengths[keep] - clip_length + 1], axis=1)

  @staticmethod
  def evaluation_clips(lengths, clip_length: int) -> np.ndarray:
    """The first T frames of every sequence, in stored order: rows (sequence, 0)."""
    keep = np.flatnonzero(np.asarray(lengths, np.int64) >= clip_length)
    return np.stack([keep, np.zeros_like(keep)], axis=1)

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    k = PHYSICS.num_balls
    clip = self.builder_config.clip_length
    if clip:
      features = {
          'video': common.clip_feature(size, clip),
          'positions': tfds.features.Tensor(shape=(clip, k, 2), dtype=np.float32),
          'velocities': tfds.features.Tensor(shape=(clip, k, 2), dtype=np.float32),
      }
    else:
      features = {
          'image': common.image_feature(size),
          'positions': tfds.features.Tensor(shape=(k, 2), dtype=np.float32),
          'velocities': tfds.features.Tensor(shape=(k, 2), dtype=np.float32),
          'frame': tfds.features.Scalar(np.int32),
      }
    features.update({
        'sequence': tfds.features.Scalar(np.int32),
        'bowl_angle': tfds.features.Scalar(np.float32),
        'bowl_axes': tfds.features.Tensor(shape=(2,), dtype=np.float32),
    })
    return self.dataset_info(features)

  def _split_generators(self, dl_manager):
    del dl_manager  # Simulated locally.
    num = {'train': NUM_TRAIN, 'test': NUM_TEST}
    splits = {}
    for split in common.SPLITS:
      if self.builder_config.clip_length:
        examples = len(self.capped(range(num[split]), split))
      else:
        examples = len(self.capped(range(num[split] * NUM_FRAMES), split))
      splits[split] = self._generate_examples(split, examples)
    return splits

  def _generate_examples(self, split: str, examples: int) -> Iterator[tuple[str, dict]]:
    """Simulates the split at once, then renders and encodes CHUNK sequences at a time.

    The next chunk renders in a thread while this one's frames are PNG-encoded
    in the others (NumPy and PIL release the GIL).
    """
    size = self.builder_config.image_size
    video = bool(self.builder_config.clip_length)
    num_sequences = examples if video else -(-examples // NUM_FRAMES)
    logging.info('BallsInBowl %s: simulating %d sequences of %d frames', split,
                 num_sequences, NUM_FRAMES)
    data = sim.simulate_sequences(SPLIT_SEEDS[split], num_sequences, NUM_FRAMES, PHYSICS)
    chunks = [slice(start, min(start + CHUNK, num_sequences))
              for start in range(0, num_sequences, CHUNK)]

    def render(chunk):
      return sim.render_frames(data.positions[chunk], data.bowls.take(chunk), size, PHYSICS)

    written = 0
    with concurrent.futures.ThreadPoolExecutor((os.cpu_count() or 1) + 1) as pool:
      rendering = pool.submit(render, chunks[0]) if chunks else None
      for c, chunk in enumerate(chunks):
        frames = rendering.result()
        if c + 1 < len(chunks):
          rendering = pool.submit(render, chunks[c + 1])
        encoded = list(pool.map(common.encode_png, frames.reshape((-1,) + frames.shape[2:])))
        for j, sequence in enumerate(range(chunk.start, chunk.stop)):
          pngs = encoded[j * NUM_FRAMES:(j + 1) * NUM_FRAMES]
          notes = {
              'sequence': sequence,
              'bowl_angle': np.float32(data.bowls.angle[sequence]),
              'bowl_axes': np.array([data.bowls.a[sequence], data.bowls.b[sequence]], np.float32),
          }
          if video:
            yield f'{sequence:05d}', {
                'video': pngs,
                'positions': data.positions[sequence],
                'velocities': data.velocities[sequence],
                **notes,
            }
            continue
          for t in range(NUM_FRAMES):
            if written == examples:
              return
            written += 1
            yield f'{sequence:05d}_{t:02d}', {
                'image': pngs[t],
                'positions': data.positions[sequence, t],
                'velocities': data.velocities[sequence, t],
                'frame': t,
                **notes,
            }
