"""Reference state dicts and Adam states to relate-jax layouts (relate_jax.models.convert),
checked against the exact key and shape lists of the reference models
(tests/data/reference_layouts.json, written by tools/make_reference_fixtures.py from the
reference code) and against the shapes of our own models (shape-only initialisation)."""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from relate_jax import config as config_lib
from relate_jax import reference_checkpoint
from relate_jax import steps
from relate_jax.models import convert

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYOUTS = json.loads((ROOT / 'tests' / 'data' / 'reference_layouts.json').read_text())
STATIC_FAMILIES = {'clevr': 110, 'clevr_256': 122, 'shapestacks': 110}  # REFERENCE §3.1-3.2


def _config(name: str) -> ml_collections.ConfigDict:
  return config_lib.load_config_file(str(ROOT / 'configs' / f'{name}.py'))


@functools.lru_cache
def _cached_state_dict(family: str, seed: int) -> dict[str, np.ndarray]:
  layout = LAYOUTS[family]
  return convert.synthetic_state_dict(layout['keys'], layout['shapes'], seed)


def _state_dict(family: str, seed: int = 0) -> dict[str, np.ndarray]:
  """Synthetic weights with the family's reference layout (a fresh dict of shared arrays)."""
  return dict(_cached_state_dict(family, seed))


def _shapes(tree):
  return jax.tree.map(lambda x: tuple(x.shape), tree)


expected_static_variables = reference_checkpoint.expected_variables


def _video_config() -> ml_collections.ConfigDict:
  """configs/cars_real_traffic-video-train.json's model (reference_layouts.json settings)."""
  settings = LAYOUTS['real_traffic_video']['settings']
  config = _config('real_traffic_video')
  config.model.clip_length = settings['seq_len']
  config.model.num_objects = settings['n_objects']
  config.model.obj_size = settings['obj_size']
  config.model.obj_dim = settings['obj_dim']
  config.model.bg_dim = settings['backgd_dim']
  return config


@pytest.mark.parametrize('family', sorted(STATIC_FAMILIES))
def test_static_reference_layouts_convert_to_our_models(family):
  layout = LAYOUTS[family]
  assert len(layout['keys']) == STATIC_FAMILIES[family]
  config = _config(family)
  expected = expected_static_variables(config)
  converted = convert.from_torch_state_dict(_state_dict(family), config.model.name, expected)
  assert _shapes(converted) == _shapes(expected)


def test_static_relayouts():
  state = _state_dict('clevr')
  c = convert.from_torch_state_dict(state, config_lib.STATIC)
  g, d = c['generator']['params'], c['discriminator']
  np.testing.assert_array_equal(g['background_constant'][0, 2, 3], state['zbg'][0, :, 2, 3])
  np.testing.assert_array_equal(d['spectral']['conv3']['v'],
                                state['discriminator.disc_conv3.weight_v'])
  np.testing.assert_array_equal(d['params']['conv3']['kernel'][1, 4],  # (kh, kw, in, out)
                                state['discriminator.disc_conv3.weight_orig'][:, :, 1, 4].T)
  # ConvTranspose (in, out, kh, kw) → flipped (kh, kw, in, out).
  np.testing.assert_array_equal(g['image_decoder']['deconv1']['conv']['kernel'][0, 1],
                                state['generator.deconv1.0.weight'][:, :, 3, 2])
  np.testing.assert_array_equal(g['interaction']['v']['layers_0']['kernel'],
                                state['Gamma.v.0.weight'].T)
  np.testing.assert_array_equal(d['params']['inorm2']['scale'],
                                state['discriminator.inorm2.0.weight_orig'])


