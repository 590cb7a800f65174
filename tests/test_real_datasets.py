"""Builders for the published raw data sets: CLEVR, CLEVR5(-vbg), ShapeStacks, RealTraffic.

Every fixture is a tiny copy of the published layout (real file and folder
names, CLEVR's scene JSON structure) with small images of odd sizes, so the
selection rules, the LANCZOS resize and the error paths run on real code paths.
"""

import json
import os
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from relate_jax import data
from relate_jax.config import base_config
from relate_jax.data import common
from relate_jax.data.builders import clevr, clevr5, real_traffic, shapestacks

SIZE = 32
RNG = np.random.default_rng(0)


def _image(path, width=48, height=32, fmt=None, channels=3):
  """Writes a random image (odd, non-square size; RGBA if channels=4) and returns its path."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = RNG.integers(0, 256, (height, width, channels), np.uint8)
  Image.fromarray(pixels).save(path, format=fmt)
  return path


def _build(cls, config, raw_dir, tfds_dir):
  """Prepares `cls` and returns {split: uint8 (N, ...) in index order}."""
  builder = cls(config=config, data_dir=str(tfds_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(raw_dir)))
  out = {}
  for split in common.SPLITS:
    source = builder.as_data_source(split)
    key = 'video' if builder.builder_config.clip_length else 'image'
    out[split] = np.stack([source[i][key] for i in range(len(source))])
  return out


def _reference(path):
  """The reference loaders' transform: RGB, then PIL LANCZOS straight to S x S."""
  with Image.open(path) as image:
    return np.asarray(image.convert('RGB').resize((SIZE, SIZE), Image.LANCZOS))


def _expected(paths):
  """The reference transform of each file, as hashable bytes."""
  return {_reference(p).tobytes() for p in paths}


def _as_set(images):
  return {np.ascontiguousarray(x).tobytes() for x in images}


def _check_images(images):
  assert images.dtype == np.uint8
  assert images.shape[1:] == (SIZE, SIZE, 3)
  assert images.min() < 40 and images.max() > 215  # Noise images span the range.


# ---------------------------------------------------------------- CLEVR

_CLEVR_COUNTS = {'train': [2, 3, 6, 7, 10, 4], 'val': [3, 9, 5]}  # Objects per scene.


def _clevr_tree(parent):
  """CLEVR_v1.0 under `parent`; returns the relative paths train must keep."""
  root = os.path.join(parent, 'CLEVR_v1.0')
  keep = []
  for split, counts in _CLEVR_COUNTS.items():
    scenes = []
    for i, count in enumerate(counts):
      name = f'CLEVR_{split}_{i:06d}.png'
      _image(os.path.join(root, 'images', split, name), channels=4)
      objects = [{'color': 'gray', 'size': 'large', 'shape': 'cube', 'material': 'rubber',
                  '3d_coords': [0.0, 0.0, 0.7], 'pixel_coords': [240, 160, 10.0],
                  'rotation': 0.0} for _ in range(count)]
      scenes.append({'split': split, 'image_index': i, 'image_filename': name,
                     'objects': objects, 'relationships': {'left': [], 'right': [],
                                                           'front': [], 'behind': []},
                     'directions': {}})
      if 3 <= count <= 6:
        keep.append(f'images/{split}/{name}')
    os.makedirs(os.path.join(root, 'scenes'), exist_ok=True)
    with open(os.path.join(root, 'scenes', f'CLEVR_{split}_scenes.json'), 'w') as f:
      json.dump({'info': {'split': split, 'version': '1.0'}, 'scenes': scenes}, f)
  for i in range(3):
    _image(os.path.join(root, 'images', 'test', f'CLEVR_test_{i:06d}.png'), channels=4)
  return root, keep


