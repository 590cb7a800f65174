"""Reading reference .pth files with torch: both serializers, the weights-only guard, Adam
states that continue exactly as torch's, and a converted workdir that trains, evaluates and
samples. Skipped without torch (it is an optional extra: pip install 'relate-jax[torch]')."""

import datetime
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

torch = pytest.importorskip('torch', reason="needs torch: pip install 'relate-jax[torch]'")

from relate_jax import config as config_lib  # noqa: E402
from relate_jax import reference_checkpoint  # noqa: E402
from relate_jax.models import convert  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYOUTS = json.loads((ROOT / 'tests' / 'data' / 'reference_layouts.json').read_text())


@pytest.mark.parametrize('legacy', [True, False], ids=['torch<=1.5 format', 'zip format'])
def test_both_serializers_load_with_weights_only(tmp_path, legacy):
  state = {'zbg': torch.randn(1, 4, 2, 2), 'discriminator.dh4.weight_u': torch.randn(3)}
  path = str(tmp_path / 'model_epoch_00000001.pth')
  torch.save(state, path, _use_new_zipfile_serialization=not legacy)
  loaded = reference_checkpoint.load_torch_file(path)
  assert list(loaded) == list(state)
  for key, value in state.items():
    np.testing.assert_array_equal(loaded[key], value.numpy())


def test_pickled_objects_are_refused_unless_trusted(tmp_path):
  path = str(tmp_path / 'model.pth')
  torch.save({'w': torch.ones(2), 'when': datetime.date(2020, 12, 6)}, path)
  with pytest.raises(reference_checkpoint.ConvertError, match='--trust_pickle'):
    reference_checkpoint.load_torch_file(path)
  assert reference_checkpoint.load_torch_file(path, trust_pickle=True)['when'].year == 2020


def test_adam_continues_exactly_like_torch(tmp_path):
  """Two torch Adam steps, saved and converted; the third step in optax from the converted
  state equals torch's third step (β1 = 0.5 so both moments matter)."""
  layout = LAYOUTS['clevr']
  keys = [k for k in convert.optimizer_param_keys(layout['keys'], config_lib.STATIC)['gen']
          if k.startswith(('zbg', 'Gamma.v', 'generator.deconv2', 'generator.obj_generator.scale'))]
  shapes = dict(zip(layout['keys'], layout['shapes']))
  start = convert.synthetic_state_dict(keys, [shapes[k] for k in keys], seed=5)
  params = [torch.nn.Parameter(torch.from_numpy(start[k].copy())) for k in keys]
  lr, b1, b2, eps = 1e-3, 0.5, 0.999, 1e-8
  adam = torch.optim.Adam([{'params': params[:1]}, {'params': params[1:]}], lr=lr,
                          betas=(b1, b2), eps=eps)
  rng = np.random.default_rng(0)
  grads = [[rng.normal(size=p.shape).astype(np.float32) for p in params] for _ in range(3)]
  for step in grads[:2]:
    for p, g in zip(params, step):
      p.grad = torch.from_numpy(g)
    adam.step()
  path = str(tmp_path / 'opt.pth')
  torch.save(adam.state_dict(), path, _use_new_zipfile_serialization=False)
  current = {k: p.detach().numpy().copy() for k, p in zip(keys, params)}
  moments = convert.from_torch_adam(reference_checkpoint.load_torch_file(path), keys, current,
                                    config_lib.STATIC)
  assert moments.count == 2

  def flax_tree(arrays):
    return convert.relayout(arrays, config_lib.STATIC)['generator']['params']

  ours = flax_tree(current)
  optimizer = optax.adam(lr, b1=b1, b2=b2, eps=eps)
  state = optimizer.init(ours)
  state = (state[0]._replace(count=np.int32(moments.count), mu=moments.mu['generator']['params'],
                             nu=moments.nu['generator']['params']),) + tuple(state[1:])
  updates, _ = optimizer.update(flax_tree(dict(zip(keys, grads[2]))), state, ours)
  ours = optax.apply_updates(ours, updates)
  for p, g in zip(params, grads[2]):
    p.grad = torch.from_numpy(g)
  adam.step()
  theirs = flax_tree({k: p.detach().numpy() for k, p in zip(keys, params)})
  # Parameters ~0.02 moved by ~lr: a few float32 ulps (2e-9 at 0.02) of rounding apart.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8), ours, theirs)
  moved = jax.tree.map(lambda a, b: np.max(np.abs(a - b)), theirs, flax_tree(current))
  assert min(jax.tree.leaves(moved)) > 1e-4  # The step did move every parameter.


