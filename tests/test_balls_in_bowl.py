"""BallsInBowl: simulator physics, determinism, renderer and TFDS builder."""

import dataclasses

import numpy as np
import pytest

from relate_jax.data import balls_in_bowl as bb

PHYSICS = bb.Physics()
NUM_SEQUENCES, NUM_FRAMES = 16, 30


@pytest.fixture(scope='module')
def sequences():
  return bb.simulate_sequences(7, NUM_SEQUENCES, NUM_FRAMES)


def _flat_bowl_state(p0, v0, p1, v1):
  """A circular bowl (a = b = 0.9) and a two-ball state (1, 2, 2)."""
  bowls = bb.Bowls(np.array([0.3]), np.array([0.9]), np.array([0.9]))
  return (np.array([[p0, p1]], np.float64), np.array([[v0, v1]], np.float64), bowls)


def test_shapes_and_dtypes(sequences):
  assert sequences.positions.shape == (NUM_SEQUENCES, NUM_FRAMES, 2, 2)
  assert sequences.velocities.shape == (NUM_SEQUENCES, NUM_FRAMES, 2, 2)
  assert sequences.positions.dtype == np.float32
  assert sequences.bowls.a.shape == (NUM_SEQUENCES,)
  assert np.all(sequences.bowls.b <= sequences.bowls.a)
  assert np.ptp(sequences.bowls.b / sequences.bowls.a) > 0.1  # Eccentricity varies.
  assert np.ptp(sequences.bowls.angle) > 1.0  # So does the orientation.
  assert np.any(np.abs(np.diff(sequences.positions, axis=1)) > 1e-3)  # The balls move.


def test_balls_stay_inside_the_rim(sequences):
  level = bb.rim_level(sequences.positions, sequences.bowls)
  assert level.max() <= 1.0 + 1e-5
  assert np.abs(sequences.positions).max() < 1.0 - PHYSICS.radius


def test_rim_bounce_reflects_the_velocity():
  # Straight at the rim of a flat bowl: comes back along the same line at the same speed.
  physics = dataclasses.replace(PHYSICS, gravity=0.0, damping=0.0)
  p, v, bowls = _flat_bowl_state((0.0, 0.0), (0.1, 0.0), (-0.5, 0.3), (0.0, 0.0))
  bowls = bowls._replace(angle=np.array([0.0]))
  pos, vel = bb.simulate(p, v, bowls, 14, physics)
  assert pos[0, :, 0, 0].max() == pytest.approx(0.9 - physics.radius, abs=1e-5)
  np.testing.assert_allclose(vel[0, -1, 0], [-0.1, 0.0], atol=1e-6)
  assert pos[0, -1, 0, 0] < pos[0, 10, 0, 0]


def test_no_interpenetration(sequences):
  distance = np.linalg.norm(sequences.positions[:, :, 0] - sequences.positions[:, :, 1], axis=-1)
  assert distance.min() >= 2 * PHYSICS.radius - 1e-4


def test_head_on_collision_exchanges_velocities():
  # Without gravity and friction: ball 0 hits ball 1 at rest at t = 8 and stops there.
  physics = dataclasses.replace(PHYSICS, gravity=0.0, damping=0.0)
  p, v, bowls = _flat_bowl_state((-0.4, 0.0), (0.05, 0.0), (0.2, 0.0), (0.0, 0.0))
  pos, vel = bb.simulate(p, v, bowls, 20, physics)
  distance = np.linalg.norm(pos[0, :, 0] - pos[0, :, 1], axis=-1)
  assert distance.min() >= 2 * physics.radius - 1e-6
  assert distance[8] == pytest.approx(2 * physics.radius, abs=1e-5)  # Contact happened.
  np.testing.assert_allclose(vel[0, -1], [[0.0, 0.0], [0.05, 0.0]], atol=1e-6)
  np.testing.assert_allclose(pos[0, -1, :, 0], [0.0, 0.2 + 0.05 * 11], atol=1e-5)