def test_video_reference_layout_converts_to_the_video_names():
  config = _video_config()
  assert len(LAYOUTS['real_traffic_video']['keys']) == 128
  expected = reference_checkpoint.expected_variables(config)
  state = _state_dict('real_traffic_video')
  converted = convert.from_torch_state_dict(state, config_lib.VIDEO, expected)
  assert _shapes(converted) == _shapes(expected)
  g, d = converted['generator']['params'], converted['discriminator']['params']
  np.testing.assert_array_equal(g['dynamics']['v']['layers_2']['kernel'],
                                state['Gamma.v.4.weight'].T)
  np.testing.assert_array_equal(g['interaction']['interaction']['layers_0']['kernel'],
                                state['mlp_xy.interaction.0.weight'].T)
  np.testing.assert_array_equal(g['speed']['layers_1']['bias'], state['mlp_speed.2.bias'])
  # conv1 input channel 3t + c is colour c of frame t, as torch.cat(frames, 1).
  t, c = 7, 2
  np.testing.assert_array_equal(d['conv1']['conv']['kernel'][:, :, 3 * t + c, 5],
                                state['discriminator.disc_conv1.weight'][5, 3 * t + c])


@pytest.mark.parametrize('family', sorted(LAYOUTS))
def test_optimizer_parameter_order_is_the_references(family):
  layout = LAYOUTS[family]
  assert convert.optimizer_param_keys(layout['keys'], layout['model']) == layout['param_groups']


def test_conversion_lists_every_problem_by_name():
  state = _state_dict('clevr')
  state['Gamma.extra.0.weight'] = np.zeros((2, 2), np.float32)
  del state['generator.deconv3.0.bias']
  state['discriminator.class2.weight'] = np.zeros((1, 7), np.float32)
  state['generator.upsample_net.1.0.weight'] = state['generator.upsample_net.1.0.weight'] + 1
  expected = expected_static_variables(_config('clevr'))
  with pytest.raises(convert.ConversionError) as error:
    convert.from_torch_state_dict(state, config_lib.STATIC, expected)
  message = str(error.value)
  for name in ('Gamma.extra.0.weight', 'generator.upsample_net.1.0.weight',
               'discriminator.class2.weight', 'image_decoder/deconv3/conv/bias',
               'generator.upsample_net.2.0.bias'):  # the alias of the dropped entry
    assert name in message
  with pytest.raises(convert.ConversionError, match='mlp_xy_rec.0.weight'):
    convert.from_torch_state_dict(_state_dict('shapestacks'), config_lib.STATIC)


def _torch_adam_state(keys: dict[str, list[str]], state_dict, player: str, steps_done: int,
                      rng) -> dict:
  """A torch.optim.Adam state_dict as the reference saves it: one group per
  _get_param_groups entry, parameters numbered across groups, moments in torch layout."""
  names = keys[player]
  sizes = [len(names)]
  if player == 'gen':  # generator, zbg, zfg, then the family's modules as one group
    n_gen = sum(k.startswith('generator.') for k in names)
    sizes = [n_gen, 1, 1, len(names) - n_gen - 2]
  groups, start = [], 0
  for size in sizes:
    groups.append({'lr': 1e-4, 'betas': (0.0, 0.999), 'eps': 1e-8, 'weight_decay': 0,
                   'amsgrad': False, 'params': list(range(start, start + size))})
    start += size
  state = {i: {'step': np.float32(steps_done),
               'exp_avg': rng.normal(size=state_dict[k].shape).astype(np.float32),
               'exp_avg_sq': rng.random(state_dict[k].shape).astype(np.float32)}
           for i, k in enumerate(names)}
  return {'state': state, 'param_groups': groups}


