"""Properties of the RELATE models on the tiny 32 px test config, and exact reference
parameter counts at the full-size configs (shape-only initialisation)."""

import functools
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from relate_jax.models import (Discriminator, RelateGenerator, compose, count_params,
                               param_table, sample_latents)
from relate_jax.models.interaction import Interaction, StackChain

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs'


def _load_config(name: str) -> ml_collections.ConfigDict:
  spec = importlib.util.spec_from_file_location(f'configs_{name}', CONFIGS / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _model_config(config_name='test', **overrides) -> ml_collections.FrozenConfigDict:
  config = _load_config(config_name)
  for key, value in overrides.items():
    setattr(config.model, key, value)
  return ml_collections.FrozenConfigDict(config.model)


def _generator(model_config, image_size=32):
  return RelateGenerator(model_config, image_size=image_size)


def _jit_apply(generator):
  """Jitted render: (params, latents, poses=None, render_single=True) → (images, aux,
  intermediates)."""

  @functools.partial(jax.jit, static_argnames=('render_single',))
  def render(params, latents, poses=None, render_single=True):
    (images, aux), state = generator.apply(params, latents, poses=poses,
                                           render_single=render_single,
                                           mutable=['intermediates'])
    return images, aux, state['intermediates']

  return render


# Latents for a (hashable) FrozenConfigDict, batch size and mode, compiled once per setting.
_sample = jax.jit(sample_latents, static_argnums=(1, 2, 3))


@pytest.fixture(scope='module')
def tiny():
  """The test config's generator, its parameters and a jitted renderer."""
  mc = _model_config(num_objects=4, min_objects=2)
  generator = _generator(mc)
  latents = _sample(jax.random.key(1), mc, 3, train=True)
  params = jax.jit(generator.init)(jax.random.key(0), latents)
  render = _jit_apply(generator)
  return mc, generator, params, render


@pytest.fixture(scope='module')
def unclipped():
  """Renderer of the test generator with hide_absent=True and clip_background=False."""
  return _jit_apply(_generator(_model_config(hide_absent=True, clip_background=False,
                                             num_objects=4, min_objects=2)))


def _rel_diff(a, b) -> float:
  """max |a − b| relative to max |b| (images at the 0.02 init are ~1e-5 in size)."""
  a, b = np.asarray(a), np.asarray(b)
  return float(np.abs(a - b).max() / np.abs(b).max())


def _permute_slots(latents, perm):
  inverse = np.argsort(perm)
  return latents.replace(appearance=latents.appearance[:, perm], poses=latents.poses[:, perm],
                         present=latents.present[:, perm],
                         select=jnp.asarray(inverse)[latents.select].astype(jnp.int32))


def test_latent_prior():
  mc = _model_config(num_objects=5, min_objects=2)
  lat = _sample(jax.random.key(3), mc, 512, train=True)
  counts = np.asarray(lat.present.sum(1))
  assert set(counts.tolist()) == {2, 3, 4, 5}
  present = np.asarray(lat.present) > 0
  assert present[np.arange(512), np.asarray(lat.select)].all()
  assert np.all(np.asarray(lat.poses)[~present] == mc.absent_pose)
  assert np.all(np.abs(np.asarray(lat.poses)[present]) <= mc.pose_range)
  # Removed slots are uniform over positions, not always the last ones.
  assert (~present).sum(0).min() > 40
  assert np.abs(np.asarray(lat.background)).max() > 0.9
  evaluation = _sample(jax.random.key(3), mc, 64, train=False)
  assert np.all(np.asarray(evaluation.present) == 1)
  assert np.abs(np.asarray(evaluation.background)).max() <= mc.eval_bg_range


def test_interaction_is_permutation_equivariant_and_ignores_absent_objects():
  mc = _model_config(num_objects=4)
  gamma = Interaction(mc)
  lat = _sample(jax.random.key(4), mc, 6, train=False)
  lat = lat.replace(present=lat.present.at[:, 3].set(0.0))
  args = lambda l: (l.appearance, l.poses, l.present, l.background)
  params = jax.jit(gamma.init)(jax.random.key(0), *args(lat))
  # Larger weights than the 0.02 init so that the interaction terms are far above rounding.
  params = jax.tree.map(lambda p: p * 30.0, params)
  apply = jax.jit(gamma.apply)
  theta = np.asarray(apply(params, *args(lat)))

  perm = np.array([2, 0, 3, 1])
  permuted = np.asarray(apply(params, *args(_permute_slots(lat, perm))))
  np.testing.assert_allclose(permuted, theta[:, perm], atol=1e-6)

  # Slot 3 is absent: its code and pose change nothing, and it stays parked.
  moved = lat.replace(appearance=lat.appearance.at[:, 3].set(0.9),
                      poses=lat.poses.at[:, 3].set(0.3))
  theta_moved = np.asarray(apply(params, *args(moved)))
  np.testing.assert_array_equal(theta_moved[:, :3], theta[:, :3])
  assert np.all(theta_moved[:, 3] == mc.absent_pose)
  # A present neighbour does change the others (the check above is not vacuous).
  present_moved = moved.replace(present=moved.present.at[:, 3].set(1.0))
  theta_present = np.asarray(apply(params, *args(present_moved)))
  assert np.abs(theta_present[:, :3] - theta[:, :3]).max() > 1e-3
  # f's messages made constant c: h_k = c·(number of present partners), never counting the
  # object itself. A lone object then gets the same θ as with c = 0.
  def constant_messages(value):
    last = params['params']['interaction']['layers_2']
    return {'params': {**params['params'], 'interaction': {
        **params['params']['interaction'],
        'layers_2': {'kernel': jnp.zeros_like(last['kernel']),
                     'bias': jnp.full_like(last['bias'], value)}}}}
  alone = lat.replace(present=jnp.zeros_like(lat.present).at[:, 0].set(1.0))
  theta_c = np.asarray(apply(constant_messages(3.0), *args(alone)))
  theta_0 = np.asarray(apply(constant_messages(0.0), *args(alone)))
  np.testing.assert_array_equal(theta_c, theta_0)
  pair = alone.replace(present=alone.present.at[:, 1].set(1.0))
  assert np.abs(np.asarray(apply(constant_messages(3.0), *args(pair)))[:, 0] -
                np.asarray(apply(constant_messages(0.0), *args(pair)))[:, 0]).max() > 1e-3
  # Residual: Γ corrects θ̂ by at most xy_mod.
  present = np.asarray(lat.present) > 0
  assert np.abs(theta - np.asarray(lat.poses))[present].max() <= mc.xy_mod + 1e-6


def test_composite_does_not_depend_on_slot_order(tiny):
  mc, _, params, render = tiny
  lat = _sample(jax.random.key(5), mc, 3, train=True)
  images, aux, _ = render(params, lat)
  perm = np.array([3, 1, 0, 2])
  images_p, aux_p, _ = render(params, _permute_slots(lat, perm))
  assert _rel_diff(images_p, images) < 1e-4
  assert _rel_diff(aux_p['single'], aux['single']) < 1e-4
  np.testing.assert_allclose(np.asarray(aux_p['poses']), np.asarray(aux['poses'])[:, perm],
                             atol=1e-6)
  assert images.shape == (3, 32, 32, 3) and aux['single'].shape == (3, 32, 32, 3)
  assert aux['scales'].shape == (3, 4)
  # The single-object render differs from the full scene.
  assert _rel_diff(aux['single'], images) > 1e-2


def test_same_key_same_sample(tiny):
  mc, _, params, render = tiny
  a = _sample(jax.random.key(7), mc, 3, train=True)
  b = _sample(jax.random.key(7), mc, 3, train=True)
  c = _sample(jax.random.key(8), mc, 3, train=True)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  np.testing.assert_array_equal(np.asarray(render(params, a)[0]),
                                np.asarray(render(params, b)[0]))
  assert _rel_diff(render(params, c)[0], render(params, a)[0]) > 1e-2


def test_poses_override_skips_interaction(tiny):
  mc, _, params, render = tiny
  lat = _sample(jax.random.key(9), mc, 3, train=True)
  poses = jnp.full((3, 4, 2), 0.1)
  _, aux, _ = render(params, lat, poses=poses)
  np.testing.assert_array_equal(np.asarray(aux['poses']), np.asarray(poses))
  _, aux, _ = render(params, lat)
  assert np.abs(np.asarray(aux['poses']) - 0.1).max() > 1e-3


def test_compose_max_sum_and_background_clipping():
  rng = np.random.default_rng(0)
  canvases = np.zeros((1, 2, 4, 4, 1), np.float32)
  canvases[0, 0, :2, :2] = rng.normal(size=(2, 2, 1))
  canvases[0, 1, 1:3, 1:3] = rng.normal(size=(2, 2, 1))
  background = rng.normal(size=(1, 4, 4, 1)).astype(np.float32)
  summed = np.asarray(compose(canvases, background, 'sum'))
  np.testing.assert_allclose(summed, canvases.sum(1) + background, atol=1e-6)
  maxed = np.asarray(compose(canvases, background, 'max'))
  np.testing.assert_array_equal(maxed, np.maximum(canvases.max(1), background))
  assert maxed.min() >= 0.0  # zero canvases clip the background (reference)
  assert np.abs(summed - maxed).max() > 1e-3
  visible = np.abs(canvases) > 0
  unclipped = np.asarray(compose(canvases, background, 'max', visible))
  outside = ~visible.any(1)
  np.testing.assert_array_equal(unclipped[outside], background[outside])
  assert unclipped.min() < 0.0


def test_pooling_and_interaction_switches_change_the_render(tiny):
  mc, _, params, render = tiny
  lat = _sample(jax.random.key(10), mc, 3, train=True)
  images, aux, _ = render(params, lat)
  overrides = dict(num_objects=4, min_objects=2)
  summed, _, _ = _jit_apply(_generator(_model_config(pooling='sum', **overrides)))(params, lat)
  assert _rel_diff(summed, images) > 1e-2
  # Without Γ the final poses are the initial ones (and Γ does move them when on).
  _, aux_off, _ = _jit_apply(_generator(_model_config(use_interaction=False, **overrides)))(
      params, lat, render_single=False)
  np.testing.assert_array_equal(np.asarray(aux_off['poses']), np.asarray(lat.poses))
  assert np.abs(np.asarray(aux['poses']) - np.asarray(lat.poses)).max() > 1e-5
  assert 'single' not in aux_off


def test_absent_slots_end_parked_and_hidden(tiny, unclipped):
  mc, _, params, render = tiny
  lat = _sample(jax.random.key(11), mc, 3, train=True)
  lat = lat.replace(present=lat.present.at[:, 3].set(0.0),
                    poses=lat.poses.at[:, 3].set(mc.absent_pose),
                    select=jnp.zeros(3, jnp.int32))
  _, aux, _ = render(params, lat)
  assert np.all(np.asarray(aux['poses'])[:, 3] == mc.absent_pose)
  # Even when an absent slot is placed in view (poses override), hide_absent keeps its
  # canvas out of the scene; without hide_absent it shows (reference behaviour).
  in_view = aux['poses'].at[:, 3].set(0.0)
  recoloured = lat.replace(appearance=lat.appearance.at[:, 3].set(-1.0))
  a, _, _ = unclipped(params, lat, poses=in_view)
  b, _, _ = unclipped(params, recoloured, poses=in_view)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  a, _, _ = render(params, lat, poses=in_view)
  b, _, _ = render(params, recoloured, poses=in_view)
  assert _rel_diff(a, b) > 1e-2


def test_background_clipping_switch(tiny, unclipped):
  """clip_background=True: W = max(objects, W_0, 0) away from objects (reference);
  False: W = W_0 there, negative values kept."""
  _, _, params, render = tiny
  lat = _sample(jax.random.key(9), tiny[0], 3, train=True)
  far = jnp.full((3, 4, 2), -2.0)  # every window parked outside the scene (s ≈ 1 at init)
  _, _, inter = render(params, lat, poses=far)
  scene, background = np.asarray(inter['scene'][0]), np.asarray(inter['background'][0])
  assert background.min() < 0.0
  np.testing.assert_array_equal(scene, np.maximum(background, 0.0))
  _, _, inter = unclipped(params, lat, poses=far)
  np.testing.assert_array_equal(np.asarray(inter['scene'][0]),
                                np.asarray(inter['background'][0]))


def test_fixed_objects_use_constant_style_and_unit_scale(tiny):
  """Balls-in-Bowl setting: one T_f per slot, appearance codes ignored, s = 1."""
  _, _, params, _ = tiny
  mc = _model_config(fixed_objects=True, pooling='sum', num_objects=4, min_objects=2)
  # The shared constant's parameters, with one distinct T_f per slot.
  t_f = params['params']['object_constant']
  per_slot = t_f + 0.05 * jax.random.normal(jax.random.key(2), (4,) + t_f.shape[1:])
  params = {'params': {**params['params'], 'object_constant': per_slot}}
  lat = _sample(jax.random.key(14), mc, 2, train=False)
  both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), lat,
                      lat.replace(appearance=-lat.appearance))
  images, aux = jax.jit(functools.partial(_generator(mc).apply, render_single=False))(
      params, both)
  np.testing.assert_array_equal(np.asarray(aux['scales']), 1.0)
  np.testing.assert_array_equal(np.asarray(images[:2]), np.asarray(images[2:]))
  # The per-slot constants matter: swapping two slots' poses changes the image.
  swapped = both.replace(poses=both.poses[:, jnp.array([1, 0, 2, 3])])
  images_s, _ = jax.jit(functools.partial(_generator(mc).apply, render_single=False))(
      params, swapped)
  assert _rel_diff(images_s, images) > 1e-2