def test_clevr_selection_counts_and_zip(tmp_path):
  root, keep = _clevr_tree(tmp_path / 'extracted')
  files = clevr.ClevrFiles.find(str(tmp_path / 'extracted'))
  kept, stats = clevr.select_train(files)
  assert kept == keep == ['images/train/CLEVR_train_000001.png',
                          'images/train/CLEVR_train_000002.png',
                          'images/train/CLEVR_train_000005.png',
                          'images/val/CLEVR_val_000000.png',
                          'images/val/CLEVR_val_000002.png']
  assert stats['train'] == {'images': 6, 'kept': 3, 'too_few': 1, 'too_many': 2,
                            'scenes_without_image': 0}
  assert stats['val'] == {'images': 3, 'kept': 2, 'too_few': 0, 'too_many': 1,
                          'scenes_without_image': 0}
  assert clevr.select_test(files) == [f'images/test/CLEVR_test_{i:06d}.png' for i in range(3)]
  assert clevr.ClevrFiles.find(root).root == root  # data_dir = the CLEVR_v1.0 folder.

  # The published zip, read in place: same selection, same bytes.
  zdir = tmp_path / 'zipped'
  zdir.mkdir()
  with zipfile.ZipFile(zdir / 'CLEVR_v1.0.zip', 'w') as z:
    for d, _, names in os.walk(root):
      for n in names:
        path = os.path.join(d, n)
        z.write(path, os.path.relpath(path, os.path.dirname(root)))
  zfiles = clevr.ClevrFiles.find(str(zdir))
  assert zfiles.zip_path is not None
  assert clevr.select_train(zfiles) == (kept, stats)
  assert zfiles.read_bytes(keep[0]) == open(os.path.join(root, keep[0]), 'rb').read()

  bad = tmp_path / 'bad_zip'
  bad.mkdir()
  with zipfile.ZipFile(bad / 'CLEVR_v1.0.zip', 'w') as z:  # Images only, no scenes/.
    z.write(os.path.join(root, keep[0]), 'CLEVR_v1.0/' + keep[0])
  with pytest.raises(common.MissingDataError, match='scenes/CLEVR_train_scenes.json'):
    clevr.ClevrFiles.find(str(bad))


def test_clevr_builder_from_zip_and_folder(tmp_path):
  root, keep = _clevr_tree(tmp_path / 'raw')
  out = _build(clevr.Clevr, str(SIZE), tmp_path / 'raw', tmp_path / 'tfds')
  for split in common.SPLITS:
    _check_images(out[split])
  assert _as_set(out['train']) == _expected([os.path.join(root, k) for k in keep])
  test_files = sorted(os.listdir(os.path.join(root, 'images', 'test')))
  assert _as_set(out['test']) == _expected(
      [os.path.join(root, 'images', 'test', n) for n in test_files])

  zdir = tmp_path / 'zipped'
  zdir.mkdir()
  with zipfile.ZipFile(zdir / 'CLEVR_v1.0.zip', 'w') as z:
    for d, _, names in os.walk(root):
      for n in names:
        z.write(os.path.join(d, n), os.path.relpath(os.path.join(d, n), tmp_path / 'raw'))
  again = _build(clevr.Clevr, str(SIZE), zdir, tmp_path / 'tfds_zip')
  for split in common.SPLITS:  # Deterministic: same examples in the same order.
    np.testing.assert_array_equal(again[split], out[split])


def test_clevr_missing_and_mismatched(tmp_path):
  with pytest.raises(common.MissingDataError) as e:
    _build(clevr.Clevr, str(SIZE), tmp_path, tmp_path / 'tfds')
  message = str(e.value)
  assert 'images/train' in message and str(tmp_path) in message
  assert 'CLEVR_v1.0.zip' in message and 'cs.stanford.edu/people/jcjohns/clevr' in message

  root, _ = _clevr_tree(tmp_path / 'raw')
  _image(os.path.join(root, 'images', 'val', 'CLEVR_val_000099.png'))  # No scene entry.
  with pytest.raises(ValueError, match='CLEVR_val_000099.png'):
    clevr.select_train(clevr.ClevrFiles.find(str(tmp_path / 'raw')))


# ---------------------------------------------------------------- CLEVR5

@pytest.mark.parametrize('variant,folder', [('', 'CLEVR5'), ('vbg', 'CLEVR5_vbg')])
def test_clevr5_builder(tmp_path, variant, folder):
  root = tmp_path / folder
  train = [_image(str(root / 'train' / f'CLEVR_new_{i:06d}.png'), 50, 33) for i in range(4)]
  test = [_image(str(root / 'test' / f'CLEVR_new_{i:06d}.png'), 50, 33) for i in range(2)]
  config = common.config_name(SIZE, variant)
  out = _build(clevr5.Clevr5, config, tmp_path, tmp_path / 'tfds')  # data_dir = parent.
  _check_images(out['train'])
  assert _as_set(out['train']) == _expected(train)
  assert _as_set(out['test']) == _expected(test)
  again = _build(clevr5.Clevr5, config, root, tmp_path / 'tfds2')  # data_dir = the folder.
  np.testing.assert_array_equal(again['train'], out['train'])


