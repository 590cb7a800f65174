"""Standalone evaluation of a training workdir's newest checkpoint.

  python -m relate_jax.evaluate --workdir=DIR --metrics=fid10k,kid10k [--config=configs/x.py]
  python -m relate_jax.evaluate --workdir=DIR --metrics=fvd500,kvd500,motion500   # video
  python -m relate_jax.evaluate --workdir=DIR --metrics=fvd500 --baseline=shuffled

Without --config the resolved config that training wrote into the workdir is used; with
--config=configs/x.py its `eval` settings apply (and `--config.eval.resolution=96` & co.
override them), while the generator is always built from the workdir's config. Metrics are
the registry's protocols (relate_jax/metrics/registry.py): images (fid*, kid*), videos of 30
frames (fvd*, kvd*) and the BallsInBowl trajectory statistics motion500, all sampled through
relate_jax.api.Relate.sample_batches; results are printed and appended to
<workdir>/metrics.jsonl with the checkpoint's step. `--baseline=shuffled` scores the paper's
baseline instead of the model: time-shuffled real train clips against the test clips, with
the workdir's dataset (no checkpoint is read). Two more names are accepted for static
models: `disentanglement`, the median distance (px) of Table A1 on 1,000 generated scenes
with 5 objects, and `position_error`, the mean pixel error of D's position head on real
test images whose dataset stores object positions (shapes, BallsInBowl).

With a model (not --baseline) it also writes two picture grids of 4 seeded scenes into
<workdir>/grids/ (--nogrids skips them): components_<step>.png, each scene next to its
background alone and each object alone over it (paper Fig. 4), and gamma_<step>.png, each
scene before and after Γ's correction (Fig. 3), with latents_<step>.json of the scenes
(relate_jax.editing.write_grids; GIFs for the video model).
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from relate_jax.metrics import registry

DISENTANGLEMENT = 'disentanglement'
POSITION = 'position_error'


def run(workdir: str, names: list[str], config=None, step: int | None = None,
        baseline: str | None = None, grids_dir: str | None = None) -> dict:
  """Runs the named metrics on the checkpoint (through relate_jax.api) or a baseline;
  with `grids_dir`, also writes the component and Γ grids of the checkpoint there."""
  from relate_jax import api  # pylint: disable=g-import-not-at-top
  protocols = [n for n in names if n not in (DISENTANGLEMENT, POSITION)]
  if baseline is not None:
    if len(protocols) < len(names):
      raise ValueError(f'--baseline applies to the registry\'s video protocols, not '
                       f'{", ".join(n for n in names if n not in protocols)}')
    config = config if config is not None else api.workdir_config(workdir)
    return registry.evaluate(config, None, protocols, workdir, baseline=baseline)
  model = api.load(workdir, step=step)
  config = config if config is not None else model.config
  samples = registry.ModelSamples(model)
  results = registry.evaluate(config, samples.images, protocols, workdir, step=model.step,
                              pose_fn=samples.poses)
  if DISENTANGLEMENT in names:
    results[DISENTANGLEMENT] = disentanglement(model, workdir)
  if POSITION in names:
    results.update(position_error(workdir, config, step))
  if grids_dir is not None:
    from relate_jax import editing  # pylint: disable=g-import-not-at-top
    for name, path in editing.write_grids(model, grids_dir).items():
      logging.info('%s grid: %s', name, path)
  return results


def ground_truth_poses(annotations: dict) -> tuple:
  """θ of every object of every real example from a dataset's annotations: (N, K, 2) poses
  and (N, K) presence. Knows `poses` (θ already, absent slots at -2: shapes) and
  `positions` (image coordinates, x right, y down: BallsInBowl, θ = -(x, y) at s = 1)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if 'poses' in annotations:
    poses = np.asarray(annotations['poses'], np.float32)
    return poses, np.all(poses > -1.5, axis=-1)
  if 'positions' in annotations:
    poses = -np.asarray(annotations['positions'], np.float32)
    return poses, np.ones(poses.shape[:-1], bool)
  raise ValueError(f'{POSITION} needs ground-truth object positions; this dataset stores '
                   f'{sorted(annotations) or "none"}')