def test_discriminator_outputs_and_spectral_updates():
  mc = _model_config()
  disc = Discriminator(mc)
  images = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1, maxval=1)

  @jax.jit
  def run(key, x):
    variables = disc.init(key, x, update_stats=False)
    eval_out, eval_state = disc.apply(variables, x, update_stats=False, mutable=['spectral'])
    train_out, train_state = disc.apply(variables, x, update_stats=True, mutable=['spectral'])
    return variables, eval_out, eval_state, train_out, train_state

  variables, out, state, train_out, train_state = run(jax.random.key(1), images)
  assert out['logit'].shape == (2,) and out['position'].shape == (2, 2)
  assert out['style'].shape == (2, 2)  # SN convs 2 and 3 at 32 px
  assert np.abs(np.asarray(train_out['position'])).max() < 1.0
  # Eval mode: the stored (u, v) are used and left unchanged.
  for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(variables['spectral'])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  state = train_state
  for path, new in jax.tree_util.tree_leaves_with_path(state['spectral']):
    old = variables['spectral']
    for p in path:
      old = old[p.key]
    if new.size > 1:  # an IN gain's v is a (1,) unit vector, ±1 before and after
      assert np.abs(np.asarray(new) - np.asarray(old)).max() > 1e-4, path
    np.testing.assert_allclose(np.linalg.norm(np.asarray(new)), 1.0, rtol=1e-5)