def test_clevr5_errors(tmp_path):
  (tmp_path / 'CLEVR5' / 'train').mkdir(parents=True)
  with pytest.raises(common.MissingDataError) as e:
    _build(clevr5.Clevr5, str(SIZE), tmp_path, tmp_path / 'tfds')
  assert 'missing' in str(e.value) and 'test/*.png' in str(e.value)
  assert str(tmp_path / 'CLEVR5') in str(e.value) and 'clevr5.zip' in str(e.value)

  root = tmp_path / 'ok'
  _image(str(root / 'train' / 'a.png'))
  _image(str(root / 'test' / 'b.png'))
  (root / 'train' / 'broken.png').write_bytes(b'not a png')
  with pytest.raises(ValueError, match='broken.png'):
    _build(clevr5.Clevr5, str(SIZE), root, tmp_path / 'tfds2')


# ---------------------------------------------------------------- ShapeStacks

def _frame(camera):
  return f'rgb-w=0-f=0-l=0-c=original-cam_{camera}-mono-0.png'


_CAMERAS = (1, 2, 9, 10, 11, 12, 13, 16)  # 1-11 kept.


def _shapestacks_tree(root):
  """Scenarios around the height and camera limits; test split from test.txt."""
  scenarios = {
      'env_ccs-easy-h=2-vcom=0-vpsf=0-v=1': 'train',
      'env_blocks-hard-h=5-vcom=3-vpsf=0-v=7': 'train',
      'env_ccs-hard-h=6-vcom=5-vpsf=0-v=120': 'train (too tall)',
      'env_cubes-easy-h=3-vcom=1-vpsf=0-v=4': 'test',
      'env_cubes-easy-h=6-vcom=0-vpsf=0-v=2': 'test (too tall)',
  }
  for name in scenarios:
    for cam in _CAMERAS:
      _image(os.path.join(root, 'recordings', name, _frame(cam)), 40, 40)
    _image(os.path.join(root, 'recordings', name,
                        'depth-w=0-f=0-l=0-c=original-cam_1-mono-0.png'), 40, 40)
  os.makedirs(os.path.join(root, 'splits', 'default'))
  lists = {
      'train': ['env_ccs-easy-h=2-vcom=0-vpsf=0-v=1', 'env_ccs-hard-h=6-vcom=5-vpsf=0-v=120'],
      'eval': ['env_blocks-hard-h=5-vcom=3-vpsf=0-v=7'],
      'test': ['env_cubes-easy-h=3-vcom=1-vpsf=0-v=4', 'env_cubes-easy-h=6-vcom=0-vpsf=0-v=2',
               'env_ccs-easy-h=4-vcom=0-vpsf=0-v=9'],  # The last one is not on disk.
  }
  for split, names in lists.items():
    with open(os.path.join(root, 'splits', 'default', f'{split}.txt'), 'w') as f:
      f.write(''.join(n + '\n' for n in names))


def test_shapestacks_name_parsing():
  assert shapestacks.tower_height('env_ccs-hard-h=6-vcom=5-vpsf=0-v=120') == 6
  assert shapestacks.tower_height('env_other') is None
  assert shapestacks.camera_index(_frame(1)) == 1
  assert shapestacks.camera_index(_frame(16)) == 16
  assert shapestacks.camera_index('rgb-w=0-f=0-l=0-c=original-cam_3-mono-12.png') == 3
  assert shapestacks.camera_index('depth-w=0-f=0-l=0-c=original-cam_1-mono-0.png') is None
  # The reference's character test, for every published camera: same cameras kept.
  for cam in range(1, 17):
    f = _frame(cam)
    assert (f[-13] == '_' or int(f[-12]) < 2) == (shapestacks.camera_index(f) <= 11)