def _write_reference_checkpoint(directory: str) -> str:
  """model_epoch_00000003.pth and _opt.pth as the reference's save_model writes them (legacy
  serializer, as torch 1.4 did): the clevr state dict and {'disc', 'gen'} Adam states after
  3 D and 6 G updates, with the reference's param groups."""
  layout = LAYOUTS['clevr']
  arrays = convert.synthetic_state_dict(layout['keys'], layout['shapes'], seed=7)
  tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
  groups = convert.optimizer_param_keys(layout['keys'], config_lib.STATIC)
  optimizers = {}
  for name, keys in groups.items():
    params = [torch.nn.Parameter(tensors[k].clone()) for k in keys]
    adam = torch.optim.Adam([{'params': params}], lr=1e-4, betas=(0.0, 0.999))
    for _ in range(3 if name == 'disc' else 6):
      for p in params:
        p.grad = 1e-3 * torch.randn_like(p)
      adam.step()
    for k, p in zip(keys, params):
      tensors[k] = p.detach()
    optimizers[name] = adam.state_dict()
  for k in layout['keys']:  # torch stores one tensor under both names
    if convert.is_alias(k):
      tensors[k] = tensors[convert.alias_source(k)]
  path = os.path.join(directory, 'model_epoch_00000003.pth')
  torch.save(tensors, path, _use_new_zipfile_serialization=False)
  torch.save(optimizers, reference_checkpoint.optimizer_path(path),
             _use_new_zipfile_serialization=False)
  return path


@pytest.mark.slow
def test_converted_checkpoint_trains_evaluates_and_samples(tmp_path):
  from relate_jax import api
  from relate_jax import train

  path = _write_reference_checkpoint(str(tmp_path))
  config = config_lib.load_config_file(str(ROOT / 'configs' / 'clevr.py'))
  config.data.name = 'shapes_tiny'
  config.data.pixel_range = 'reference'
  config.train.batch_size = 2
  config.train.num_grid = 4
  workdir = str(tmp_path / 'workdir')
  converted = reference_checkpoint.convert(path, config, workdir)
  assert int(converted.step) == 3
  with pytest.raises(reference_checkpoint.ConvertError, match='already holds checkpoints'):
    reference_checkpoint.convert(path, config, workdir)

  _, restored = api.load_state(workdir)
  reference = reference_checkpoint.load_torch_file(path)
  np.testing.assert_array_equal(restored.d_params['logit']['kernel'],
                                reference['discriminator.dh4.weight_orig'].T)
  assert int(restored.g_opt[0].count) == 6 and int(restored.d_opt[0].count) == 3

  config.train.num_steps = 13
  config.train.log_every = config.train.sample_every = config.train.checkpoint_every = 10
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 13
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.g_params))

  # The command-line tools, as a user runs them (without torch: nothing imports it).
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  run = lambda *args: subprocess.run([sys.executable, '-m', *args], env=env, check=True,
                                     capture_output=True, text=True)
  result = run('relate_jax.evaluate', f'--workdir={workdir}', '--metrics=position_error')
  assert 'position_error:' in result.stdout
  run('relate_jax.sample', f'--workdir={workdir}', f'--out={tmp_path / "samples"}', '--num=3',
      '--batch_size=3')
  assert len(list((tmp_path / 'samples').glob('*.png'))) == 3


REFERENCE_REPO = os.environ.get('RELATE_REFERENCE_REPO')


