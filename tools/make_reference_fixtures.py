"""Regenerates the reference fixtures in tests/data from a checkout of the PyTorch reference.

Needs torch (a CPU build) in the environment that runs it, never in the project venv:

  python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch==2.13.0
  /work/venv-torch/bin/pip install -e '.[test]'
  /work/venv-torch/bin/python tools/make_reference_fixtures.py --reference_repo=/path/to/relate

Writes
* tests/data/reference_layouts.json: for each family, the reference model's state-dict keys
  and shapes in file order, and the state-dict keys of its 'disc' and 'gen' Adam parameter
  groups in torch's numbering order (from the model's own _get_param_groups). The video
  model is built with the MODEL settings of the reference's
  configs/cars_real_traffic-video-train.json.
* tests/data/reference_<config>.npz for configs/clevr.py, configs/shapestacks.py and
  configs/clevr_256.py: the reference's forward quantities (relate_jax.parity names) with
  synthetic weights (relate_jax.models.convert.synthetic_state_dict of the stored keys,
  shapes and seed: 100 MB of weights are regenerated, not stored), relate-jax's training
  latents, the seeds of the real images and of the gradient-penalty noise. Arrays over
  MAX_ELEMENTS are stored as the strided subset flat[::stride] (stride stored beside them)
  to keep each file under 2 MB.
* tests/data/reference_real_traffic_video.npz: the same for the video family
  (configs/real_traffic_video.py with model.reference_presence_bug=True): the reference's
  RELATEVideo forward from the random draws that reproduce relate-jax's latents
  (compare_reference.reference_draws), on uniform random clips.
* tests/data/reference_<config>_updates.npz for configs/clevr.py and configs/shapestacks.py
  with train.reference_schedule=True: one D update and one G update, each from the same
  synthetic weights with fresh Adam states (compare_reference.reference_updates: the
  reference's own optimizers, run in float32 and float64: the latter stored as its
  difference from the former), the gradients, parameters after Adam, spectral-norm vectors and loss metrics of each (relate_jax.parity.train_updates
  names), each array cut to at most UPDATE_ELEMENTS strided elements (stride stored); the
  latents of both updates and the seed of the updates' key and real images
  (compare_reference.iteration_inputs).
"""

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, 'tests', 'data')
MAX_ELEMENTS = 65_536
WEIGHT_SEED = 0
# config file, batch size, seed of latents / real images / penalty noise.
FIXTURES = (('clevr', 2, 1), ('shapestacks', 2, 2), ('clevr_256', 1, 3))
# config file, batch size, seed of the D and G updates' key, latents and real images.
# (The ordered reference model needs a batch of 2 or more.)
UPDATE_FIXTURES = (('clevr', 1, 4), ('shapestacks', 2, 5))
UPDATE_ELEMENTS = 128
# The video family's forward: config, batch size, seed of latents / real clips. With
# model.reference_presence_bug=True, as the reference computes it.
VIDEO_FIXTURE = ('real_traffic_video', 2, 6)
LATENTS = ('background', 'appearance', 'poses', 'present', 'select')
VIDEO_CONFIG = 'configs/cars_real_traffic-video-train.json'


def _layout(model, convert, name: str) -> dict:
  import torch
  state = model.state_dict()
  names = {id(p): n for n, p in model.named_parameters()}
  # As torch.optim does: a group's 'params' is one tensor or an iterable of them.
  members = lambda g: [g] if isinstance(g, torch.Tensor) else list(g)
  groups = {group: [names[id(p)] for g in spec for p in members(g['params'])]
            for group, spec in model._get_param_groups().items()}
  derived = convert.optimizer_param_keys(list(state), name)
  if derived != groups:
    raise AssertionError(f'{name}: convert.optimizer_param_keys disagrees with _get_param_groups')
  return {'model': name, 'keys': list(state), 'shapes': [list(v.shape) for v in state.values()],
          'param_groups': groups}