def test_shapestacks_selection_and_builder(tmp_path):
  root = tmp_path / 'shapestacks'
  _shapestacks_tree(str(root))
  (root / 'recordings' / 'README.txt').write_text('not a scenario')
  train, stats = shapestacks.select(str(root), 'train')
  kept = [_frame(c) for c in sorted(_CAMERAS, key=str) if c <= 11]
  assert train == [('env_blocks-hard-h=5-vcom=3-vpsf=0-v=7', kept),
                   ('env_ccs-easy-h=2-vcom=0-vpsf=0-v=1', kept)]
  assert stats == {'scenarios': 2, 'missing': 0, 'no_height': 0, 'too_tall': 1,
                   'no_frames': 0, 'frames': 10, 'other_files': 2, 'high_cameras': 6,
                   'other_entries': 1}
  test, stats = shapestacks.select(str(root), 'test')
  assert test == [('env_cubes-easy-h=3-vcom=1-vpsf=0-v=4', kept)]
  assert (stats['missing'], stats['too_tall'], stats['frames']) == (1, 1, 5)

  out = _build(shapestacks.ShapeStacks, str(SIZE), tmp_path, tmp_path / 'tfds')
  _check_images(out['train'])
  assert _as_set(out['train']) == _expected(
      [str(root / 'recordings' / s / f) for s, frames in train for f in frames])
  assert _as_set(out['test']) == _expected(
      [str(root / 'recordings' / s / f) for s, frames in test for f in frames])


def test_shapestacks_missing_split_file(tmp_path):
  (tmp_path / 'recordings').mkdir()
  with pytest.raises(common.MissingDataError) as e:
    _build(shapestacks.ShapeStacks, str(SIZE), tmp_path, tmp_path / 'tfds')
  message = str(e.value)
  assert os.path.join('splits', 'default', 'test.txt') in message
  assert str(tmp_path) in message and 'shapestacks.robots.ox.ac.uk' in message


# ---------------------------------------------------------------- RealTraffic

_VIDEOS = {'f0548': 33, 'f0549': 8, 'f0550': 34, 'f0551': 12}  # Frames per video.


def _traffic_tree(root):
  for video, n in _VIDEOS.items():
    for i in range(n):  # Unpadded numbers: time order needs a numeric sort.
      _image(os.path.join(root, video, f'frame_{i}.jpeg'), 60, 36, fmt='JPEG')
  (root / 'f0548' / 'Thumbs.db').write_bytes(b'')
  (root / 'f_notes').mkdir()


def _frames(root, video, indices):
  return [str(root / video / f'frame_{i}.jpeg') for i in indices]


def test_real_traffic_selection(tmp_path, monkeypatch):
  _traffic_tree(tmp_path)
  names, stats = real_traffic.select_videos(str(tmp_path), 'train')
  assert names == ['f0548', 'f0549']
  assert stats == {'videos': 2, 'other_split': 2, 'unnumbered': 1, 'over_cap': 0}
  assert real_traffic.select_videos(str(tmp_path), 'test')[0] == ['f0550', 'f0551']
  monkeypatch.setattr(real_traffic, 'MAX_TRAIN_VIDEOS', 1)
  assert real_traffic.select_videos(str(tmp_path), 'train') == (
      ['f0548'], {'videos': 1, 'other_split': 2, 'unnumbered': 1, 'over_cap': 1})
  frames = real_traffic.list_frames(str(tmp_path / 'f0548'))  # Thumbs.db left out.
  assert frames == [f'frame_{i}.jpeg' for i in range(33)]  # Time order, not string order.
  assert real_traffic.num_starts(8, 1) == 5  # Static frames: j < n - 3.
  assert real_traffic.num_starts(34, 10) == 4 and real_traffic.num_starts(30, 10) == 0


def test_real_traffic_clip_rules():
  cls = real_traffic.RealTraffic
  # Training: every start j < n - 3T of every video, one example each.
  np.testing.assert_array_equal(cls.training_clips([34, 8, 31], 10),
                                [[0, 0, 1], [0, 1, 1], [0, 2, 1], [0, 3, 1], [2, 0, 1]])
  assert cls.training_clips([30], 10).shape == (0, 3)
  # Evaluation (T = 2: a clip spans frames j .. j + 2, the next starts 2T = 4 later, and
  # starts obey j < n - 6): start 0 of every video in video order, then the later clips
  # round by round, longest video first.
  lengths = [10, 7, 20, 6, 15]  # Starts < 4, 1, 14, 0, 9.
  np.testing.assert_array_equal(cls.evaluation_clips(lengths, 2), [
      [0, 0], [1, 0], [2, 0], [4, 0],  # Round 0 (video 3 has no clip).
      [2, 4], [4, 4],                   # Round 1: 20 frames, then 15 (10 has j < 4 only).
      [2, 8], [4, 8],
      [2, 12]])
  clips = cls.evaluation_clips([200, 95, 120], 30)  # fvd500 clips: 30 frames, j < n - 90.
  np.testing.assert_array_equal(clips, [[0, 0], [1, 0], [2, 0], [0, 60]])
  for video, start in clips:  # Inside the stored frames (j < n - 3), no overlap.
    assert start + 2 * 29 < [200, 95, 120][video] - 3


