"""Times FID of N generated-like images against cached real statistics.

  python tools/time_fid.py --num 1000 --size 128 --batch_size 50     # CPU
  python tools/time_fid.py --num 10000 --size 128 --batch_size 250   # GPU (fid10k)

--random_weights times the same network without the converted weights (a device
without registry access and no room for the 87 MB weight file); the FID value is then
meaningless, the timing is not.

Images: procedural 128×128 scenes (tools/make_fid_reference.py). The real side is a
Statistics object with its eigendecomposition computed outside the timing (from
synthetic 2048-d features), as the registry caches real statistics during training. Timed:
compile (first batch) and steady-state feature extraction, statistics, Fréchet distance,
and KID. Prints one line per phase and a JSON summary.
"""

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from make_fid_reference import procedural_images  # pylint: disable=g-import-not-at-top,wrong-import-position

from relate_jax.metrics import frechet  # pylint: disable=wrong-import-position
from relate_jax.metrics import inception  # pylint: disable=wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--num', type=int, default=1000)
  parser.add_argument('--size', type=int, default=128)
  parser.add_argument('--batch_size', type=int, default=50)
  parser.add_argument('--random_weights', action='store_true')
  args = parser.parse_args()
  images = procedural_images(args.num, args.size, seed=1)
  rng = np.random.default_rng(0)
  real_feats = np.abs(rng.normal(size=(max(args.num, 2500), 2048))).astype(np.float32)
  real = frechet.statistics(real_feats)
  _ = real.factor  # Cached with the real statistics (registry keeps it per process).

  t0 = time.time()
  variables = None
  if args.random_weights:
    dummy = np.zeros((1, inception.INPUT_SIZE, inception.INPUT_SIZE, 3), np.float32)
    variables = jax.jit(inception.FIDInception().init)(jax.random.key(0), dummy)
    variables = jax.tree.map(lambda x: x + 0.01 if x.ndim == 1 else x, variables)
  net = inception.InceptionFeatures(args.batch_size, variables)
  t_load = time.time() - t0
  t0 = time.time()
  first = net(images[:args.batch_size])
  t_first = time.time() - t0
  cpu0 = time.process_time()
  t0 = time.time()
  rest = net(images[args.batch_size:])
  t_feat = time.time() - t0
  cpu_feat = time.process_time() - cpu0
  feats = np.concatenate([first, rest])
  t0 = time.time()
  fid = frechet.frechet_distance(frechet.statistics(feats), real)
  t_fid = time.time() - t0
  t0 = time.time()
  kid = frechet.kernel_distance(feats, real_feats)
  t_kid = time.time() - t0
  per_image = t_feat / max(args.num - args.batch_size, 1)
  summary = {
      'device': str(jax.devices()[0]), 'num': args.num, 'size': args.size,
      'batch_size': args.batch_size, 'load_weights_s': round(t_load, 2),
      'first_batch_incl_compile_s': round(t_first, 2),
      'steady_features_s': round(t_feat, 2), 'steady_features_cpu_s': round(cpu_feat, 2),
      'images_per_s': round(1 / per_image, 2),
      'stats_and_frechet_s': round(t_fid, 2), 'kid_s': round(t_kid, 2),
      'total_s': round(t_load + t_first + t_feat + t_fid, 2), 'fid': fid, 'kid': kid[0],
  }
  print(json.dumps(summary, indent=1))


if __name__ == '__main__':
  main()
