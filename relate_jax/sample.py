r"""Batched sample export for evaluation.

  python -m relate_jax.sample --workdir=DIR --num=10000 --out=DIR2 [--resize=96] [--seed=0]
  python -m relate_jax.sample --workdir=VIDEO_DIR --num=500 --frames=30 --out=DIR2 [--overlay_poses]

Writes N samples of the newest checkpoint as lossless PNGs (000000.png, ...) and, unless
--nonpz, one samples.npz with the images and their latents (z0, z_k, θ̂, presence, final
poses θ). Sampling is sharded over all local devices and deterministic in --seed: sample i
comes from its own key, whatever the batch size or device count.

Video workdirs (relate_video): per video an H.264 MP4 (000000.mp4) and a GIF for quick
viewing (000000.gif) of --frames frames (default model.sample_frames), and videos.npz with
the uint8 videos (N, F, S, S, 3) — what FVD consumes — their latents and the poses θ(t)
(N, F, K, 2). --overlay_poses draws the model's pose estimate of every present object as a
cross on the MP4/GIF frames (paper Fig. 7); videos.npz never has the crosses.
"""

import os

import numpy as np
from absl import app
from absl import flags
from absl import logging
from PIL import Image

from relate_jax import video_io
from relate_jax.metrics import relate_metrics


def resize(images: np.ndarray, size: int) -> np.ndarray:
  """uint8 (N, H, W, 3) -> (N, size, size, 3) with PIL LANCZOS, as the paper's protocol."""
  return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.LANCZOS))
                   for im in images])


def export(workdir: str, out: str, num: int, seed: int = 0, batch_size: int = 100,
           size: int = 0, step: int | None = None, write_npz: bool = True,
           frames: int | None = None, overlay_poses: bool = False, fps: float = 10.0) -> int:
  """Writes `num` samples (videos for a video workdir) into `out`; returns the step used."""
  import jax  # Deferred so --help does not initialise a backend.
  from relate_jax import api

  model = api.load(workdir, step)
  os.makedirs(out, exist_ok=True)
  kind = 'videos' if model.is_video else 'images'
  logging.info('Sampling %d %s from %s (step %d) into %s', num, kind, workdir, model.step, out)
  arrays = {'images': [], 'poses': [], 'latents': []}
  done = 0
  for images, latents, aux in model.sample_batches(num, seed, batch_size, frames=frames,
                                                   with_aux=True):
    poses = aux['poses']
    if size:
      images = resize(images.reshape((-1,) + images.shape[-3:]), size).reshape(
          images.shape[:-3] + (size, size, 3))
    for i, sample in enumerate(images):
      name = os.path.join(out, f'{done + i:06d}')
      if model.is_video:
        shown = sample
        if overlay_poses:
          centres = relate_metrics.pose_to_pixels(poses[i], sample.shape[1], aux['scales'][i])
          shown = video_io.draw_crosses(sample, centres, latents.present[i])
        video_io.write_mp4(name + '.mp4', shown, fps)
        video_io.write_gif(name + '.gif', shown, fps)
      else:
        Image.fromarray(sample).save(name + '.png')
    if write_npz:
      arrays['images'].append(images)
      arrays['latents'].append(latents)
      arrays['poses'].append(poses)
    done += len(images)
    logging.info('%d/%d %s written', done, num, kind)
  if write_npz:
    latents = jax.tree.map(lambda *xs: np.concatenate(xs), *arrays['latents'])
    extra = {} if latents.start is None else {'start': latents.start}
    np.savez(os.path.join(out, f'{kind if model.is_video else "samples"}.npz'),
             **{kind: np.concatenate(arrays['images'])}, background=latents.background,
             appearance=latents.appearance, initial_poses=latents.poses,
             present=latents.present, poses=np.concatenate(arrays['poses']), **extra)
  return model.step


def _define_flags() -> None:
  """The command line's flags, defined only when run as a program (importing this module
  next to another CLI module must not clash on --workdir & co.)."""
  flags.DEFINE_string('workdir', None, 'Training workdir with checkpoints.')
  flags.DEFINE_string('out', None, 'Output directory for the PNGs.')
  flags.DEFINE_integer('num', 10_000, 'Number of samples.')
  flags.DEFINE_integer('seed', 0, 'Sampling seed.')
  flags.DEFINE_integer('batch_size', 100, 'Samples per device batch (global).')
  flags.DEFINE_integer('resize', 0, 'Resize to this square size with PIL LANCZOS (paper: 96 '
                       'for CLEVR5, 64 for ShapeStacks); 0 keeps the size.')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: newest).')
  flags.DEFINE_bool('npz', True, 'Also write samples.npz (videos.npz) with the samples and '
                    'their latents.')
  flags.DEFINE_integer('frames', None, 'Video model: frames per video (default: '
                       'model.sample_frames). Any length; each compiles once.')
  flags.DEFINE_bool('overlay_poses', False, "Video model: draw each object's pose estimate "
                    'as a cross on the MP4/GIF frames (paper Fig. 7).')
  flags.DEFINE_float('fps', 10.0, 'Video model: frames per second of the MP4/GIF files '
                     '(RealTraffic is 10 fps at stride 2).')
  flags.mark_flags_as_required(['workdir', 'out'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  export(f.workdir, f.out, f.num, f.seed, f.batch_size, f.resize, f.step, f.npz, f.frames,
         f.overlay_poses, f.fps)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
