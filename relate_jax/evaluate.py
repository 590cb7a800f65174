"""Standalone evaluation of a training workdir's newest checkpoint.

  python -m relate_jax.evaluate --workdir=DIR --metrics=fid10k,kid10k [--config=configs/x.py]

Without --config the resolved config that training wrote into the workdir is used; with
--config=configs/x.py its `eval` settings apply (and `--config.eval.resolution=96` & co.
override them), while the generator is always built from the workdir's config. Metrics are the registry's protocols
(relate_jax/metrics/registry.py); results are printed and appended to
<workdir>/metrics.jsonl with the checkpoint's step. `disentanglement` is also accepted: the
median distance (px) of Table A1 on 1,000 generated scenes with 5 objects.
"""

import json

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from relate_jax.metrics import registry

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir with checkpoints.',
                               required=True)
_METRICS = flags.DEFINE_list('metrics', ['fid10k', 'kid10k'],
                             f'Protocols: {", ".join(sorted(registry.PROTOCOLS))}, '
                             'disentanglement.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: newest).')
_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file (default: workdir).')

DISENTANGLEMENT = 'disentanglement'


def run(workdir: str, names: list[str], config=None, step: int | None = None) -> dict:
  """Loads the checkpoint through relate_jax.api and runs the named metrics."""
  from relate_jax import api  # pylint: disable=g-import-not-at-top
  model = api.load(workdir, step=step)
  config = config if config is not None else model.config
  protocols = [n for n in names if n != DISENTANGLEMENT]

  def sample_fn(num, seed, batch_size):
    for images, _, _ in model.sample_batches(num, seed=seed, batch_size=batch_size):
      yield images

  results = registry.evaluate(config, sample_fn, protocols, workdir, step=model.step)
  if DISENTANGLEMENT in names:
    results[DISENTANGLEMENT] = disentanglement(model, workdir)
  return results


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


def main(argv):
  del argv
  results = run(_WORKDIR.value, _METRICS.value, _CONFIG.value, _STEP.value)
  for name, value in results.items():
    logging.info('%s: %.4f', name, value)
    print(f'{name}: {value:.4f}')


if __name__ == '__main__':
  app.run(main)
