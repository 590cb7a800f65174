"""FID (and KID) between two image folders: ``python -m relate_jax.fid DIR_A DIR_B [--kid]``.

Globs *.png / *.jpg (sorted) in each folder; every image in a folder must share one size
(bring folders to a common size with LANCZOS first, as the paper's protocol does). Features
are the TF FID Inception pool3 (see relate_jax/metrics/inception.py); the last output line
is ``FID: <value>``; with ``--kid`` a line ``KID: <mean> ± <std>`` (×10³) comes before it.
"""

import argparse
import glob
import logging
import os
import sys
import time

import numpy as np
from PIL import Image

from relate_jax.metrics import frechet
from relate_jax.metrics import inception

PATTERNS = ('*.png', '*.jpg', '*.jpeg', '*.PNG', '*.JPG', '*.JPEG')


def list_images(folder: str) -> list[str]:
  if not os.path.isdir(folder):
    raise FileNotFoundError(f'{folder} is not a directory')
  paths = sorted({p for pattern in PATTERNS for p in glob.glob(os.path.join(folder, pattern))})
  if not paths:
    raise FileNotFoundError(f'no *.png / *.jpg images in {folder}')
  return paths


def read_batches(paths: list[str], batch_size: int):
  """Yields uint8 (b, H, W, 3) batches; raises ValueError naming the first odd-sized file."""
  size = None
  for start in range(0, len(paths), batch_size):
    batch = []
    for path in paths[start:start + batch_size]:
      with Image.open(path) as im:
        arr = np.asarray(im.convert('RGB'), np.uint8)
      if size is None:
        size = arr.shape
      elif arr.shape != size:
        raise ValueError(
            f'{path} is {arr.shape[1]}x{arr.shape[0]} but {paths[0]} is {size[1]}x{size[0]}: '
            'all images in a folder must share one size (resize them first, e.g. with '
            'PIL LANCZOS)')
      batch.append(arr)
    yield np.stack(batch)


def folder_features(folder: str, batch_size: int, net=None) -> np.ndarray:
  paths = list_images(folder)
  net = net or inception.InceptionFeatures(batch_size)
  feats, t0 = [], time.time()
  for batch in read_batches(paths, batch_size):
    feats.append(net(batch))
    done = sum(len(f) for f in feats)
    print(f'\r{folder}: {done}/{len(paths)} images ({time.time() - t0:.0f} s)', end='',
          file=sys.stderr, flush=True)
  print(file=sys.stderr)
  return np.concatenate(feats)


def main(argv=None) -> float:
  parser = argparse.ArgumentParser(description='FID between two image folders.')
  parser.add_argument('dirs', nargs=2, metavar='DIR')
  parser.add_argument('--kid', action='store_true', help='also print KID ×10³ (mean ± std)')
  parser.add_argument('--batch_size', type=int, default=50)
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format='%(message)s')
  net = inception.InceptionFeatures(args.batch_size)
  feats = [folder_features(d, args.batch_size, net) for d in args.dirs]
  for d, f in zip(args.dirs, feats):
    if len(f) < frechet.MIN_RECOMMENDED_FID:
      logging.warning('%s has %d images: with fewer than %d the covariance is singular and '
                      'FID is strongly biased; compare only at equal N (or use --kid).',
                      d, len(f), frechet.MIN_RECOMMENDED_FID)
  if args.kid:
    mean, std = frechet.kernel_distance(*feats)
    print(f'KID: {mean * 1e3:.4f} ± {std * 1e3:.4f}')
  fid = frechet.frechet_distance(frechet.statistics(feats[0]), frechet.statistics(feats[1]))
  print(f'FID: {fid:.4f}')
  return fid


if __name__ == '__main__':
  main()
