"""Scene editing (relate_jax.editing) and edit recipes (relate_jax.edit), on configs/test.py
at seeded random weights."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from PIL import Image

from relate_jax import api
from relate_jax import editing
from relate_jax import pixels
from relate_jax import steps
from relate_jax.edit import recipe as recipe_lib
from relate_jax.models import generator as generator_lib
from relate_jax.models import layers
from relate_jax.models.placement import place

import configs.test as test_config


@pytest.fixture(scope='module')
def model():
  return api.untrained(test_config.get_config())


@pytest.fixture(scope='module')
def editor(model):
  return editing.Editor(model)


def present_scene(editor, num=2, seed=0):
  """Seeded scenes with every slot present (the test config samples 1-3 objects)."""
  scene = editor.sample(num, seed=seed)
  lat = scene.latents
  poses = jnp.where(lat.present[..., None] > 0, lat.poses,
                    jax.random.uniform(jax.random.key(seed), lat.poses.shape, minval=-0.6,
                                       maxval=0.6))
  return editing.scene(lat.replace(present=jnp.ones_like(lat.present), poses=poses))


def test_removing_an_object_and_adding_it_back_restores_the_image_bitwise(editor):
  scene = present_scene(editor)
  before, _ = editor.render(scene)
  lat = scene.latents
  removed = editor.remove(scene, 1)
  without, _ = editor.render(removed)
  # Random weights render faint images: compare with their own scale.
  assert np.abs(np.asarray(without) - np.asarray(before)).max() > 1e-2 * np.abs(before).max()
  back = editing.add(removed, 1, lat.appearance[:, 1], lat.poses[:, 1])
  after, _ = editor.render(back)
  np.testing.assert_array_equal(np.asarray(after), np.asarray(before))


def reach(config, image_size, scene_mask):
  """Image pixels (B, S, S) that scene-tensor cells `scene_mask` (B, S0, S0) can influence
  through G: G's layers with all-ones kernels applied to the indicator."""
  x = scene_mask[..., None].astype(jnp.float32)
  for f, k, s, p, _ in generator_lib.decoder_layers(config, image_size):
    del f
    conv = layers.ConvTranspose2d(1, k, s, p)
    params = conv.init(jax.random.key(0), x)
    params = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.ones_like(v) if 'kernel' in str(path[-1]) else jnp.zeros_like(v),
        params)
    x = conv.apply(params, x)
  return np.asarray(x[..., 0]) > 0


def test_a_verbatim_move_changes_pixels_only_within_the_old_and_new_windows(editor):
  c = editor.config
  scene = present_scene(editor, seed=1)
  before, aux0 = editor.render(scene)
  moved = editor.move(scene, 0, jnp.asarray([[0.45, -0.3], [-0.5, 0.4]]), snap=False)
  after, aux1 = editor.render(moved)
  theta0, theta1 = np.asarray(aux0['poses']), np.asarray(aux1['poses'])
  # Γ is not re-run: the other objects keep their poses exactly.
  np.testing.assert_array_equal(theta1[:, 1:], theta0[:, 1:])
  np.testing.assert_allclose(theta1[:, 0], [[0.45, -0.3], [-0.5, 0.4]], atol=1e-7)
  # The cells of the scene tensor its window covers before and after (bilinear support).
  s0, win = generator_lib.scene_size(c), generator_lib.window_size(c)
  margin = (s0 - win) // 2
  ones = jnp.pad(jnp.ones((2, win, win, 1)), ((0, 0), (margin,) * 2, (margin,) * 2, (0, 0)))
  cells = [place(ones, aux['scales'][:, 0], aux['poses'][:, 0])[..., 0] > 0
           for aux in (aux0, aux1)]
  footprint = reach(c, editor.image_size, cells[0] | cells[1])
  changed = np.abs(np.asarray(after) - np.asarray(before)).max(-1) > 0
  assert changed.any() and not footprint.all()
  assert not (changed & ~footprint).any(), 'pixels changed outside the footprint'
  # The footprint is not loose: most of it changes.
  assert changed.sum() > 0.5 * footprint.sum()


