r"""Batched sample export for evaluation.

  python -m relate_jax.sample --workdir=DIR --num=10000 --out=DIR2 [--resize=96] [--seed=0]

Writes N samples of the newest checkpoint as lossless PNGs (000000.png, ...) and, unless
--nonpz, one samples.npz with the images and their latents (z0, z_k, θ̂, presence, final
poses θ). Sampling is sharded over all local devices and deterministic in --seed: sample i
comes from its own key, whatever the batch size or device count.
"""

import os

import numpy as np
from absl import app
from absl import flags
from absl import logging
from PIL import Image

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir with checkpoints.')
_OUT = flags.DEFINE_string('out', None, 'Output directory for the PNGs.')
_NUM = flags.DEFINE_integer('num', 10_000, 'Number of samples.')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampling seed.')
_BATCH = flags.DEFINE_integer('batch_size', 100, 'Samples per device batch (global).')
_RESIZE = flags.DEFINE_integer('resize', 0, 'Resize to this square size with PIL LANCZOS '
                               '(paper: 96 for CLEVR5, 64 for ShapeStacks); 0 keeps the size.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: newest).')
_NPZ = flags.DEFINE_bool('npz', True, 'Also write samples.npz with images and latents.')
flags.mark_flags_as_required(['workdir', 'out'])


def resize(images: np.ndarray, size: int) -> np.ndarray:
  """uint8 (N, H, W, 3) -> (N, size, size, 3) with PIL LANCZOS, as the paper's protocol."""
  return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.LANCZOS))
                   for im in images])


def export(workdir: str, out: str, num: int, seed: int = 0, batch_size: int = 100,
           size: int = 0, step: int | None = None, write_npz: bool = True) -> int:
  """Writes `num` samples into `out`; returns the checkpoint step used."""
  import jax  # Deferred so --help does not initialise a backend.
  from relate_jax import api

  model = api.load(workdir, step)
  os.makedirs(out, exist_ok=True)
  logging.info('Sampling %d images from %s (step %d) into %s', num, workdir, model.step, out)
  arrays = {'images': [], 'poses': [], 'latents': []}
  done = 0
  for images, latents, poses in model.sample_batches(num, seed, batch_size):
    if size:
      images = resize(images, size)
    for i, image in enumerate(images):
      Image.fromarray(image).save(os.path.join(out, f'{done + i:06d}.png'))
    if write_npz:
      arrays['images'].append(images)
      arrays['latents'].append(latents)
      arrays['poses'].append(poses)
    done += len(images)
    logging.info('%d/%d samples written', done, num)
  if write_npz:
    latents = jax.tree.map(lambda *xs: np.concatenate(xs), *arrays['latents'])
    np.savez(os.path.join(out, 'samples.npz'), images=np.concatenate(arrays['images']),
             background=latents.background, appearance=latents.appearance,
             initial_poses=latents.poses, present=latents.present,
             poses=np.concatenate(arrays['poses']))
  return model.step


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  export(_WORKDIR.value, _OUT.value, _NUM.value, _SEED.value, _BATCH.value, _RESIZE.value,
         _STEP.value, _NPZ.value)


if __name__ == '__main__':
  app.run(main)
