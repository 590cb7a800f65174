"""The training iteration, the loop, checkpoints and resumption on the tiny test config."""

import functools
import glob
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relate_jax import api
from relate_jax import config as config_lib
from relate_jax import steps
from relate_jax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name='test'):
  return config_lib.load_config_file(os.path.join(ROOT, 'configs', f'{name}.py'))


def tree_equal(a, b) -> bool:
  leaves = jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)),
                                        a, b))
  return all(leaves)


@pytest.fixture(scope='module')
def config():
  c = load_config()
  c.loss.gradient_penalty = 1.0  # Exercise every loss term.
  return c


@pytest.fixture(scope='module')
def state(config):
  return jax.jit(functools.partial(steps.init_state, config))(jax.random.key(0))


def real_batch(config, seed=0):
  size = config.data.image_size
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (config.train.batch_size, size, size, 3), dtype=np.uint8)


def test_discriminator_update_leaves_generator_untouched(config, state):
  phases = steps.Phases(config)
  real = jnp.asarray(real_batch(config), jnp.float32) / 127.5 - 1.0
  new, metrics = jax.jit(phases.discriminator_update)(state, real, jax.random.key(1))
  assert tree_equal(new.g_params, state.g_params)
  assert tree_equal(new.g_opt, state.g_opt)
  assert not tree_equal(new.d_params, state.d_params)
  assert not tree_equal(new.spectral, state.spectral)
  assert set(metrics) == {'d_gan', 'd_style', 'd_position', 'd_penalty', 'd_total'}
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_generator_update_leaves_discriminator_untouched(config, state):
  phases = steps.Phases(config)
  new, metrics = jax.jit(phases.generator_update, static_argnums=1)(
      state, config.train.batch_size, jax.random.key(2))
  assert tree_equal(new.d_params, state.d_params)
  assert tree_equal(new.d_opt, state.d_opt)
  assert not tree_equal(new.g_params, state.g_params)
  assert np.isfinite(float(metrics['g_total']))


def test_iteration_runs_m_generator_updates(config, state):
  """With M = 2 the generator's Adam count advances by 2 and D's by 1."""
  mesh = steps.make_mesh(jax.devices()[:1])
  step_fn = steps.compile_train_step(config, mesh)
  fresh = jax.tree.map(jnp.copy, state)  # The step donates its input.
  new, metrics = step_fn(fresh, real_batch(config))
  counts = lambda opt: {int(x) for x in jax.tree.leaves(opt) if np.ndim(x) == 0}
  assert counts(new.g_opt) == {config.optim.gen_steps}
  assert counts(new.d_opt) == {1}
  assert int(new.step) == 1
  assert 'g_position' in metrics and 'd_penalty' in metrics


def test_same_seed_same_samples(config, state):
  model_a = api.Relate(config, state.g_params)
  model_b = api.Relate(config, jax.tree.map(jnp.copy, state.g_params))
  images_a, latents_a = model_a.sample(6, seed=3, batch_size=4)
  images_b, latents_b = model_b.sample(6, seed=3, batch_size=3)
  np.testing.assert_array_equal(images_a, images_b)  # Batch size does not matter.
  np.testing.assert_array_equal(latents_a.appearance, latents_b.appearance)
  images_c, _ = model_a.sample(6, seed=4, batch_size=4)
  assert not np.array_equal(images_a, images_c)


def run_main(workdir, *overrides, config='configs/test.py'):
  cmd = [sys.executable, '-m', 'relate_jax.main', f'--config={config}',
         f'--workdir={workdir}', *overrides]
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_main_trains_checkpoints_and_resumes(tmp_path):
  """The CLI runs 3 steps, writes checkpoints, TensorBoard events and grids, then resumes."""
  workdir = tmp_path / 'run'
  first = run_main(workdir, '--config.train.num_steps=2')
  assert first.returncode == 0, first.stderr[-3000:]
  assert 'step 2/2' in first.stderr
  assert os.path.isdir(workdir / 'checkpoints' / '2')
  assert glob.glob(str(workdir / 'tensorboard' / 'events.out.tfevents.*'))
  assert os.path.exists(workdir / 'samples' / 'step_00000002.png')
  assert os.path.exists(workdir / 'config.json')

  second = run_main(workdir, '--config.train.num_steps=3')
  assert second.returncode == 0, second.stderr[-3000:]
  assert 'Resumed from' in second.stderr and 'at step 2' in second.stderr
  assert 'step 3/3' in second.stderr
  model = api.load(str(workdir))
  assert model.step == 3


def test_resumed_run_equals_uninterrupted(tmp_path):
  """2 steps + resume + 1 step gives bitwise the same weights as 3 steps in one go."""
  config = load_config()
  config.train.log_every = 10
  config.train.sample_every = 10
  straight = train.train_and_evaluate(_with_steps(config, 3), str(tmp_path / 'a'))
  train.train_and_evaluate(_with_steps(config, 2), str(tmp_path / 'b'))
  resumed = train.train_and_evaluate(_with_steps(config, 3), str(tmp_path / 'b'))
  assert int(resumed.step) == 3
  assert tree_equal(straight.g_params, resumed.g_params)
  assert tree_equal(straight.d_params, resumed.d_params)

  # The trained workdir also serves the position-head metric (shapes stores θ per object).
  from relate_jax import evaluate
  result = evaluate.position_error(str(tmp_path / 'b'), config)
  size = config.data.image_size
  assert 0.0 <= result['position_error'] <= size * 2**0.5
  assert 'position_error' in (tmp_path / 'b' / 'metrics.jsonl').read_text()