def _shape_init(generator, disc, model_config, image_size):
  latents = jax.eval_shape(lambda: _sample(jax.random.key(0), model_config, 2, True))
  g = jax.eval_shape(generator.init, jax.random.key(0), latents)
  d = jax.eval_shape(lambda: disc.init(jax.random.key(0), jnp.zeros(
      (2, image_size, image_size, 3)), update_stats=False))
  return g, d


def test_parameter_counts_match_reference_clevr():
  mc = _model_config('clevr')
  g, d = _shape_init(_generator(mc, 128), Discriminator(mc), mc, 128)
  assert count_params(g['params']) == 6_809_926
  assert count_params(d['params']) == 17_471_623
  assert 'spectral' not in g
  assert d['spectral']['conv5']['v'].shape == (12_800,)
  assert d['spectral']['inorm4']['v'].shape == (1,)
  table = param_table(g['params'])
  assert 'interaction' in table and '6,809,926' in table


def _torch_count(shapes):
  return sum(int(np.prod(s)) for s in shapes)


def test_parameter_counts_match_reference_clevr_256():
  """clevr-256 (upsample) state-dict shapes from REFERENCE §3.2."""
  mc = _model_config('clevr', upsample=True)
  g, d = _shape_init(_generator(mc, 256), Discriminator(mc), mc, 256)
  clevr_128_g, clevr_128_d = 6_809_926, 17_471_623
  delta_g = (_torch_count([(1, 256, 32, 32)]) - _torch_count([(1, 256, 16, 16)])  # zbg
             + _torch_count([(512, 256, 4, 4)]) - _torch_count([(512, 256, 3, 3)])  # obj deconv2
             - _torch_count([(256, 128, 4, 4), (128, 64, 4, 4), (64, 64, 3, 3), (64, 64, 4, 4),
                             (64, 3, 3, 3), (128,), (64,), (64,), (64,), (3,)])
             + _torch_count([(256, 128, 5, 5), (128, 64, 5, 5), (64, 64, 4, 4), (64, 64, 4, 4),
                             (64, 64, 4, 4), (64, 3, 3, 3), (128,), (64,), (64,), (64,), (64,),
                             (3,)]))
  delta_d = _torch_count([(1024, 1024, 5, 5), (1024,), (1024,), (1024,)])  # conv6, inorm5
  assert count_params(g['params']) == clevr_128_g + delta_g
  assert count_params(d['params']) == clevr_128_d + delta_d
  assert d['spectral']['conv6']['v'].shape == (25_600,)


