"""The video model (relate_video): rollout, presence, long samples, phases, training."""

import functools
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from relate_jax import api
from relate_jax import config as config_lib
from relate_jax import models
from relate_jax import steps
from relate_jax import train
from relate_jax import video_io
from relate_jax.models import video
from relate_jax.models.discriminator import frames_to_channels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name='test_video'):
  return config_lib.load_config_file(os.path.join(ROOT, 'configs', f'{name}.py'))


def frozen(model_config):
  return ml_collections.FrozenConfigDict(model_config)


def tree_equal(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(
      lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b)))


@pytest.fixture(scope='module')
def config():
  return load_config()


@pytest.fixture(scope='module')
def state(config):
  return jax.jit(functools.partial(steps.init_state, config))(jax.random.key(0))


@pytest.fixture(scope='module')
def strong(state):
  """Generator weights with Γ, e_v and Γ_v scaled up: at the 0.02-std initialisation the
  pairwise effects are at float32 rounding level, too small to show who affects whom."""
  params = dict(state.g_params)
  for name in ('interaction', 'speed', 'dynamics'):
    params[name] = jax.tree.map(lambda x: 25.0 * x, params[name])
  return params


@pytest.fixture(scope='module')
def rollout(config):
  """Jitted (params, latents, model_config) -> aux of a 6-frame sample, without G."""

  @functools.partial(jax.jit, static_argnums=2)
  def run(params, latents, model_config):
    generator = video.VideoGenerator(model_config, image_size=config.data.image_size)
    _, aux = generator.apply({'params': params}, latents, frames=6, steps=6,
                             render_single=False)
    return aux
  return run


def latents_with_absent(config, absent_slot=1):
  """Eval latents (B=2, all slots present), then slot `absent_slot` removed."""
  lat = models.sample_latents(jax.random.key(5), config.model, 2, train=False)
  lat = lat.replace(present=jnp.ones_like(lat.present))
  removed = lat.present.at[:, absent_slot].set(0.0)
  poses = lat.poses.at[:, absent_slot].set(config.model.absent_pose)
  return lat, lat.replace(present=removed, poses=poses)


def test_parameter_counts_equal_the_reference_video_config():
  c = load_config('real_traffic_video')
  s = jax.eval_shape(functools.partial(steps.init_state, c), jax.random.key(0))
  assert models.count_params(s.g_params) == 6_847_010
  assert models.count_params(s.d_params) == 17_514_823
  assert set(s.g_params) == {'background_constant', 'object_constant', 'background_decoder',
                             'object_decoder', 'scale', 'image_decoder', 'interaction',
                             'speed', 'dynamics'}
  assert s.d_params['conv1']['conv']['kernel'].shape == (5, 5, 30, 64)


def test_frames_stack_on_channels_in_the_reference_order():
  clips = np.arange(2 * 3 * 4 * 4 * 3).reshape(2, 3, 4, 4, 3)
  stacked = np.asarray(frames_to_channels(jnp.asarray(clips)))
  # torch.cat([x[:, t] for t in range(T)], 1) in NCHW: channel 3t + c is frame t, colour c.
  for t in range(3):
    np.testing.assert_array_equal(stacked[..., 3 * t:3 * t + 3], clips[:, t])


def test_scan_rollout_equals_a_step_by_step_python_rollout(config, strong, rollout):
  mc = config.model
  lat, _ = latents_with_absent(config)
  params = strong
  aux = rollout(params, lat, frozen(mc))
  dynamics = video.Dynamics(frozen(mc))
  p = mc.past_velocities
  z, present, z0 = lat.appearance, lat.present, lat.background
  mlp = video.layers.Mlp((video.SPEED_HIDDEN, video.SPEED_HIDDEN, 2 * p), final=jnp.tanh)
  theta0 = aux['start_poses']
  v0 = mlp.apply({'params': params['speed']}, jnp.concatenate(
      [z, theta0, jnp.broadcast_to(z0[:, None], z.shape[:2] + z0.shape[-1:])], -1))
  v0 = v0 * present[..., None]
  carry = (theta0, v0[..., :p], v0[..., p:])
  velocities = []
  for _ in range(6):
    carry, v = dynamics.apply({'params': params['dynamics']}, carry, z, present, z0)
    velocities.append(v)
  np.testing.assert_allclose(np.asarray(aux['velocities']),
                             np.asarray(jnp.stack(velocities, 1)), rtol=0, atol=1e-6)
  # Frame i shows θ(0) + D_{s+i} (s = sample_start = 1): the last frame is θ(0) + Σ_{t≤6} v.
  expected = theta0 + jnp.sum(jnp.stack(velocities, 1), 1)
  np.testing.assert_allclose(np.asarray(aux['poses'][:, -1]), np.asarray(expected), atol=1e-5)
  np.testing.assert_allclose(np.asarray(aux['poses'][:, 0]),
                             np.asarray(theta0 + velocities[0]), atol=1e-6)


