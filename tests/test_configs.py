"""Every config file and variant: valid, the reference's parameter counts, switches that do
exactly what they say."""

import functools
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relate_jax import config as config_lib
from relate_jax import models
from relate_jax import steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'configs', '*.py')))

# (generator side, discriminator) of the PyTorch reference's state dicts (REFERENCE.md §3.1-3.2).
REFERENCE_COUNTS = {
    'clevr.py': (6_809_926, 17_471_623),
    'clevr5.py': (6_799_686, 17_471_623),  # T_f (1, 512, 4, 4)
    'clevr5_vbg.py': (6_799_686, 17_471_623),
    'real_traffic.py': (6_809_926, 17_471_623),  # Same layers as CLEVR (K differs, not counts).
    'clevr_256.py': (8_386_950, 43_689_095),  # Upsample variant: conv6 + inorm5 in D.
    'shapestacks.py': (6_825_032, 17_471_623),  # Ordered: f0, f1 instead of Γ; Nb = 5.
    'shapestacks.py:gp': (6_825_032, 17_471_623),
}


def load(name):
  path, _, variant = name.partition(':')
  return config_lib.load_config_file(
      os.path.join(ROOT, 'configs', path) + (f':{variant}' if variant else ''))


def counts(config):
  state = jax.eval_shape(functools.partial(steps.init_state, config), jax.random.key(0))
  return models.count_params(state.g_params), models.count_params(state.d_params)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_validates_and_builds(name):
  config = load(name)
  config_lib.validate(config)
  g, d = counts(config)
  assert g > 0 and d > 0


@pytest.mark.parametrize('name', sorted(REFERENCE_COUNTS))
def test_parameter_counts_equal_the_reference(name):
  assert counts(load(name)) == REFERENCE_COUNTS[name]


def flat(config):
  return {f'{g}.{k}': v for g, group in config.items() if hasattr(group, 'items')
          for k, v in group.items()}


@pytest.mark.parametrize('name, variant, changed', [
    ('balls_in_bowl.py', 'blockgan2d', {'model.use_interaction': False, 'loss.position': 0.0}),
    ('balls_in_bowl.py', 'no_residual', {'model.residual': False}),
    ('balls_in_bowl.py', 'no_position', {'loss.position': 0.0}),
    ('clevr5.py', 'main', {'model.scale_augment': False, 'model.obj_dim': 90}),
    ('shapestacks.py', 'gp', {'optim.b1': 0.5, 'optim.gen_steps': 1,
                              'loss.gradient_penalty': 1.0}),
    ('shapestacks.py', 'paper_f1', {'model.order_f1_sees_pose': True}),
])
def test_variant_changes_only_its_fields(name, variant, changed):
  base, var = flat(load(name)), flat(load(f'{name}:{variant}'))
  diff = {k: var[k] for k in base if base[k] != var[k]}
  assert diff == changed


def test_unknown_variant_is_rejected():
  with pytest.raises(ValueError, match='Unknown variant'):
    load('clevr.py:nonsense')


def test_balls_in_bowl_matches_table_a4():
  c = load('balls_in_bowl.py')
  m = c.model
  assert (m.num_objects, m.min_objects, m.obj_size, m.bg_dim, m.obj_dim) == (2, 2, 8, 3, 1)
  assert m.pooling == 'sum' and m.fixed_objects and m.pose_range == 0.8
  assert (c.optim.lr, c.optim.b1, c.optim.gen_steps) == (1e-3, 0.5, 1)


def _tiny(**model):
  c = config_lib.load_config_file(os.path.join(ROOT, 'configs', 'test.py'))
  for k, v in model.items():
    c.model[k] = v
  return c


def _poses(config, latents):
  generator, _ = steps.build_models(config)
  params = generator.init(jax.random.key(0), latents)['params']
  return generator.apply({'params': params}, latents, render_single=False)[1]['poses']


def test_without_residual_poses_do_not_depend_on_initial_poses_directly():
  """w/o residual: θ = Γ output; with Γ's weights zeroed θ no longer follows θ̂, whereas the
  residual model returns θ̂ itself."""
  latents = models.sample_latents(jax.random.key(1), _tiny().model, 4, train=False)
  for residual in (True, False):
    config = _tiny(residual=residual)
    generator, _ = steps.build_models(config)
    params = generator.init(jax.random.key(0), latents)['params']
    params['interaction'] = jax.tree.map(jnp.zeros_like, params['interaction'])
    poses = generator.apply({'params': params}, latents, render_single=False)[1]['poses']
    if residual:
      np.testing.assert_allclose(poses, latents.poses, atol=1e-6)
    else:
      np.testing.assert_allclose(poses, 0.0, atol=1e-6)  # Γ(·) = tanh(0) = 0: no θ̂ left.


def test_blockgan2d_poses_are_the_initial_poses():
  config = load('balls_in_bowl.py:blockgan2d')
  config.data.image_size = 32
  config.model.obj_size = 4
  config.model.obj_channels, config.model.scene_channels = 8, 8
  config.model.decoder_channels, config.model.disc_channels = (8, 8, 8), (8, 8, 8)
  latents = models.sample_latents(jax.random.key(2), config.model, 3, train=True)
  np.testing.assert_allclose(_poses(config, latents), latents.poses)
