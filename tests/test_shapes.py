"""The procedural 'shapes' scenes: determinism, spacing, ground truth, pixels."""

import dataclasses

import numpy as np
import pytest

from relate_jax.data import shapes


def _scenes(n, split='train'):
  return [shapes.sample_scene(shapes.scene_rng(0, split, i)) for i in range(n)]


def test_same_seed_same_image_and_different_index_differs():
  a, notes_a = shapes.generate(0, 'train', 7, 32)
  b, notes_b = shapes.generate(0, 'train', 7, 32)
  c, _ = shapes.generate(0, 'train', 8, 32)
  d, _ = shapes.generate(0, 'test', 7, 32)
  np.testing.assert_array_equal(a, b)
  for k in notes_a:
    np.testing.assert_array_equal(notes_a[k], notes_b[k])
  assert not np.array_equal(a, c) and not np.array_equal(a, d)
  assert a.dtype == np.uint8 and a.shape == (32, 32, 3)


def test_scene_does_not_depend_on_resolution():
  _, small = shapes.generate(0, 'train', 3, 32)
  image, large = shapes.generate(0, 'train', 3, 64)
  assert image.shape == (64, 64, 3)
  for k in small:
    np.testing.assert_array_equal(small[k], large[k])


def test_footprints_never_overlap_and_counts_in_range():
  counts = []
  for scene in _scenes(400):
    n = scene.num_objects
    counts.append(n)
    foot = scene.footprints()
    xz = scene.positions[:, [0, 2]]
    dist = np.hypot(*(xz[:, None] - xz[None]).transpose(2, 0, 1))
    need = foot[:, None] + foot[None] + shapes.SPACING
    off_diagonal = ~np.eye(n, dtype=bool)
    assert np.all(dist[off_diagonal] >= need[off_diagonal] - 1e-9)
    # Drawn far to near.
    assert np.all(np.diff(scene.positions[:, 2]) >= 0)
  counts = np.array(counts)
  assert counts.min() == shapes.MIN_OBJECTS and counts.max() == shapes.MAX_OBJECTS


def test_annotations_padding_and_pose_range():
  for scene in _scenes(50):
    notes = shapes.annotations(scene)
    n = int(notes['num_objects'])
    assert n == scene.num_objects
    assert notes['poses'].shape == (shapes.MAX_OBJECTS, 2)
    assert np.all(np.abs(notes['poses'][:n]) < 1.0)
    assert np.all(notes['poses'][n:] == shapes.ABSENT_POSE)
    assert np.all(notes['shapes'][:n] >= 0) and np.all(notes['shapes'][n:] == -1)
    assert np.all(notes['sizes'][:n] > 0) and np.all(notes['sizes'][n:] == 0)


@pytest.mark.parametrize('index', range(6))
def test_pose_points_at_the_nearest_object(index):
  """The pixel at −θ of the front object shows that object, not the ground."""
  size = 64
  scene = shapes.sample_scene(shapes.scene_rng(0, 'train', index))
  empty = dataclasses.replace(scene, shapes=scene.shapes[:0], positions=scene.positions[:0],
                              radii=scene.radii[:0], colors=scene.colors[:0],
                              shiny=scene.shiny[:0], yaws=scene.yaws[:0])
  full, ground = shapes.render(scene, size), shapes.render(empty, size)
  pose = shapes.annotations(scene)['poses'][scene.num_objects - 1]
  col, row = ((-pose + 1) / 2 * size).astype(int)
  diff = np.abs(full[row, col].astype(int) - ground[row, col].astype(int)).sum()
  # Colour of the object differs from the ground there; far from all objects nothing changed
  # except for shadows.
  assert diff > 30, (pose, full[row, col], ground[row, col])
  assert np.mean(np.abs(full.astype(int) - ground.astype(int)).sum(-1) > 30) < 0.5