def fit_repulsive_gamma(config, params, radius, steps_=1000):
  """Γ's weights fitted to a plausibility objective of the kind RELATE's Γ learns: leave
  each θ̂ where it is unless another object is nearer than `radius`, then push them apart."""
  frozen = ml_collections.FrozenConfigDict(config.model)
  corr = editing._Correction(frozen)  # pylint: disable=protected-access
  k = config.model.num_objects

  def loss(gamma, key):
    keys = jax.random.split(key, 3)
    lat = editing.Latents(
        background=jax.random.uniform(keys[0], (128, config.model.bg_dim), minval=-1),
        appearance=jax.random.uniform(keys[1], (128, k, config.model.obj_dim), minval=-1),
        poses=jax.random.uniform(keys[2], (128, k, 2), minval=-0.7, maxval=0.7),
        present=jnp.ones((128, k)), select=jnp.zeros(128, jnp.int32))
    theta = corr.apply({'params': dict(params, interaction=gamma)}, lat)
    d = jnp.sqrt(jnp.sum(jnp.square(theta[:, :, None] - theta[:, None]), -1) + 1e-12)
    d = d + jnp.eye(k) * 9  # No pair with itself.
    overlap = jnp.sum(jax.nn.relu(radius - d) ** 2)
    return overlap / 128 + jnp.mean(jnp.square(theta - lat.poses))

  opt = optax.adam(1e-2)
  gamma = params['interaction']
  state = opt.init(gamma)

  @jax.jit
  def step(gamma, state, key):
    grads = jax.grad(loss)(gamma, key)
    updates, state = opt.update(grads, state)
    return optax.apply_updates(gamma, updates), state

  for i in range(steps_):
    gamma, state = step(gamma, state, jax.random.key(i))
  return dict(params, interaction=gamma)


def test_snap_pins_the_moved_object_and_moves_only_the_ones_it_overlaps(model):
  config = model.config.copy_and_resolve_references()
  config.model.interaction_hidden = 32
  config.model.scale_augment = False  # Poses alone decide overlap.
  base = api.untrained(config, seed=1).params
  radius = 0.5
  ed = editing.Editor(api.Relate(config, fit_repulsive_gamma(config, base, radius)))
  n = 256
  scene = present_scene(ed, num=n, seed=3)
  theta0, _ = ed.poses(scene)
  to = np.random.default_rng(0).uniform(-0.6, 0.6, (n, 2)).astype(np.float32)
  snapped = ed.move(scene, 0, to, snap=True)
  theta1, _ = ed.poses(snapped)
  theta0, theta1 = np.asarray(theta0), np.asarray(theta1)
  np.testing.assert_array_equal(theta1[:, 0], to)  # Pinned exactly.
  # The others are Γ's correction with object 0 a partner at its new pose.
  frozen = ml_collections.FrozenConfigDict(config.model)
  direct = editing._Correction(frozen).apply(  # pylint: disable=protected-access
      {'params': ed.model.params}, snapped.latents)
  np.testing.assert_allclose(theta1[:, 1:], np.asarray(direct)[:, 1:], atol=1e-6)
  moved = np.linalg.norm(theta1[:, 1:] - theta0[:, 1:], axis=-1)
  hat = np.asarray(scene.latents.poses)
  near = np.minimum(np.linalg.norm(hat[:, 1:] - to[:, None], axis=-1),
                    np.linalg.norm(hat[:, 1:] - hat[:, :1], axis=-1))
  far = near > 2 * radius  # Nowhere near the moved object, before or after.
  close = near < 0.5 * radius  # It lands on them or leaves them.
  assert far.sum() >= 15 and close.sum() >= 50
  # Threshold (pose units; the image spans 2): 95 % of the far objects move < 0.05, the
  # overlapped ones 0.12 or more in the median (measured: 0.012 / 0.036 vs 0.16-0.22).
  assert np.percentile(moved[far], 95) < 0.05, np.percentile(moved[far], 95)
  assert np.median(moved[close]) > 0.12, np.median(moved[close])