def test_adam_moments_follow_their_parameters():
  state = _state_dict('clevr')
  keys = convert.optimizer_param_keys(list(state), config_lib.STATIC)
  rng = np.random.default_rng(0)
  torch_gen = _torch_adam_state(keys, state, 'gen', 6, rng)
  gen = convert.from_torch_adam(torch_gen, keys['gen'], state, config_lib.STATIC)
  assert gen.count == 6 and gen.hyperparams['betas'] == (0.0, 0.999)
  params = convert.from_torch_state_dict(state, config_lib.STATIC)['generator']
  assert _shapes(gen.mu['generator']) == _shapes(params) == _shapes(gen.nu['generator'])
  index = {k: i for i, k in enumerate(keys['gen'])}
  mu, nu = gen.mu['generator']['params'], gen.nu['generator']['params']
  np.testing.assert_array_equal(mu['interaction']['v']['layers_2']['kernel'],
                                torch_gen['state'][index['Gamma.v.4.weight']]['exp_avg'].T)
  np.testing.assert_array_equal(nu['background_constant'][0, 1, 2],
                                torch_gen['state'][index['zbg']]['exp_avg_sq'][0, :, 1, 2])
  np.testing.assert_array_equal(  # flipped k = 4 kernel: (0, 1) is torch's (3, 2)
      mu['image_decoder']['deconv2']['conv']['kernel'][0, 1],
      torch_gen['state'][index['generator.deconv2.0.weight']]['exp_avg'][:, :, 3, 2])

  torch_disc = _torch_adam_state(keys, state, 'disc', 3, rng)
  disc = convert.from_torch_adam(torch_disc, keys['disc'], state, config_lib.STATIC)
  assert disc.count == 3 and 'spectral' not in disc.mu['discriminator']
  np.testing.assert_array_equal(
      disc.mu['discriminator']['params']['position']['kernel'],
      torch_disc['state'][keys['disc'].index('discriminator.enc.weight_orig')]['exp_avg'].T)


def test_adam_state_that_optax_cannot_hold_is_refused():
  state = _state_dict('shapestacks')
  keys = convert.optimizer_param_keys(list(state), config_lib.ORDERED)
  torch_disc = _torch_adam_state(keys, state, 'disc', 4, np.random.default_rng(1))
  torch_disc['state'][3]['step'] = np.float32(2)
  with pytest.raises(convert.ConversionError, match=keys['disc'][3]):
    convert.from_torch_adam(torch_disc, keys['disc'], state, config_lib.ORDERED)
  with pytest.raises(convert.ConversionError, match='parameters'):
    convert.from_torch_adam(torch_disc, keys['disc'][:-1], state, config_lib.ORDERED)
  fresh = dict(torch_disc, state={})  # Never stepped: zero moments, count 0.
  moments = convert.from_torch_adam(fresh, keys['disc'], state, config_lib.ORDERED)
  assert moments.count == 0
  assert all(not np.any(x) for x in jax.tree.leaves(moments.nu))


def test_synthetic_weights_are_deterministic_and_torch_consistent():
  layout = LAYOUTS['clevr_256']
  a = _state_dict('clevr_256', seed=3)
  b = convert.synthetic_state_dict(layout['keys'], layout['shapes'], 3)
  assert all(np.array_equal(a[k], b[k]) for k in a)
  other = convert.synthetic_state_dict(layout['keys'][:1], layout['shapes'][:1], 4)
  assert not np.array_equal(a['zbg'], other['zbg'])
  np.testing.assert_array_equal(a['generator.upsample_net.5.0.weight'],
                                a['generator.deconv6.0.weight'])
  np.testing.assert_allclose(np.linalg.norm(a['discriminator.disc_conv6.weight_v']), 1.0,
                             rtol=1e-6)


def test_a_checkpoint_without_iterator_state_restores_with_an_iterator(tmp_path):
  """Converted workdirs hold no input-pipeline state; resuming passes an iterator anyway."""
  import grain

  from relate_jax import checkpoint
  config = _config('test')
  abstract = jax.eval_shape(functools.partial(steps.init_state, config),
                            steps.stream_keys(0)['init'])
  state = jax.tree.map(lambda x: jnp.full(x.shape, 3, x.dtype), abstract)
  mgr = checkpoint.manager(str(tmp_path))
  checkpoint.save(mgr, state, None)
  iterator = iter(grain.MapDataset.range(8).to_iter_dataset())
  next(iterator)
  restored = checkpoint.restore(mgr, abstract, iterator)
  mgr.close()
  assert int(restored.step) == 3 and next(iterator) == 1  # the iterator is left as it was