def position_error(workdir: str, config, step: int | None = None,
                   batch_size: int = 100) -> dict[str, float]:
  """Pixel error of D's position head P on the real images of config.eval.split.

  P is trained on single-object renders, so on a real scene with several objects its
  prediction is scored against the nearest ground-truth object.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from relate_jax import api, data, steps  # pylint: disable=g-import-not-at-top
  from relate_jax.metrics import relate_metrics  # pylint: disable=g-import-not-at-top
  train_config, state = api.load_state(workdir, step)
  _, discriminator = steps.build_models(train_config)
  poses, present = ground_truth_poses(data.annotations(config, config.eval.split))

  @jax.jit
  def predict(images):
    x = data.to_model_range(images, train_config.data.pixel_range)
    return discriminator.apply({'params': state.d_params, 'spectral': state.spectral}, x,
                               update_stats=False)['position']

  size = config.data.image_size
  predictions = np.concatenate([np.asarray(predict(batch)) for batch in
                                data.iterate_split(config, config.eval.split, batch_size)])
  pred_px = relate_metrics.pose_to_pixels(predictions, size)[:, None]
  true_px = relate_metrics.pose_to_pixels(poses, size)
  dist = np.where(present, np.linalg.norm(pred_px - true_px, axis=-1), np.inf).min(axis=1)
  result = {POSITION: float(dist.mean()), f'{POSITION}_median': float(np.median(dist))}
  with open(f'{workdir}/metrics.jsonl', 'a') as f:
    f.write(json.dumps({'step': int(state.step), 'name': POSITION, 'value': result[POSITION],
                        'median': result[f'{POSITION}_median'], 'num': int(len(dist)),
                        'split': config.eval.split}) + '\n')
  return result


def disentanglement(model, workdir: str, num: int = 1000, batch_size: int = 50) -> float:
  """Table A1 score on `num` scenes (all slots present, so K objects per scene)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from relate_jax.metrics import relate_metrics  # pylint: disable=g-import-not-at-top
  distances = []
  for start in range(0, num, batch_size):
    latents = model.sample_latents(batch_size, seed=1, offset=start)
    distances.append(relate_metrics.disentanglement_distances(
        lambda lat, poses=None: model.render(lat, poses=poses), latents,
        absent_pose=model.config.model.absent_pose, num_objects=None))
  value = float(np.median(np.concatenate(distances)))
  with open(f'{workdir}/metrics.jsonl', 'a') as f:
    f.write(json.dumps({'step': model.step, 'name': DISENTANGLEMENT, 'value': value,
                        'num_scenes': num}) + '\n')
  return value


def _define_flags() -> None:
  """The command line's flags, defined only when run as a program: importing this module
  (tests, notebooks) next to another CLI module must not clash on --workdir & co."""
  flags.DEFINE_string('workdir', None, 'Training workdir with checkpoints.', required=True)
  flags.DEFINE_list('metrics', ['fid10k', 'kid10k'],
                    f'Protocols: {", ".join(sorted(registry.PROTOCOLS))}, '
                    'disentanglement, position_error.')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: newest).')
  config_flags.DEFINE_config_file('config', None, 'Config file (default: workdir).')
  flags.DEFINE_enum('baseline', None, list(registry.BASELINES),
                    'Score a baseline instead of the model (no checkpoint needed): '
                    'shuffled = real train clips with their frames shuffled.')
  flags.DEFINE_bool('grids', True, 'Also write the component and before/after-Γ grids into '
                    '<workdir>/grids/ (not with --baseline).')


def main(argv):
  del argv
  f = flags.FLAGS
  try:
    grids = os.path.join(f.workdir, 'grids') if f.grids and f.baseline is None else None
    results = run(f.workdir, f.metrics, f.config, f.step, f.baseline, grids)
  except (ValueError, FileNotFoundError) as e:  # Unknown metric, wrong dataset, no workdir.
    sys.exit(f'error: {e}')
  for name, value in results.items():
    logging.info('%s: %.4f', name, value)
    print(f'{name}: {value:.4f}')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