def write_layouts(ref, compare_reference, config_lib, convert) -> None:
  layouts = {}
  for config_name in ('clevr', 'clevr_256', 'shapestacks'):
    config = config_lib.load_config_file(os.path.join(ROOT, 'configs', f'{config_name}.py'))
    model = compare_reference.build_reference_model(ref, config)
    layouts[config_name] = _layout(model, convert, config.model.name)
  with open(os.path.join(ref.path, VIDEO_CONFIG)) as f:
    settings = json.load(f)['MODEL']
  settings.pop('loss_weights')
  video = ref.models.archs[config_lib.VIDEO](**settings)
  layouts['real_traffic_video'] = dict(_layout(video, convert, config_lib.VIDEO),
                                       settings=settings)
  path = os.path.join(DATA, 'reference_layouts.json')
  with open(path, 'w') as f:
    json.dump(layouts, f, indent=1)
    f.write('\n')
  print('wrote', path, {k: len(v['keys']) for k, v in layouts.items()})


def write_fixture(ref, compare_reference, config_lib, convert, config_name: str, batch: int,
                  seed: int) -> None:
  import jax
  from relate_jax import parity
  from relate_jax.models import sample_latents

  config = config_lib.load_config_file(os.path.join(ROOT, 'configs', f'{config_name}.py'))
  model, keys, shapes = _synthetic_model(ref, compare_reference, convert, config)
  latents = jax.device_get(sample_latents(jax.random.key(seed), config.model, batch, train=True))
  size = config.data.image_size
  real = np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  penalty = None
  if config.loss.gradient_penalty:
    penalty = parity.penalty_noise(jax.random.key(seed + 1000), real.shape)
  out = compare_reference.reference_forward(ref, model, config, latents, real, penalty)
  arrays = {
      'config': np.asarray(f'configs/{config_name}.py'), 'keys': np.asarray(keys),
      'ndims': np.asarray([len(s) for s in shapes]),
      'dims': np.asarray([d for s in shapes for d in s], np.int64),
      'weight_seed': np.asarray(WEIGHT_SEED), 'seed': np.asarray(seed),
      'penalty_seed': np.asarray(seed + 1000 if penalty is not None else -1),
      **{f'latents/{k}': getattr(latents, k) for k in LATENTS},
  }
  for name, value in out.items():
    value = np.asarray(value, np.float32)
    stride = -(-value.size // MAX_ELEMENTS)
    arrays[f'ref/{name}'] = value.reshape(-1)[::stride] if stride > 1 else value
    arrays[f'stride/{name}'] = np.asarray(stride)
  path = os.path.join(DATA, f'reference_{config_name}.npz')
  np.savez_compressed(path, **arrays)
  print(f'wrote {path} ({os.path.getsize(path) / 2**20:.2f} MiB, {len(out)} quantities)')


def write_video_fixture(ref, compare_reference, config_lib, convert, config_name: str,
                        batch: int, seed: int) -> None:
  import jax
  from relate_jax.models import sample_latents

  config = config_lib.load_config_file(os.path.join(ROOT, 'configs', f'{config_name}.py'))
  config.model.reference_presence_bug = True
  model, keys, shapes = _synthetic_model(ref, compare_reference, convert, config)
  latents = jax.device_get(sample_latents(jax.random.key(seed), config.model, batch, train=True))
  draws = compare_reference.reference_draws(config, latents)
  real = compare_reference.real_batch(config, batch, seed)
  out = compare_reference.reference_video_forward(ref, model, config, draws, real)
  arrays = {
      'config': np.asarray(f'configs/{config_name}.py'), 'keys': np.asarray(keys),
      'ndims': np.asarray([len(s) for s in shapes]),
      'dims': np.asarray([d for s in shapes for d in s], np.int64),
      'weight_seed': np.asarray(WEIGHT_SEED), 'seed': np.asarray(seed),
      'penalty_seed': np.asarray(-1),
      **{f'latents/{k}': np.asarray(getattr(draws.latents, k)) for k in LATENTS + ('start',)},
  }
  for name, value in out.items():
    value = np.asarray(value, np.float32)
    stride = -(-value.size // MAX_ELEMENTS)
    arrays[f'ref/{name}'] = value.reshape(-1)[::stride] if stride > 1 else value
    arrays[f'stride/{name}'] = np.asarray(stride)
  path = os.path.join(DATA, f'reference_{config_name}.npz')
  np.savez_compressed(path, **arrays)
  print(f'wrote {path} ({os.path.getsize(path) / 2**20:.2f} MiB, {len(out)} quantities)')


def _synthetic_model(ref, compare_reference, convert, config):
  """The reference model with synthetic weights of its own keys and shapes, and those."""
  model = compare_reference.build_reference_model(ref, config)
  state = model.state_dict()
  keys, shapes = list(state), [tuple(v.shape) for v in state.values()]
  compare_reference.load_arrays(model, convert.synthetic_state_dict(keys, shapes, WEIGHT_SEED))
  return model, keys, shapes


def write_update_fixture(ref, compare_reference, config_lib, convert, config_name: str,
                         batch: int, seed: int) -> None:
  config = config_lib.load_config_file(os.path.join(ROOT, 'configs', f'{config_name}.py'))
  config.train.reference_schedule = True
  model, keys, shapes = _synthetic_model(ref, compare_reference, convert, config)
  _, _, torch_real, draws = compare_reference.iteration_inputs(config, batch, seed)
  names, draws = ['disc', 'gen'], draws[:2]
  arrays = {
      'config': np.asarray(f'configs/{config_name}.py'), 'keys': np.asarray(keys),
      'ndims': np.asarray([len(s) for s in shapes]),
      'dims': np.asarray([d for s in shapes for d in s], np.int64),
      'weight_seed': np.asarray(WEIGHT_SEED), 'seed': np.asarray(seed),
      'batch': np.asarray(batch), 'names': np.asarray(names),
  }
  for i, draw in enumerate(draws):
    arrays.update({f'latents{i}/{k}': np.asarray(getattr(draw.latents, k)) for k in LATENTS})
  # Each update from the same weights: after a D update, its ±lr flips (Adam's first step
  # on rounding-level gradients) would move G's gradients far beyond rounding.
  runs = [[compare_reference.reference_updates(ref, model, config, [draw], torch_real, [name],
                                               float64=float64)[1][0]
           for name, draw in zip(names, draws)] for float64 in (False, True)]
  for i, (record, record64) in enumerate(zip(*runs)):
    for name, value in record.items():
      value = np.asarray(value, np.float32).reshape(-1)
      stride = -(-value.size // UPDATE_ELEMENTS)
      arrays[f'stride/{name}'] = np.asarray(stride)
      arrays[f'ref32_{i}/{name}'] = value[::stride]
      # The float64 run as its (small) difference from the float32 one, in float32.
      spread = np.asarray(record64[name], np.float64).reshape(-1)[::stride] - value[::stride]
      arrays[f'spread_{i}/{name}'] = spread.astype(np.float32)
  path = os.path.join(DATA, f'reference_{config_name}_updates.npz')
  np.savez_compressed(path, **arrays)
  print(f'wrote {path} ({os.path.getsize(path) / 2**20:.2f} MiB)')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--reference_repo', required=True)
  parser.add_argument('--only', choices=('forward', 'updates', 'video'),
                      help='Write only the forward (and layout), the update or the video '
                      'forward fixtures.')
  args = parser.parse_args()
  os.environ['CUDA_VISIBLE_DEVICES'] = ''
  os.environ['JAX_PLATFORMS'] = 'cpu'
  sys.path.insert(0, ROOT)
  from relate_jax import compare_reference
  from relate_jax import config as config_lib
  from relate_jax.models import convert
  ref = compare_reference.import_reference(args.reference_repo)
  if args.only in (None, 'forward'):
    write_layouts(ref, compare_reference, config_lib, convert)
    for config_name, batch, seed in FIXTURES:
      write_fixture(ref, compare_reference, config_lib, convert, config_name, batch, seed)
  if args.only in (None, 'video'):
    write_video_fixture(ref, compare_reference, config_lib, convert, *VIDEO_FIXTURE)
  if args.only in (None, 'updates'):
    for config_name, batch, seed in UPDATE_FIXTURES:
      write_update_fixture(ref, compare_reference, config_lib, convert, config_name, batch, seed)


if __name__ == '__main__':
  main()