def test_real_traffic_stores_each_frame_once(tmp_path):
  raw_dir = tmp_path / 'cars_real_traffic'  # data_dir = the parent folder.
  _traffic_tree(raw_dir)
  builder = real_traffic.RealTraffic(config=str(SIZE), data_dir=str(tmp_path / 'tfds'))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path)))
  # Frames j < n - 3 of every video of the split, each once, with video and frame index.
  for split, videos in (('train', ['f0548', 'f0549']), ('test', ['f0550', 'f0551'])):
    source = builder.as_data_source(split)
    examples = [source[i] for i in range(len(source))]
    keys = sorted((int(e['video_id']), int(e['frame'])) for e in examples)
    assert keys == [(v, j) for v, name in enumerate(videos) for j in range(_VIDEOS[name] - 3)]
    images = np.stack([e['image'] for e in examples])
    _check_images(images)
    for e in examples[:5]:
      name = videos[int(e['video_id'])]
      assert int(e['video_frames']) == _VIDEOS[name]
      np.testing.assert_array_equal(e['image'], _reference(
          _frames(raw_dir, name, [int(e['frame'])])[0]))
  again = _build(real_traffic.RealTraffic, str(SIZE), raw_dir, tmp_path / 'tfds2')
  source = builder.as_data_source('test')  # Deterministic: same frames in the same order.
  np.testing.assert_array_equal(again['test'], np.stack([source[i]['image'] for i in range(40)]))


def test_real_traffic_errors(tmp_path):
  (tmp_path / 'videos').mkdir()
  with pytest.raises(common.MissingDataError) as e:
    _build(real_traffic.RealTraffic, str(SIZE), tmp_path, tmp_path / 'tfds')
  message = str(e.value)
  assert "f...NNN" in message and str(tmp_path / 'cars_real_traffic') in message
  assert 'cars_real_traffic.zip' in message

  _traffic_tree(tmp_path / 'raw')
  (tmp_path / 'raw' / 'f0549' / 'frame_3.jpeg').write_bytes(b'\xff\xd8 truncated')
  with pytest.raises(ValueError, match=r'f0549.*frame_3\.jpeg'):
    _build(real_traffic.RealTraffic, str(SIZE), tmp_path / 'raw', tmp_path / 'tfds2')


def test_real_traffic_cap_spans_videos(tmp_path):
  _traffic_tree(tmp_path)
  config = common.ResolutionConfig(name=f'capped_{SIZE}', image_size=SIZE, num_train=32,
                                   num_test=1)
  out = _build(real_traffic.RealTraffic, config, tmp_path, tmp_path / 'tfds')
  assert len(out['train']) == 32 and len(out['test']) == 1
  assert _as_set(out['train']) == _expected(
      _frames(tmp_path, 'f0548', range(30)) + _frames(tmp_path, 'f0549', range(2)))


# ---------------------------------------------------------------- public path

def _config(name, data_dir, tfds_dir):
  config = base_config()
  config.data.name = name
  config.data.data_dir = str(data_dir)
  config.data.tfds_dir = str(tfds_dir)
  config.data.image_size = SIZE
  config.train.batch_size = 2
  return config


def test_prepare_and_iterate_through_registry(tmp_path):
  root, keep = _clevr_tree(tmp_path / 'raw')
  config = _config('clevr', tmp_path / 'raw', tmp_path / 'tfds')
  data.prepare(config)
  assert data.num_examples(config, 'train') == len(keep)
  batches = list(data.iterate_split(config, 'train', batch_size=2))
  assert [b.shape for b in batches] == [(2, SIZE, SIZE, 3)] * 2 + [(1, SIZE, SIZE, 3)]
  assert _as_set(np.concatenate(batches)) == _expected([os.path.join(root, k) for k in keep])

  config.data.data_dir = str(tmp_path / 'nowhere')
  config.data.tfds_dir = str(tmp_path / 'tfds2')
  with pytest.raises(common.MissingDataError, match='CLEVR_v1.0'):
    data.prepare(config)


def _clip(root, video, frames):
  return np.stack([_reference(p) for p in _frames(root, video, frames)])


