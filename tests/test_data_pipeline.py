"""The data pipeline on a tiny 'shapes' build (64 train / 16 test images at 32 px)."""

import hashlib
import os
import subprocess
import sys

import grain
import numpy as np
import pytest
from PIL import Image

from relate_jax import data
from relate_jax.config import base_config
from relate_jax.data import common
from relate_jax.data import registry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def config():
  c = base_config()
  c.data.name = 'shapes_tiny'
  c.data.image_size = 32
  c.train.batch_size = 8
  c.seed = 0
  return c


def _hashes(images):
  return [hashlib.sha1(im.tobytes()).hexdigest() for im in images]


def _take(it, n):
  return [next(it)['image'] for _ in range(n)]


def test_counts_and_example_format(config):
  data.prepare(config)
  data.prepare(config)  # Idempotent: the second call finds the files.
  assert data.num_examples(config, 'train') == 64
  assert data.num_examples(config, 'test') == 16
  batch = next(data.make_train_iterator(config, process_index=0, process_count=1))
  assert set(batch) == {'image'}
  images = batch['image']
  assert images.dtype == np.uint8 and images.shape == (8, 32, 32, 3)
  assert images.min() < 100 and images.max() > 150  # Real pixels, not a constant.


def test_same_seed_same_batches_other_seed_differs(config):
  a = _take(data.make_train_iterator(config, process_index=0, process_count=1), 3)
  b = _take(data.make_train_iterator(config, process_index=0, process_count=1), 3)
  config.seed = 1
  c = _take(data.make_train_iterator(config, process_index=0, process_count=1), 3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_each_epoch_is_a_new_permutation(config):
  it = data.make_train_iterator(config, process_index=0, process_count=1)
  epoch1 = _hashes(np.concatenate(_take(it, 8)))  # 64 examples / batch 8.
  epoch2 = _hashes(np.concatenate(_take(it, 8)))
  assert len(set(epoch1)) == 64 and set(epoch1) == set(epoch2)
  assert epoch1 != epoch2


def test_process_shards_are_disjoint_and_cover_the_data(config):
  seen = []
  for index in range(2):
    it = data.make_train_iterator(config, process_index=index, process_count=2)
    batches = _take(it, 8)  # 32 examples per shard, batches of 8 // 2.
    assert batches[0].shape == (4, 32, 32, 3)
    seen.append(set(_hashes(np.concatenate(batches))))
  assert len(seen[0]) == len(seen[1]) == 32
  assert not seen[0] & seen[1]
  assert len(seen[0] | seen[1]) == 64


def test_iterator_state_round_trips_through_orbax(config, tmp_path):
  import orbax.checkpoint as ocp
  it = data.make_train_iterator(config, process_index=0, process_count=1)
  _take(it, 11)  # Into the second epoch.
  with ocp.CheckpointManager(tmp_path / 'ckpt') as manager:
    manager.save(11, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
    expected = _take(it, 2)
    fresh = data.make_train_iterator(config, process_index=0, process_count=1)
    manager.restore(11, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  for x, y in zip(expected, _take(fresh, 2)):
    np.testing.assert_array_equal(x, y)


def test_iterate_split_is_finite_and_ordered(config):
  first = list(data.iterate_split(config, 'test', 6))
  assert [b.shape[0] for b in first] == [6, 6, 4]
  assert all(b.dtype == np.uint8 and b.shape[1:] == (32, 32, 3) for b in first)
  again = np.concatenate(list(data.iterate_split(config, 'test', 5)))
  np.testing.assert_array_equal(np.concatenate(first), again)
  assert len(list(data.iterate_split(config, 'test', 4, num=5))) == 2


def test_annotations_match_the_renderer(config):
  from relate_jax.data import shapes
  notes = data.annotations(config, 'test')
  assert notes['poses'].shape == (16, shapes.MAX_OBJECTS, 2)
  counts = notes['num_objects']
  assert counts.min() >= shapes.MIN_OBJECTS and counts.max() <= shapes.MAX_OBJECTS
  # Same order as iterate_split: find each stored image among the rendered ones.
  images = np.concatenate(list(data.iterate_split(config, 'test', 16)))
  rendered = {h: i for i, h in enumerate(_hashes(
      [shapes.generate(0, 'test', i, 32)[0] for i in range(16)]))}
  for image, poses in zip(images, notes['poses']):
    index = rendered[_hashes([image])[0]]
    np.testing.assert_allclose(poses, shapes.generate(0, 'test', index, 32)[1]['poses'])


def test_to_model_range_numpy_and_jax():
  import jax.numpy as jnp
  x = np.array([0, 255, 128], np.uint8)
  for arr in (x, jnp.asarray(x)):
    t = data.to_model_range(arr, 'tanh')
    r = data.to_model_range(arr, 'reference')
    assert t.dtype == np.float32
    np.testing.assert_allclose(np.asarray(t), [-1.0, 1.0, 128 / 127.5 - 1], atol=1e-6)
    np.testing.assert_allclose(np.asarray(r), [-0.5, 0.5, 0.5 / 255], atol=1e-6)
  with pytest.raises(ValueError):
    data.to_model_range(x, 'bogus')


def test_reading_does_not_import_tensorflow(config):
  data.prepare(config)
  code = (
      'import sys\n'
      'from relate_jax import data\n'
      'from relate_jax.config import base_config\n'
      'c = base_config(); c.data.name = "shapes_tiny"; c.data.image_size = 32\n'
      'c.train.batch_size = 4\n'
      'next(data.make_train_iterator(c, process_index=0, process_count=1))\n'
      'next(data.iterate_split(c, "test", 4))\n'
      'print("TF" if "tensorflow" in sys.modules else "NO_TF")\n')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       env=os.environ.copy(), timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip().splitlines()[-1] == 'NO_TF'


def test_cli_prints_count_and_writes_grid(tmp_path):
  out_png = tmp_path / 'grid.png'
  proc = subprocess.run(
      [sys.executable, '-m', 'relate_jax.data', '--config=configs/test.py',
       '--config.data.name=shapes_tiny', '--split=test', '--show=6', '--ncol=3',
       f'--out={out_png}'],
      cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert 'num_examples=16' in proc.stdout
  assert 'dtype=uint8' in proc.stdout
  grid = np.asarray(Image.open(out_png))
  assert grid.shape == (2 * 34 + 2, 3 * 34 + 2, 3)  # 2 rows x 3 columns of 32 px, 2 px padding.


def test_make_grid_layout_for_images_and_clips():
  images = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
  grid = common.make_grid(images, ncol=2, pad=1)
  assert grid.shape == (3 * 5 + 1, 2 * 5 + 1, 3)
  np.testing.assert_array_equal(grid[6:10, 6:10], images[3])
  clips = np.zeros((2, 3, 4, 4, 3), np.uint8)
  assert common.make_grid(clips, pad=1).shape == (2 * 5 + 1, 3 * 5 + 1, 3)


def test_missing_data_dir_raises_a_clear_error(config, tmp_path):
  # A dataset that needs raw data: prepare() must refuse before building anything.
  registry.register('needs_raw_test', registry.DatasetEntry(
      'relate_jax.data.builders.shapes:Shapes', variant='tiny', needs_data_dir=True))
  try:
    config.data.name = 'needs_raw_test'
    config.data.image_size = 64
    config.data.data_dir = str(tmp_path / 'nowhere')
    with pytest.raises(data.MissingDataError, match='nowhere'):
      data.prepare(config)
    config.data.data_dir = ''
    with pytest.raises(data.MissingDataError, match='data_dir'):
      data.prepare(config)
  finally:
    del registry.DATASETS['needs_raw_test']


def test_require_manual_dir_names_layout_directory_and_source(tmp_path):
  class Manager:
    manual_dir = tmp_path

  layout = 'CLEVR_v1.0/\n  images/train/*.png'
  with pytest.raises(common.MissingDataError) as err:
    common.require_manual_dir(Manager(), 'CLEVR v1.0', layout, 'https://example.org/clevr',
                              required=('images',))
  message = str(err.value)
  assert 'images/train/*.png' in message and str(tmp_path) in message
  assert 'https://example.org/clevr' in message and 'missing images' in message
  (tmp_path / 'images').mkdir()
  assert common.require_manual_dir(Manager(), 'CLEVR v1.0', layout, 'x', ('images',)) == str(tmp_path)


@pytest.mark.parametrize('name', sorted(registry.DATASETS))
def test_registry_entries_resolve_to_builder_configs_with_their_feature(name, tmp_path):
  cls = registry.builder_class(name)
  entry = registry.entry(name)
  for size in (32, 128):
    builder = cls(config=registry.builder_config(name, size), data_dir=str(tmp_path))
    features = builder.info.features
    stored = 'image' if entry.frame_examples else entry.feature  # One frame per example.
    assert stored in features
    assert features[stored].shape[-3:] == (size, size, 3)
    if entry.frame_examples:
      assert {'video_id', 'frame', 'video_frames'} <= set(features)
    if entry.feature == 'video':  # The builder owns the clip rules the pipeline reads.
      assert cls.CLIP_STRIDE >= 1
      assert callable(cls.training_clips) and callable(cls.evaluation_clips)


def test_clip_arguments_are_refused_for_image_datasets(config):
  with pytest.raises(ValueError, match='video datasets'):
    next(data.iterate_split(config, 'test', 4, frames=30))
  with pytest.raises(ValueError, match='video datasets'):
    data.annotations(config, 'test', shuffle_time=True)


def test_cli_missing_raw_data_exits_with_the_layout(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'relate_jax.data', '--config=configs/clevr.py',
       f'--config.data.data_dir={tmp_path / "nowhere"}', f'--out={tmp_path / "g.png"}'],
      cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
  assert proc.returncode != 0
  assert 'expected layout' in proc.stderr and 'nowhere' in proc.stderr
  assert 'Traceback' not in proc.stderr