def test_symmetric_collision_in_a_bowl():
  # Released at rest on opposite sides of a round bowl: they meet at the centre and bounce back.
  physics = dataclasses.replace(PHYSICS, damping=0.0)
  p, v, bowls = _flat_bowl_state((-0.6, 0.0), (0.0, 0.0), (0.6, 0.0), (0.0, 0.0))
  pos, vel = bb.simulate(p, v, bowls, 40, physics)
  np.testing.assert_allclose(pos[0, :, 0], -pos[0, :, 1], atol=1e-6)
  gap = pos[0, :, 1, 0] - pos[0, :, 0, 0]
  assert gap.min() >= 2 * physics.radius - 1e-6
  hit = int(np.argmin(gap))
  assert gap[hit] < 2 * physics.radius + 0.05
  assert vel[0, hit - 1, 0, 0] > 0.0 and vel[0, hit + 1, 0, 0] < 0.0  # Ball 0 turned back.
  energy = bb.energy(pos, vel, bowls, physics)
  np.testing.assert_allclose(energy[0], energy[0, 0], rtol=1e-4)  # Elastic, no friction.


def test_energy_never_increases(sequences):
  energy = bb.energy(sequences.positions, sequences.velocities, sequences.bowls)
  assert np.all(np.diff(energy, axis=1) <= 1e-6 * energy[:, :1])
  assert np.all(energy[:, -1] < energy[:, 0])  # Friction removes energy.


def test_energy_is_conserved_without_friction():
  physics = dataclasses.replace(PHYSICS, damping=0.0)
  seqs = bb.simulate_sequences(3, 8, NUM_FRAMES, physics)
  energy = bb.energy(seqs.positions, seqs.velocities, seqs.bowls, physics)
  # Velocity Verlet's energy wobbles by ~1e-5 and collisions restore the pair's energy.
  np.testing.assert_allclose(energy, np.broadcast_to(energy[:, :1], energy.shape), rtol=1e-4)


def test_deterministic_from_seed(sequences):
  again = bb.simulate_sequences(7, NUM_SEQUENCES, NUM_FRAMES)
  np.testing.assert_array_equal(again.positions, sequences.positions)
  np.testing.assert_array_equal(again.velocities, sequences.velocities)
  np.testing.assert_array_equal(again.bowls.angle, sequences.bowls.angle)
  # Sequence i depends only on (seed, i): a later slice equals the same rows.
  part = bb.simulate_sequences(7, 3, NUM_FRAMES, first=5)
  np.testing.assert_array_equal(part.positions, sequences.positions[5:8])
  other = bb.simulate_sequences(8, NUM_SEQUENCES, NUM_FRAMES)
  assert not np.allclose(other.positions, sequences.positions)


def test_relate_poses_mirror_positions():
  positions = np.array([[0.5, -0.25]])
  np.testing.assert_allclose(bb.relate_poses(positions), [[-0.5, 0.25]])
  np.testing.assert_allclose(bb.relate_poses(positions, 2.0), [[-1.0, 0.5]])