def test_more_slots_than_training_render_with_one_compile_per_k(model):
  ed = editing.Editor(model)
  k = model.config.model.num_objects
  for slots in (k + 2, k + 4):
    for seed in (0, 1):
      scene = ed.sample(2, seed=seed, slots=slots)
      scene = editing.scene(scene.latents.replace(present=jnp.ones_like(scene.latents.present)))
      images, aux = ed.render(scene)
      assert images.shape == (2, 32, 32, 3) and aux['poses'].shape == (2, slots, 2)
      assert np.isfinite(np.asarray(images)).all()
    # The last slot (beyond training) is drawn: removing it changes the image.
    without, _ = ed.render(ed.remove(scene, slots - 1))
    assert np.abs(np.asarray(without) - np.asarray(images)).max() > 1e-2 * np.abs(images).max()
  assert ed.traces == 2  # One trace per K; seeds and edits reuse it.


RECIPE = {
    'zoom': 2,
    'scenes': {'a': {'seed': 0}, 'crowd': {'seed': 1, 'slots': 5}},
    'entries': [
        {'name': 'parts', 'scene': ['a', 'crowd'], 'show': 'components'},
        {'name': 'gamma', 'scene': 'a', 'show': 'gamma'},
        {'name': 'edits', 'scene': 'a', 'markers': True,
         'ops': [{'op': 'move', 'object': 0, 'to_pixel': [8, 20], 'snap': True},
                 {'op': 'restyle', 'object': 0, 'seed': 3},
                 {'op': 'background', 'seed': 4},
                 {'op': 'add', 'seed': 5, 'to_pixel': [24, 8]},
                 {'op': 'remove', 'object': 0}]},
        {'name': 'slide', 'scene': 'a', 'show': 'interpolate', 'frames': 3,
         'ops': [{'op': 'move', 'object': 0, 'to': [0.3, 0.2]}]},
    ],
}


def read_pngs(out):
  return {f: np.asarray(Image.open(os.path.join(out, f))) for f in sorted(os.listdir(out))
          if f.endswith('.png')}


def test_a_recipe_round_trips_through_its_latents_json(editor, tmp_path):
  first = str(tmp_path / 'first')
  recipe_lib.check(RECIPE)
  recipe_lib.run(editor, RECIPE, first, log=lambda _: None)
  images = read_pngs(first)
  assert sorted(images) == ['edits.png', 'gamma.png', 'parts.png', 'slide.png']
  assert os.path.exists(os.path.join(first, 'slide.gif'))
  # 2 rows of [scene, background, K objects] (K = 5 in the wider row), 2x zoom.
  assert images['parts.png'].shape == (2 * 64 + 2, 7 * 66 - 2, 3)
  assert images['edits.png'].shape == (64, 6 * 66 - 2, 3)
  resolved = recipe_lib.load(os.path.join(first, 'latents.json'))
  assert all('latents' in s for s in resolved['scenes'].values())
  assert 'seed' not in json.dumps(resolved['entries'])
  second = str(tmp_path / 'second')
  recipe_lib.run(editor, resolved, second, log=lambda _: None)
  again = read_pngs(second)
  for name, image in images.items():
    np.testing.assert_array_equal(again[name], image, err_msg=name)


DELETE = object()


def bad(**changes):
  """RECIPE with changes path__to__key=value (DELETE removes the key)."""
  recipe = json.loads(json.dumps(RECIPE))
  for path, value in changes.items():
    *keys, last = path.split('__')
    target = recipe
    for key in keys:
      target = target[int(key) if key.isdigit() else key]
    if value is DELETE:
      del target[last]
    else:
      target[int(last) if last.isdigit() else last] = value
  return recipe