def test_absent_objects_never_move_nor_change_other_trajectories(config, strong, rollout):
  full, removed = latents_with_absent(config, absent_slot=1)
  aux_removed = rollout(strong, removed, frozen(config.model))
  poses = np.asarray(aux_removed['poses'])
  np.testing.assert_array_equal(poses[:, :, 1], np.float32(config.model.absent_pose))
  # The others' trajectories equal those of a scene where slot 1 is a different absent
  # object: absent objects take no part at all.
  other = removed.replace(appearance=removed.appearance.at[:, 1].multiply(-1.0))
  aux_other = rollout(strong, other, frozen(config.model))
  np.testing.assert_array_equal(np.asarray(aux_other['poses']), poses)
  # ... and present objects do interact: removing slot 1 changes slot 0's trajectory.
  aux_full = rollout(strong, full, frozen(config.model))
  assert np.abs(np.asarray(aux_full['poses'])[:, :, 0] - poses[:, :, 0]).max() > 1e-3


def test_reference_presence_bug_lets_absent_objects_move_and_interact(config, strong, rollout):
  mc = config.model.copy_and_resolve_references()
  mc.reference_presence_bug = True
  _, removed = latents_with_absent(config, absent_slot=1)
  aux = rollout(strong, removed, frozen(mc))
  poses = np.asarray(aux['poses'])
  assert np.abs(poses[:, :, 1] - config.model.absent_pose).max() > 1e-3  # It moves.
  other = removed.replace(appearance=removed.appearance.at[:, 1].multiply(-1.0))
  aux_other = rollout(strong, other, frozen(mc))
  # Its code (never seen by the corrected model) changes the present objects' paths.
  assert np.abs(np.asarray(aux_other['poses'])[:, :, 0] - poses[:, :, 0]).max() > 1e-3


def test_long_sample_compiles_once_and_does_not_grow_with_length(config, state):
  c = config.copy_and_resolve_references()
  c.model.render_chunk = 8
  model = api.Relate(c, state.g_params)
  latents = model.sample_latents(1, seed=0)
  hlo = {}
  for frames in (30, 300):
    lowered = model._render.lower(state.g_params, latents, None, False, frames)  # pylint: disable=protected-access
    hlo[frames] = len(lowered.as_text())
  # The rollout and the chunked rendering are loops: 10x the frames, the same program.
  assert hlo[300] < 1.05 * hlo[30]
  videos, aux = model.render(latents, frames=300)
  assert videos.shape == (1, 300, 32, 32, 3) and aux['poses'].shape == (1, 300, 3, 2)
  assert np.isfinite(np.asarray(videos)).all()
  model.render(latents, frames=300)
  assert model._render._cache_size() == 1  # pylint: disable=protected-access
  # Chunked rendering equals one batch (the first 30 frames).
  plain = api.Relate(config, state.g_params)
  short, _ = plain.render(latents, frames=30)
  np.testing.assert_allclose(np.asarray(videos[:, :30]), np.asarray(short), atol=2e-6)


def test_video_phases_leave_the_other_player_bitwise_unchanged(config, state):
  phases = steps.Phases(config)
  clips = np.random.default_rng(0).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
  new_d, metrics = jax.jit(phases.discriminator_update)(state, phases.real_input(clips),
                                                        jax.random.key(1))
  assert tree_equal(new_d.g_params, state.g_params) and tree_equal(new_d.g_opt, state.g_opt)
  assert not tree_equal(new_d.d_params, state.d_params)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  new_g, metrics = jax.jit(phases.generator_update, static_argnums=1)(state, 2, jax.random.key(2))
  assert tree_equal(new_g.d_params, state.d_params) and tree_equal(new_g.d_opt, state.d_opt)
  assert not tree_equal(new_g.g_params, state.g_params)
  assert np.isfinite(float(metrics['g_total']))