def test_rendered_frames_show_the_balls(sequences):
  size = 128
  frames = bb.render_frames(sequences.positions[:4, :6], sequences.bowls.take(slice(0, 4)), size)
  assert frames.shape == (4, 6, size, size, 3) and frames.dtype == np.uint8
  pixel = np.floor((sequences.positions[:4, :6] + 1.0) / 2.0 * size).astype(int)
  n, t = np.meshgrid(np.arange(4), np.arange(6), indexing='ij')
  red = frames[n, t, pixel[..., 0, 1], pixel[..., 0, 0]].astype(int)  # (4, 6, 3) at ball 0.
  blue = frames[n, t, pixel[..., 1, 1], pixel[..., 1, 0]].astype(int)
  assert np.all(red[..., 0] > red[..., 1] + 60) and np.all(red[..., 0] > red[..., 2] + 60)
  assert np.all(blue[..., 2] > blue[..., 0] + 60) and np.all(blue[..., 2] > blue[..., 1] + 40)
  # The corner is table, not bowl; the bowl interior is brighter than the table.
  np.testing.assert_array_equal(frames[:, :, 0, 0],
                                np.broadcast_to(np.round(bb.TABLE_COLOUR * 255), (4, 6, 3)))
  background = bb.render_backgrounds(sequences.bowls.take(slice(0, 4)), size)
  assert np.all(background[:, size // 2, size // 2].mean(-1) > bb.TABLE_COLOUR.mean() + 0.2)


def test_render_resolution_independent_layout(sequences):
  small = bb.render_frames(sequences.positions[:1, :2], sequences.bowls.take(slice(0, 1)), 32)
  assert small.shape == (1, 2, 32, 32, 3)
  x, y = np.floor((sequences.positions[0, 0, 0] + 1.0) / 2.0 * 32).astype(int)
  r, g, b = small[0, 0, y, x].astype(int)
  assert r > g + 40 and r > b + 40


def test_tiny_builds_through_the_data_pipeline(tmp_path, monkeypatch):
  from relate_jax import data
  from relate_jax.config import base_config
  from relate_jax.data import registry
  from relate_jax.data.builders import balls_in_bowl as builder_lib

  cls = 'relate_jax.data.builders.balls_in_bowl:BallsInBowl'
  monkeypatch.setitem(registry.DATASETS, 'balls_in_bowl_tiny',
                      registry.DatasetEntry(cls, variant='tiny', needs_data_dir=False))
  config = base_config()
  config.data.name = 'balls_in_bowl_tiny'
  config.data.image_size = 32
  config.data.tfds_dir = str(tmp_path)
  config.train.batch_size = 4
  t, k = builder_lib.NUM_FRAMES, 2

  # Static view: every frame of the first TINY_TRAIN sequences is one example.
  assert data.num_examples(config, 'train') == builder_lib.TINY_TRAIN * t
  assert data.num_examples(config, 'test') == builder_lib.TINY_TEST * t
  batch = next(data.make_train_iterator(config, process_index=0, process_count=1))
  assert batch['image'].shape == (4, 32, 32, 3) and batch['image'].dtype == np.uint8
  notes = data.annotations(config, 'train')
  assert notes['positions'].shape == (builder_lib.TINY_TRAIN * t, k, 2)
  assert notes['velocities'].shape == (builder_lib.TINY_TRAIN * t, k, 2)
  assert sorted(zip(notes['sequence'], notes['frame'])) == [
      (n, f) for n in range(builder_lib.TINY_TRAIN) for f in range(t)]
  # Stored frames and ground truth are the simulated and rendered ones.
  truth = bb.simulate_sequences(builder_lib.SPLIT_SEEDS['train'], builder_lib.TINY_TRAIN, t,
                                builder_lib.PHYSICS)
  seq, frame = notes['sequence'], notes['frame']
  np.testing.assert_array_equal(notes['positions'], truth.positions[seq, frame])
  np.testing.assert_array_equal(notes['bowl_axes'][:, 0], truth.bowls.a[seq].astype(np.float32))
  images = next(data.iterate_split(config, 'train', 3))
  rendered = bb.render_frames(truth.positions[seq[:3], frame[:3], None],
                              truth.bowls.take(seq[:3]), 32)
  np.testing.assert_array_equal(images, rendered[:, 0])
  test_notes = data.annotations(config, 'test')
  shared = {tuple(r) for r in test_notes['bowl_axes']} & {tuple(r) for r in notes['bowl_axes']}
  assert not shared  # The test split has its own seed.

  # Video view: one example per sequence, all T frames; clips are cut from them.
  config.data.name = 'balls_in_bowl_video_tiny'
  assert data.num_examples(config, 'train') == builder_lib.TINY_TRAIN
  config.model.clip_length = 15
  clips = next(data.make_train_iterator(config, process_index=0, process_count=1))
  assert clips['video'].shape == (4, 15, 32, 32, 3) and clips['video'].dtype == np.uint8
  notes = data.annotations(config, 'train', frames=t)
  assert notes['positions'].shape == (builder_lib.TINY_TRAIN, t, k, 2)
  np.testing.assert_array_equal(notes['positions'], truth.positions[notes['sequence']])
  video = next(data.iterate_split(config, 'train', 1, frames=t))
  np.testing.assert_array_equal(
      video[0], bb.render_frames(truth.positions[notes['sequence'][:1]],
                                 truth.bowls.take(notes['sequence'][:1]), 32)[0])


@pytest.fixture(scope='module')
def video_config(tmp_path_factory):
  """The 'video_tiny' build (4 train / 2 test sequences of 32 frames) at 32 px."""
  from relate_jax.config import base_config
  config = base_config()
  config.data.name = 'balls_in_bowl_video_tiny'
  config.data.image_size = 32
  config.data.tfds_dir = str(tmp_path_factory.mktemp('tfds'))
  config.model.clip_length = 15
  config.train.batch_size = 2
  return config


def _whole_sequences(config, split):
  """{sequence number: uint8 (32, S, S, 3)} of the stored sequences."""
  from relate_jax import data
  videos = np.concatenate(list(data.iterate_split(config, split, 4, frames=32)))
  return dict(zip(data.annotations(config, split, frames=32)['sequence'], videos))


def _locate(clip, sequences):
  """(sequence, start) whose frames start .. start + T - 1 are `clip`."""
  t = len(clip)
  found = [(n, s) for n, video in sequences.items() for s in range(len(video) - t + 1)
           if np.array_equal(video[s:s + t], clip)]
  assert len(found) == 1, found
  return found[0]


def test_video_training_clips_have_a_random_start_per_example_and_epoch(video_config, tmp_path):
  import grain
  import orbax.checkpoint as ocp
  from relate_jax import data

  def take(it, n):
    return [next(it)['video'] for _ in range(n)]

  sequences = _whole_sequences(video_config, 'train')
  it = data.make_train_iterator(video_config, process_index=0, process_count=1)
  batches = take(it, 8)  # 4 epochs of 4 sequences in batches of 2.
  located = [_locate(clip, sequences) for clip in np.concatenate(batches)]
  for epoch in range(4):  # Every sequence once per epoch, from a start in 0 .. 32 - 15.
    assert sorted(n for n, _ in located[4 * epoch:4 * epoch + 4]) == sorted(sequences)
  starts = [s for _, s in located]
  assert all(0 <= s <= 17 for s in starts) and len(set(starts)) > 4
  by_sequence = {n: {s for m, s in located if m == n} for n in sequences}
  assert any(len(s) > 1 for s in by_sequence.values())  # A new start in a later epoch.
  again = take(data.make_train_iterator(video_config, process_index=0, process_count=1), 8)
  for x, y in zip(batches, again):  # Deterministic in config.seed.
    np.testing.assert_array_equal(x, y)

  # The iterator state in a checkpoint restores the same clips (same starts).
  it = data.make_train_iterator(video_config, process_index=0, process_count=1)
  take(it, 3)
  with ocp.CheckpointManager(tmp_path / 'ckpt') as manager:
    manager.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
    expected = take(it, 3)
    fresh = data.make_train_iterator(video_config, process_index=0, process_count=1)
    manager.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  for x, y in zip(expected, take(fresh, 3)):
    np.testing.assert_array_equal(x, y)


def test_video_evaluation_clips_and_time_shuffled_view(video_config):
  from relate_jax import data
  from relate_jax.data import pipeline
  from relate_jax.data.builders import balls_in_bowl as builder_lib
  sequences = _whole_sequences(video_config, 'test')
  # The first F frames of every test sequence, in stored order, with their ground truth.
  clips = np.concatenate(list(data.iterate_split(video_config, 'test', 4, frames=30)))
  notes = data.annotations(video_config, 'test', frames=30)
  assert clips.shape == (builder_lib.TINY_TEST, 30, 32, 32, 3)
  truth = bb.simulate_sequences(builder_lib.SPLIT_SEEDS['test'], builder_lib.TINY_TEST, 32)
  for clip, n, positions in zip(clips, notes['sequence'], notes['positions']):
    np.testing.assert_array_equal(clip, sequences[n][:30])
    np.testing.assert_array_equal(positions, truth.positions[n, :30])
  # Time-shuffled: the same frames and positions in the order time_permutation(i).
  shuffled = np.concatenate(list(data.iterate_split(video_config, 'test', 4, frames=30,
                                                    shuffle_time=True)))
  shuffled_notes = data.annotations(video_config, 'test', frames=30, shuffle_time=True)
  for i in range(len(clips)):
    order = pipeline.time_permutation(i, 30)
    assert np.any(order != np.arange(30))
    np.testing.assert_array_equal(shuffled[i], clips[i][order])
    np.testing.assert_array_equal(shuffled_notes['positions'][i], notes['positions'][i][order])
  with pytest.raises(ValueError, match='no clip of 33 frames'):
    next(data.iterate_split(video_config, 'test', 4, frames=33))