@pytest.mark.parametrize('recipe,message', [
    (bad(entries__2__ops__0__op='teleport'),
     "entries[2] ('edits'): ops[0] (teleport): unknown edit 'teleport'"),
    (bad(entries__2__ops__0__to_pixel=[1, 2, 3]),
     "entries[2] ('edits'): ops[0] (move): \"to_pixel\" must be 2 numbers"),
    (bad(entries__1__scene='nope'), "entries[1] ('gamma'): unknown scene 'nope'"),
    (bad(entries__2__ops__1__object=7),
     "entries[2] ('edits'): ops[1] (restyle) on scene 'a': object 7 out of range: the scene "
     'has 3 slots'),
    (bad(entries__2__ops__1__appearance=[0.5], entries__2__ops__1__seed=DELETE),
     "entries[2] ('edits'): ops[1] (restyle) on scene 'a': \"appearance\" must be 20"),
    (bad(scenes__a={'latents': {'background': [0.0], 'appearance': [[0.0] * 3],
                                'poses': [[0, 0]], 'present': [1]}}),
     'scenes.a: appearance has shape (1, 3), expected (1, 20)'),
])
def test_a_bad_recipe_stops_with_one_message_naming_the_entry(editor, tmp_path, recipe,
                                                              message):
  with pytest.raises(recipe_lib.RecipeError) as e:
    recipe_lib.check(recipe)
    recipe_lib.run(editor, recipe, str(tmp_path), log=lambda _: None)
  assert message in str(e.value), str(e.value)


def test_evaluate_grids_show_components_and_gamma(editor, model, tmp_path):
  paths = editing.write_grids(model, str(tmp_path), num=2)
  k = model.config.model.num_objects
  components = np.asarray(Image.open(paths['components']))
  gamma = np.asarray(Image.open(paths['gamma']))
  assert components.shape == (2 * 34 - 2, (2 + k) * 34 - 2, 3)
  assert gamma.shape == (2 * 34 - 2, 2 * 34 - 2, 3)
  # The first column is the scene itself, as the editor renders it.
  scenes = editor.sample(2, seed=0)
  images, _ = editor.render(scenes)
  np.testing.assert_array_equal(components[:32, :32], pixels.to_uint8(np.asarray(images))[0])
  np.testing.assert_array_equal(gamma[:32, 34:], pixels.to_uint8(np.asarray(images))[0])
  saved = json.load(open(os.path.join(tmp_path, 'latents_00000000.json')))
  assert len(saved) == 2 and len(saved[0]['poses']) == k


def test_video_edits_act_on_the_start_poses_and_the_rollout_reruns():
  import configs.test_video as video_config  # pylint: disable=g-import-not-at-top
  config = video_config.get_config()
  ed = editing.Editor(api.untrained(config))
  scene = present_scene(ed)
  frames = 4
  videos, aux = ed.render(scene, frames=frames)
  to = jnp.asarray([0.3, -0.2])
  moved = ed.move(scene, 1, to, snap=False)
  videos1, aux1 = ed.render(moved, frames=frames)
  start0, start1 = np.asarray(aux['start_poses']), np.asarray(aux1['start_poses'])
  np.testing.assert_array_equal(start1[:, 1], np.broadcast_to(to, (2, 2)))
  np.testing.assert_array_equal(start1[:, [0, 2]], start0[:, [0, 2]])
  # The rollout re-ran from the new θ(0): object 1's later poses follow it, and the clip
  # changed.
  assert videos1.shape == videos.shape == (2, frames, 32, 32, 3)
  path0, path1 = np.asarray(aux['poses'])[:, :, 1], np.asarray(aux1['poses'])[:, :, 1]
  assert np.abs((path1 - path0)[:, -1] - (to - start0[:, 1])).max() < 0.5
  assert np.abs(np.asarray(videos1) - np.asarray(videos)).max() > 0
  parts = ed.components(scene, frames=frames)
  assert parts.shape == (2, 2 + config.model.num_objects, frames, 32, 32, 3)


def test_untrained_has_the_initial_generator_weights_of_training():
  config = test_config.get_config()
  state = jax.jit(functools.partial(steps.init_state, config))(steps.stream_keys(5)['init'])
  jax.tree.map(np.testing.assert_array_equal, api.untrained(config, seed=5).params,
               state.g_params)