def test_position_target_keeps_the_displacement_attached(config, state):
  """Target = sg(θ_sel(0)) + D_s: its gradient reaches Γ_v through D_s, and reaches Γ only
  through D_s (with Γ_v's weights zeroed, v = 0 and Γ gets no gradient) — REFERENCE §2.4."""
  phases = steps.Phases(config)
  latents = models.sample_latents(jax.random.key(3), config.model, 2, train=True)
  latents = latents.replace(start=jnp.array([1, 1]))  # D_s with s >= 1 depends on Γ_v.
  params = dict(state.g_params, dynamics=jax.tree.map(jnp.zeros_like, state.g_params['dynamics']))
  grads = jax.jit(jax.grad(lambda p: jnp.sum(phases.generate(p, latents)['target'])))(params)
  norm = lambda tree: float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(tree)))
  assert norm(grads['dynamics']) > 0
  assert norm(grads['interaction']) == 0


def test_tiny_video_config_trains_checkpoints_and_resumes(config, tmp_path):
  c = config.copy_and_resolve_references()
  c.train.num_steps = 3
  c.train.checkpoint_every = 2
  first = str(tmp_path / 'run')
  final = train.train_and_evaluate(c, first)
  assert sorted(os.listdir(os.path.join(first, 'checkpoints'))) == ['2', '3']
  assert os.listdir(os.path.join(first, 'samples'))
  # Resume from step 2 in a copy of the workdir: the result equals the uninterrupted run.
  second = str(tmp_path / 'resumed')
  shutil.copytree(first, second)
  shutil.rmtree(os.path.join(second, 'checkpoints', '3'))
  resumed = train.train_and_evaluate(c, second)
  assert int(resumed.step) == 3
  assert tree_equal(jax.device_get(resumed.g_params), jax.device_get(final.g_params))
  assert tree_equal(jax.device_get(resumed.d_params), jax.device_get(final.d_params))
  model = api.load(first)
  videos, _ = model.sample(2, frames=5, batch_size=2)
  assert videos.shape == (2, 5, 32, 32, 3) and videos.dtype == np.uint8


def test_sample_export_writes_mp4_gif_and_the_uint8_videos(config, state, tmp_path):
  import av  # pylint: disable=g-import-not-at-top
  from relate_jax import checkpoint, sample  # pylint: disable=g-import-not-at-top
  workdir, out = str(tmp_path / 'w'), str(tmp_path / 'out')
  os.makedirs(workdir)
  train.write_config(config, workdir)
  mgr = checkpoint.manager(workdir)
  checkpoint.save(mgr, jax.device_get(state), None)
  mgr.close()
  sample.export(workdir, out, num=3, batch_size=2, frames=7, overlay_poses=True)
  with np.load(os.path.join(out, 'videos.npz')) as f:
    videos, poses = f['videos'], f['poses']
  assert videos.shape == (3, 7, 32, 32, 3) and videos.dtype == np.uint8
  assert poses.shape == (3, 7, 3, 2)
  # Same latents through the API: the npz holds the clean frames (no crosses).
  expected, _ = api.load(workdir).sample(3, frames=7, batch_size=3)
  np.testing.assert_array_equal(videos, expected)
  with av.open(os.path.join(out, '000001.mp4')) as container:
    assert container.streams.video[0].codec_context.name == 'h264'
    decoded = np.stack([fr.to_ndarray(format='rgb24') for fr in container.decode(video=0)])
  assert decoded.shape == (7, 32, 32, 3)
  with Image.open(os.path.join(out, '000001.gif')) as gif:  # PIL merges equal frames.
    total = 0
    for i in range(gif.n_frames):
      gif.seek(i)
      total += gif.info['duration']
  assert total == 7 * 100  # 7 frames at 10 fps


def test_pose_crosses_mark_present_objects_inside_the_frame():
  frames = np.zeros((2, 16, 16, 3), np.uint8)
  centres = np.array([[3.2, 4.7], [40.0, 2.0], [10.0, 10.0]])  # (K, 2): x, y
  drawn = video_io.draw_crosses(frames, centres, present=np.array([1, 1, 0]), size=1)
  assert drawn[:, 5, 3].any(axis=-1).all() and drawn[:, 5, 2].any(axis=-1).all()
  assert not drawn[:, 10, 10].any()  # absent object
  assert drawn.any(axis=-1).sum() == 2 * 5  # one 3x3 cross per frame, nothing else