def test_parameter_counts_match_reference_shapestacks():
  """relate_static_order at the ShapeStacks setting (REFERENCE §3.2: Nb 5, H' 4, K 5)."""
  mc = _model_config('clevr', name='relate_static_order', bg_dim=5, obj_size=4,
                     num_objects=5, min_objects=2)
  g, _ = _shape_init(_generator(mc, 128), Discriminator(mc), mc, 128)
  want = (6_809_926
          - _torch_count([(1, 512, 6, 6)]) + _torch_count([(1, 512, 4, 4)])  # zfg
          + _torch_count([(512, 4), (1024, 4), (512, 4)])  # bg AdaIN inputs 1 → 5
          + _torch_count([(32, 4)])  # scale input 23 → 27
          - _torch_count([(32, 48), (32,), (32, 32), (32,), (32, 32), (32,),  # no Γ
                          (32, 57), (32,), (32, 32), (32,), (2, 32), (2,)])
          + _torch_count([(128, 27), (128,), (64, 128), (64,), (2, 64), (2,)])  # mlp_xy
          + _torch_count([(128, 25), (128,), (64, 128), (64,), (2, 64), (2,)]))  # mlp_xy_rec
  assert count_params(g['params']) == want


def test_stack_chain_builds_upwards():
  mc = _model_config(name='relate_static_order', num_objects=4)
  lat = _sample(jax.random.key(12), mc, 64, train=False)
  counts = np.asarray(lat.present.sum(1))
  assert counts.min() == 2 and counts.max() == 4
  assert np.all(np.asarray(lat.select) == 0)
  assert np.all(np.asarray(lat.poses)[:, 0, 1] <= 0.0)
  chain = StackChain(mc)
  args = (lat.appearance, lat.poses, lat.present, lat.background)
  params = jax.jit(chain.init)(jax.random.key(0), *args)
  theta = np.asarray(jax.jit(chain.apply)(params, *args))
  present = np.asarray(lat.present) > 0
  steps = np.diff(theta, axis=1)
  upper = present[:, 1:]
  assert np.all(steps[..., 1][upper] >= 0.1) and np.all(steps[..., 1][upper] <= 0.1 + 0.3)
  assert np.all(np.abs(steps[..., 0][upper]) <= 0.2)
  assert np.all(theta[~present] == mc.absent_pose)
  assert np.abs(theta[:, 0] - np.asarray(lat.poses)[:, 0]).max() <= 0.5