def test_real_traffic_clips_are_gathered_from_the_stored_frames(tmp_path, capsys):
  from relate_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  _traffic_tree(tmp_path)
  static = _config('real_traffic', tmp_path, tmp_path / 'tfds')
  batch = next(data.make_train_iterator(static, process_index=0, process_count=1))
  assert batch['image'].shape == (2, SIZE, SIZE, 3) and batch['image'].dtype == np.uint8
  video = _config('real_traffic_video', tmp_path, tmp_path / 'tfds')
  assert data.builder(video).data_dir == data.builder(static).data_dir  # One prepared copy.

  # Training: T = model.clip_length; every clip (j, j+2, ..., j+2(T-1)), j < n - 3T, of
  # f0548 (33 frames; f0549 has 8, too few): 21 clips, 10 batches of 2 per epoch.
  video.model.clip_length = 4
  it = data.make_train_iterator(video, process_index=0, process_count=1)
  seen = np.concatenate([next(it)['video'] for _ in range(10)])
  assert seen.shape == (20, 4, SIZE, SIZE, 3) and seen.dtype == np.uint8
  expected = {_clip(tmp_path, 'f0548', range(j, j + 8, 2)).tobytes() for j in range(21)}
  assert len(_as_set(seen)) == 20 and _as_set(seen) <= expected
  video.model.clip_length = 12  # 33 - 36 < 0: no clip.
  with pytest.raises(ValueError, match='no clip of 12 frames'):
    data.make_train_iterator(video, process_index=0, process_count=1)

  # Evaluation clips of any length: test f0550 (34 frames) has starts 0, 8, 16 < 34 - 12;
  # f0551 (12 frames) none.
  clips = np.concatenate(list(data.iterate_split(video, 'test', 2, frames=4)))
  notes = data.annotations(video, 'test', frames=4)
  np.testing.assert_array_equal(notes['frame'], [[0, 2, 4, 6], [8, 10, 12, 14],
                                                 [16, 18, 20, 22]])
  assert np.all(notes['video_id'] == 0) and np.all(notes['video_frames'] == 34)
  for clip, frames in zip(clips, notes['frame']):
    np.testing.assert_array_equal(clip, _clip(tmp_path, 'f0550', frames))
  assert len(np.concatenate(list(data.iterate_split(video, 'test', 2, 2, frames=4)))) == 2
  ten = next(data.iterate_split(video, 'test', 4, frames=10))  # The default T of training.
  np.testing.assert_array_equal(ten, _clip(tmp_path, 'f0550', range(0, 20, 2))[None])

  # Time-shuffled view (FVD baseline): each clip's frames in time_permutation(i) order.
  plain = np.concatenate(list(data.iterate_split(video, 'train', 8, frames=4)))
  shuffled = np.concatenate(list(data.iterate_split(video, 'train', 8, frames=4,
                                                    shuffle_time=True)))
  orders = [pipeline.time_permutation(i, 4) for i in range(len(plain))]
  for i, order in enumerate(orders):
    np.testing.assert_array_equal(shuffled[i], plain[i][order])
  assert any(np.any(order != np.arange(4)) for order in orders)
  shuffled_notes = data.annotations(video, 'train', frames=4, shuffle_time=True)
  np.testing.assert_array_equal(shuffled_notes['frame'][0], 2 * orders[0])

  # The (video, frame) -> record index is cached beside the prepared files and reused.
  assert os.path.exists(os.path.join(data.builder(video).data_dir, 'frame_index_train.npz'))
  pipeline._VIDEOS.clear()  # A new process.
  capsys.readouterr()
  next(data.iterate_split(video, 'train', 2, frames=4))
  assert 'Indexing' not in capsys.readouterr().err


def test_capped_builds_give_only_clips_whose_frames_are_stored():
  from relate_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  # A train cap of 22 frames: f0548 (33 frames) keeps frames 0-19, f0549 (8) frames 0-1.
  index = np.array([(0, j, 33) for j in range(20)] + [(1, j, 8) for j in range(2)])
  videos = pipeline._FrameVideos(None, index)
  assert not videos.complete
  np.testing.assert_array_equal(videos.lengths, [33, 8])
  config = _config('real_traffic_video', '', '')
  rows = real_traffic.RealTraffic.training_clips(videos.lengths, 4)
  assert len(rows) == 21  # The rule alone: j < 33 - 12.
  kept = pipeline._stored_clips(config, 'train', videos, rows, 4)
  np.testing.assert_array_equal(kept[:, 1], range(14))  # Frames j .. j + 6 <= 19.
  assert pipeline._FrameVideos(None, np.array([(0, j, 10) for j in range(7)])).complete