def test_ground_truth_poses_conventions():
  from relate_jax import evaluate
  poses, present = evaluate.ground_truth_poses(
      {'poses': np.array([[[0.1, 0.2], [-2.0, -2.0]]], np.float32)})
  np.testing.assert_array_equal(present, [[True, False]])
  poses, present = evaluate.ground_truth_poses(
      {'positions': np.array([[[0.5, -0.25]]], np.float32)})
  np.testing.assert_allclose(poses, [[[-0.5, 0.25]]])  # θ = -(x, y): affine_grid geometry.
  with pytest.raises(ValueError, match='ground-truth'):
    evaluate.ground_truth_poses({'num_objects': np.zeros(3)})


def _with_steps(config, n):
  c = config.copy_and_resolve_references()
  c.train.num_steps = n
  return c


def test_dry_run_prints_reference_parameter_counts():
  """configs/clevr.py matches the PyTorch reference's parameter counts, no data needed."""
  result = subprocess.run(
      [sys.executable, '-m', 'relate_jax.main', '--config=configs/clevr.py',
       '--workdir=/nonexistent/never-created', '--dry_run'],
      cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS='cpu'), capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'total generator-side parameters: 6,809,926' in result.stdout
  assert 'total discriminator parameters: 17,471,623' in result.stdout
  assert not os.path.exists('/nonexistent/never-created')


def test_missing_dataset_fails_clearly(tmp_path):
  result = run_main(tmp_path / 'clevr', f'--config.data.data_dir={tmp_path / "no_such_dir"}',
                    config='configs/clevr.py')
  assert result.returncode != 0
  assert 'configs/shapes.py' in result.stderr
  assert 'no_such_dir' in result.stderr


def test_validate_rejects_bad_config():
  c = load_config()
  c.model.min_objects = 5
  c.data.pixel_range = 'bad'
  with pytest.raises(ValueError) as e:  # config.ConfigError is a ValueError.
    config_lib.validate(c)
  assert 'min_objects' in str(e.value) and 'pixel_range' in str(e.value)


def test_ema_of_generator_weights_is_used_for_sampling(state):
  config = load_config()
  config.train.ema_decay = 0.5
  fresh = jax.jit(functools.partial(steps.init_state, config))(jax.random.key(0))
  initial = jax.tree.map(np.asarray, fresh.g_params)
  step_fn = steps.compile_train_step(config, steps.make_mesh(jax.devices()[:1]))
  new, _ = step_fn(fresh, real_batch(config))
  expected = jax.tree.map(lambda a, b: 0.5 * a + 0.5 * np.asarray(b), initial, new.g_params)
  for got, want in zip(jax.tree.leaves(new.ema_params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  assert steps.generator_params(new) is new.ema_params
  assert steps.generator_params(state) is state.g_params  # EMA off by default.


def _power_iterations(kernel, u, times):
  from relate_jax.models import layers  # pylint: disable=g-import-not-at-top
  w = layers.torch_matrix(jnp.asarray(kernel))
  for _ in range(times):
    v = w.T @ u
    v = v / jnp.maximum(jnp.linalg.norm(v), 1e-12)
    u = w @ v
    u = u / jnp.maximum(jnp.linalg.norm(u), 1e-12)
  return u, v


@pytest.mark.parametrize('model_name, calls', [('relate_static', (4, 2)),
                                               ('relate_static_order', (3, 1))])
def test_reference_schedule_iterates_spectral_norm_once_per_d_call(config, model_name, calls):
  """train.reference_schedule: D separately per sub-batch, one power iteration each:
  static D update = fake, single, real, penalty (4 calls), G update = fake, single (2);
  ordered: fake, real, penalty (3) and fake (1). The fast form iterates once per phase."""
  c = config.copy_and_resolve_references()
  c.model.name = model_name
  c.train.reference_schedule = True
  state = jax.jit(functools.partial(steps.init_state, c))(jax.random.key(0))
  phases = steps.Phases(c)
  real = jnp.asarray(real_batch(c), jnp.float32) / 127.5 - 1.0
  after_d, _ = jax.jit(phases.discriminator_update)(state, real, jax.random.key(1))
  after_g, _ = jax.jit(phases.generator_update, static_argnums=1)(state, 4, jax.random.key(2))
  kernel = state.d_params['conv2']['kernel']
  u0 = state.spectral['conv2']['u']
  for new, times in zip((after_d, after_g), calls):
    u, v = _power_iterations(kernel, u0, times)
    np.testing.assert_allclose(np.asarray(new.spectral['conv2']['u']), np.asarray(u), atol=1e-5)
    np.testing.assert_allclose(np.asarray(new.spectral['conv2']['v']), np.asarray(v), atol=1e-5)
  fast = c.copy_and_resolve_references()
  fast.train.reference_schedule = False
  fast_d, _ = jax.jit(steps.Phases(fast).discriminator_update)(state, real, jax.random.key(1))
  u, _ = _power_iterations(kernel, u0, 1)
  np.testing.assert_allclose(np.asarray(fast_d.spectral['conv2']['u']), np.asarray(u), atol=1e-5)