def _cosine(a, b) -> float:
  a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_bfloat16_compute_tracks_float32_with_float32_weights_and_grads():
  """model.compute_dtype='bfloat16' runs G's and D's convolutions in bf16 (W is bf16) from
  the same float32 parameters; images, logits and gradients stay close to the f32 ones and
  everything the optimizer or the losses see is float32."""
  mc32 = _model_config(num_objects=3)
  mc16 = _model_config(num_objects=3, compute_dtype='bfloat16')
  latents = _sample(jax.random.key(1), mc32, 4, True)
  real = jax.random.uniform(jax.random.key(2), (4, 32, 32, 3), minval=-1, maxval=1)
  target = jax.random.normal(jax.random.key(3), (4, 32, 32, 3))
  g_params = jax.jit(_generator(mc32).init)(jax.random.key(0), latents)['params']
  d_vars = jax.jit(functools.partial(Discriminator(mc32).init, update_stats=False))(
      jax.random.key(4), real)

  def run(mc):
    gen, disc = _generator(mc), Discriminator(mc)

    def loss(g_params, d_params):
      (images, aux), inter = gen.apply({'params': g_params}, latents, mutable=['intermediates'])
      out, spectral = disc.apply({'params': d_params, 'spectral': d_vars['spectral']},
                                 jnp.concatenate([real, images]), update_stats=True,
                                 mutable=['spectral'])
      # The image term gives G a gradient of O(1) at the 0.02 initialisation.
      value = jnp.mean(out['logit']) + jnp.mean(out['style']) + 1e3 * jnp.mean(images * target)
      return value, (images, aux, out, spectral, inter['intermediates']['scene'][0])

    (_, outputs), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
        g_params, d_vars['params'])
    return outputs, grads

  (im32, aux32, out32, sn32, scene32), grads32 = run(mc32)
  (im16, aux16, out16, sn16, scene16), grads16 = run(mc16)
  assert scene32.dtype == jnp.float32 and scene16.dtype == jnp.bfloat16
  for tree in (im16, aux16, out16, sn16, grads16):
    for leaf in jax.tree.leaves(tree):
      assert leaf.dtype == jnp.float32
      assert np.isfinite(np.asarray(leaf)).all()
  assert 1e-4 < _rel_diff(im16, im32) < 5e-2
  assert _rel_diff(aux16['single'], aux32['single']) < 5e-2
  np.testing.assert_allclose(aux16['poses'], aux32['poses'], atol=1e-6)  # Γ stays f32
  for name in ('logit', 'style', 'position'):
    np.testing.assert_allclose(out16[name], out32[name], atol=5e-2, rtol=5e-2, err_msg=name)
  for a, b in zip(jax.tree.leaves(sn16), jax.tree.leaves(sn32)):  # power iteration in f32
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  for side in (0, 1):
    for path, g16 in jax.tree_util.tree_leaves_with_path(grads16[side]):
      g32 = grads32[side]
      for p in path:
        g32 = g32[p.key]
      # Skipped: gradients that vanish in exact arithmetic (a bias right before an instance
      # norm, ~1e-9 in f32) or are tiny at initialisation (Γ's inner layers, ~1e-10).
      if np.abs(np.asarray(g32)).max() > 1e-6:
        assert _cosine(g16, g32) > 0.9, jax.tree_util.keystr(path)
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
    assert _cosine(flat(grads16[side]), flat(grads32[side])) > 0.99