@pytest.mark.slow
@pytest.mark.skipif(not REFERENCE_REPO, reason='needs a checkout of the reference code: '
                    'RELATE_REFERENCE_REPO=/path/to/relate')
def test_a_checkpoint_saved_by_the_reference_code_converts_and_trains(tmp_path):
  """The reference's own model, optimizers, training iteration and save_model write the
  checkpoint; the command-line tools convert it, train 10 steps on, evaluate and sample."""
  from relate_jax import compare_reference

  ref = compare_reference.import_reference(REFERENCE_REPO)
  config = config_lib.load_config_file(str(ROOT / 'configs' / 'clevr.py'))
  model = compare_reference.build_reference_model(ref, config, seed=0)
  o = config.optim
  with compare_reference._quiet():  # pylint: disable=protected-access
    optimizers, _ = ref.optimizer.init_optimizer(
        model, None, lr=o.lr, betas=[o.b1, o.b2],
        group_params={'disc': {'num_iter': 1}, 'gen': {'num_iter': o.gen_steps}})
    # Two iterations of main.trainvalidate on random images in the reference's [−0.5, 0.5].
    real = compare_reference.real_batch(config, 2, seed=0).transpose(0, 3, 1, 2) / 2
    for it in range(2):
      for opt in optimizers:
        for _ in range(opt.num_iter):
          opt.zero_grad()
          _, loss = model(gt_images=torch.from_numpy(real), trainmode='train', it=it,
                          gen=opt.name == 'gen')
          loss.backward()
          opt.step()
    path = str(tmp_path / 'model_epoch_00000001.pth')
    ref.model_io.save_model(model, None, path, optimizer=optimizers)
  assert os.path.isfile(str(tmp_path / 'model_epoch_00000001_opt.pth'))

  workdir = str(tmp_path / 'workdir')
  overrides = ['--config.data.name=shapes_tiny', '--config.data.pixel_range=reference',
               '--config.train.batch_size=2', '--config.train.num_grid=4']
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  run = lambda *args: subprocess.run([sys.executable, '-m', *args], env=env, check=True,
                                     capture_output=True, text=True)
  config_flag = f'--config={ROOT / "configs" / "clevr.py"}'
  run('relate_jax.convert_torch', f'--checkpoint={path}', config_flag, f'--workdir={workdir}',
      *overrides)

  from relate_jax import api
  _, converted = api.load_state(workdir)
  assert int(converted.step) == 2  # The reference's D update count.
  assert int(converted.g_opt[0].count) == 2 * o.gen_steps
  weights = reference_checkpoint.load_torch_file(path)
  np.testing.assert_array_equal(converted.d_params['logit']['kernel'],
                                weights['discriminator.dh4.weight_orig'].T)
  # torch numbers Adam's state by the parameters' order in the optimizer's param groups.
  disc = next(opt for opt in optimizers if opt.name == 'disc')
  order = [p for group in disc.param_groups for p in group['params']]
  target = dict(model.named_parameters())['discriminator.dh4.weight_orig']
  number = next(i for i, p in enumerate(order) if p is target)
  saved = torch.load(str(tmp_path / 'model_epoch_00000001_opt.pth'), weights_only=True)
  nu = saved['disc']['state'][number]['exp_avg_sq'].numpy()
  assert nu.max() > 0
  np.testing.assert_allclose(converted.d_opt[0].nu['logit']['kernel'], nu.T, rtol=1e-6)

  run('relate_jax.main', config_flag, f'--workdir={workdir}', '--config.train.num_steps=12',
      '--config.train.log_every=5', '--config.train.checkpoint_every=10', *overrides)
  _, trained = api.load_state(workdir)
  assert int(trained.step) == 12
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(trained.g_params))
  result = run('relate_jax.evaluate', f'--workdir={workdir}', '--metrics=position_error')
  assert 'position_error:' in result.stdout
  run('relate_jax.sample', f'--workdir={workdir}', f'--out={tmp_path / "samples"}', '--num=3',
      '--batch_size=3')
  assert len(list((tmp_path / 'samples').glob('*.png'))) == 3
