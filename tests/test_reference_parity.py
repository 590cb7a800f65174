"""relate-jax's forward pass against the PyTorch reference's, without torch: stored fixtures
(tests/data/reference_<config>.npz, written by tools/make_reference_fixtures.py from the
reference code) hold the reference's values for synthetic weights that are regenerated here
from their seed and converted with relate_jax.models.convert."""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from relate_jax import compare_reference
from relate_jax import config as config_lib
from relate_jax import parity
from relate_jax.models import Latents, convert

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Max |ours − reference| ≤ atol + RTOL · max |reference| per quantity, float32 on CPU.
# D's logit and position are sums of 16,384 terms that largely cancel (values ~0.01 from
# terms ~1): their rounding is absolute, ~4e-7 measured, hence the larger atol.
RTOL = 2e-5
ATOL = 1e-7
HEAD_ATOL = 1e-6


def _tolerance(row: parity.Row) -> float:
  head = row.name.startswith('d_') and row.name.endswith(('_logit', '_position'))
  return (HEAD_ATOL if head else ATOL) + RTOL * row.scale


def _load(config_name: str):
  with np.load(ROOT / 'tests' / 'data' / f'reference_{config_name}.npz') as f:
    data = dict(f)
  config = config_lib.load_config_file(str(ROOT / str(data['config'])))
  shapes = np.split(data['dims'], np.cumsum(data['ndims'])[:-1])
  state_dict = convert.synthetic_state_dict(list(data['keys']), shapes, int(data['weight_seed']))
  latents = Latents(**{name: data[f'latents/{name}'] for name in
                       ('background', 'appearance', 'poses', 'present', 'select')})
  reference = {k[len('ref/'):]: v for k, v in data.items() if k.startswith('ref/')}
  strides = {k[len('stride/'):]: int(v) for k, v in data.items() if k.startswith('stride/')}
  return config, state_dict, latents, data, reference, strides


def _check(config_name: str) -> dict[str, parity.Row]:
  config, state_dict, latents, data, reference, strides = _load(config_name)
  variables = convert.from_torch_state_dict(state_dict, config.model.name)
  batch, size = latents.appearance.shape[0], config.data.image_size
  real = np.random.default_rng(int(data['seed'])).uniform(
      -1, 1, (batch, size, size, 3)).astype(np.float32)
  penalty_seed = int(data['penalty_seed'])
  penalty_key = jax.random.key(penalty_seed) if penalty_seed >= 0 else None
  ours = parity.forward(config, variables, latents, real, penalty_key)
  # Compare on the elements the fixture kept.
  ours = {k: v.reshape(-1)[::strides[k]] if strides.get(k, 1) > 1 else v for k, v in ours.items()}
  rows = {r.name: r for r in parity.compare(reference, ours)}
  missing = set(reference) - {k for k in ours}
  assert not missing, f'quantities the reference has and relate-jax does not: {missing}'
  bad = [r for r in rows.values() if r.name != parity.SINGLE_XY and r.abs_diff > _tolerance(r)]
  assert not bad, parity.format_table(bad)
  return rows


def test_static_forward_matches_reference():
  rows = _check('clevr')
  for name in ('poses', 'scene', 'images', 'single', 'd_single_position', 'sn_conv5_v', 'l_xy',
               'l_style_disc'):
    assert name in rows
  assert rows['images'].scale > 0 and rows['d_fake_logit'].scale > 0


def test_ordered_forward_matches_reference():
  """The stack chain, and the position loss as the reference computes it (D's head on the
  full image, target θ_1); relate-jax's single-object form differs measurably."""
  rows = _check('shapestacks')
  assert 'single' not in rows  # The reference renders no single-object image here.
  single = rows[parity.SINGLE_XY]
  assert single.abs_diff > 10 * _tolerance(single)


def test_video_forward_matches_reference():
  """The video family (reference RELATEVideo.forward at synthetic weights, its presence bug
  on): θ(0), the velocity rollout, the frames, D on clips and every loss term."""
  with np.load(ROOT / 'tests' / 'data' / 'reference_real_traffic_video.npz') as f:
    data = dict(f)
  config = config_lib.load_config_file(str(ROOT / str(data['config'])))
  config.model.reference_presence_bug = True
  shapes = np.split(data['dims'], np.cumsum(data['ndims'])[:-1])
  state_dict = convert.synthetic_state_dict(list(data['keys']), shapes, int(data['weight_seed']))
  variables = convert.from_torch_state_dict(state_dict, config.model.name)
  latents = Latents(**{name: data[f'latents/{name}'] for name in
                       ('background', 'appearance', 'poses', 'present', 'select', 'start')})
  real = compare_reference.real_batch(config, latents.appearance.shape[0], int(data['seed']))
  ours = parity.forward(config, variables, latents, real)
  reference = {k[len('ref/'):]: v for k, v in data.items() if k.startswith('ref/')}
  strides = {k[len('stride/'):]: int(v) for k, v in data.items() if k.startswith('stride/')}
  ours = {k: v.reshape(-1)[::strides[k]] if strides.get(k, 1) > 1 else v for k, v in ours.items()}
  missing = set(reference) - set(ours)
  assert not missing, f'quantities the reference has and relate-jax does not: {missing}'
  rows = {r.name: r for r in parity.compare(reference, ours)}
  bad = [r for r in rows.values() if r.abs_diff > _tolerance(r)]
  assert not bad, parity.format_table(bad)
  assert len(rows) > 20 and all(r.scale > 0 for r in rows.values() if r.name == 'images')


@pytest.mark.slow
def test_256px_forward_and_gradient_penalty_match_reference():
  rows = _check('clevr_256')
  assert 'l_gradient' in rows and 'sn_conv6_v' in rows


# One update's gradients, spectral vectors and loss metrics: |ours − ref32| ≤ SPREAD_FACTOR ·
# |ref64 − ref32| (the reference's own float32 rounding, as the issue asks) + RTOL · max
# |ref32| per leaf (the forward's rounding, e.g. of D's logit, reaches the heads' biases).
# Parameters after Adam's first step θ − lr·g/(|g| + ε):
# where |g| ≥ STEP_MIN_GRAD and 10 times the spread the step is ±lr to 1 %, so both sides'
# parameters agree to PARAM_LR · lr plus float32 rounding (elsewhere ε or the sign decides).
SPREAD_FACTOR = 4.0
STEP_MIN_GRAD = 1e-6
PARAM_LR = 1e-2
PARAM_ATOL = 2e-7
# Bounded instead of hidden: in the D update the first conv's gradients differ from the
# reference by ~3e-3 relative, ~1e3 times the reference's own float32 spread (compare_reference
# --iteration on CLEVR; every other leaf is within ~2.5 times it). Traced to one first-layer
# pre-activation within 1e-9 of LeakyReLU's kink whose sign the images' float32 rounding
# flips (D's biases start at 0 and random-G images are ~6e-4 in amplitude).
OPEN_LEAVES = {('disc', 'conv1/conv/bias'), ('disc', 'conv1/conv/kernel')}
OPEN_RTOL = 1e-2


def _grad_tolerance(update: str, row: parity.LeafRow) -> float:
  if (update, row.name) in OPEN_LEAVES:
    return OPEN_RTOL * row.scale
  return SPREAD_FACTOR * row.spread + RTOL * row.scale


def _check_updates(config_name: str) -> list:
  with np.load(ROOT / 'tests' / 'data' / f'reference_{config_name}_updates.npz') as f:
    data = dict(f)
  config = config_lib.load_config_file(str(ROOT / str(data['config'])))
  config.train.reference_schedule = True
  shapes = np.split(data['dims'], np.cumsum(data['ndims'])[:-1])
  state_dict = convert.synthetic_state_dict(list(data['keys']), shapes, int(data['weight_seed']))
  variables = convert.from_torch_state_dict(state_dict, config.model.name)
  key, real, _, _ = compare_reference.iteration_inputs(config, int(data['batch']),
                                                       int(data['seed']))
  names = [str(n) for n in data['names']]
  updates = [(name, Latents(**{k: data[f'latents{i}/{k}'] for k in
                               ('background', 'appearance', 'poses', 'present', 'select')}))
             for i, name in enumerate(names)]
  records = [parity.train_updates(config, variables, [update], real, key)[0]
             for update in updates]
  failures, results = [], []
  for i, (name, ours) in enumerate(zip(names, records)):
    reference, spread = ({k[len(p):]: v for k, v in data.items() if k.startswith(p)}
                         for p in (f'ref32_{i}/', f'spread_{i}/'))
    reference64 = {k: v.astype(np.float64) + spread[k] for k, v in reference.items()}
    ours = {k: v.reshape(-1)[::int(data[f'stride/{k}'])] for k, v in ours.items()}
    assert set(ours) == set(reference), set(ours) ^ set(reference)
    leaves, rows = parity.compare_updates(reference, reference64, ours, config.optim.lr)
    failures += [f'{name} {r.name}: grad diff {r.diff:.2e}, spread {r.spread:.2e}'
                 for r in leaves if r.diff > _grad_tolerance(name, r)]
    for leaf in leaves:
      g = np.abs(reference64[f'grad/{leaf.name}'])
      decided = g >= np.maximum(STEP_MIN_GRAD, 10 * leaf.spread)
      param = f'param/{leaf.name}'
      diff = np.abs(ours[param] - reference[param].astype(np.float64))[decided]
      if diff.size and diff.max() > PARAM_LR * config.optim.lr + PARAM_ATOL:
        failures.append(f'{name} {leaf.name}: param diff {diff.max():.2e} where |g| ≥ '
                        f'{STEP_MIN_GRAD}')
    # A ±lr flip is only allowed where the reference's gradient is rounding-level.
    failures += [f'{name} {r.name}: {r.flips} flips at |g| up to {r.flip_grad:.2e}'
                 for r in leaves if r.flips and r.flip_grad > _grad_tolerance(name, r)]
    failures += [f'{name} {r.name}: diff {r.abs_diff:.2e}, spread {r.spread:.2e}' for r in rows
                 if r.abs_diff > SPREAD_FACTOR * r.spread + RTOL * r.scale]
    assert any(r.scale > 0 for r in leaves)
    results.append((leaves, rows))
  assert not failures, '\n'.join(failures)
  return results


# Full-size models (the reference's widths are fixed): ~35 s on 2 quiet cores, the one
# update check of the fast tier (ShapeStacks' below is slow).
def test_static_updates_match_reference():
  """One D and one G update in train.reference_schedule mode with Adam, each from the same
  weights and fresh Adam states, against the reference's own optimizers."""
  (d_leaves, d_rows), (g_leaves, _) = _check_updates('clevr')
  assert {'loss/d_gan', 'loss/d_total'} <= {r.name for r in d_rows}
  assert any(r.name.startswith('sn/') for r in d_rows)
  assert len(d_leaves) > 10 and len(g_leaves) > 10


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason='float32 rounding, not a different function: at the '
                   'fixture\'s synthetic weights the G update\'s image_decoder gradients differ '
                   'by ~1e-4 relative, 10-20 times the reference\'s own float32 spread; in '
                   'float64 every leaf agrees to 2e-10 (test_updates_match_reference_in_float64)')
def test_ordered_updates_match_reference():
  _check_updates('shapestacks')


@pytest.mark.slow
def test_updates_match_reference_in_float64(tmp_path):
  """Both fixtures' D and G updates computed in float64 (a subprocess: x64 is global) equal
  the reference's float64 run: the float32 gaps above are rounding, not the function."""
  out = tmp_path / 'f64.json'
  subprocess.run([sys.executable, str(ROOT / 'tools' / 'reference_updates_float64.py'),
                  'clevr', 'shapestacks', f'--json={out}'], check=True, cwd=ROOT)
  rows = json.loads(out.read_text())
  assert [(r['config'], r['update']) for r in rows] == [
      ('clevr', 'disc'), ('clevr', 'gen'), ('shapestacks', 'disc'), ('shapestacks', 'gen')]
  for r in rows:
    assert r['leaves'] >= 30, r
    # Measured: gradients <= 2.1e-10 relative, losses <= 1.1e-14, SN vectors <= 3.1e-14;
    # the reference's own float32-float64 spread is >= 2e-8 relative on every leaf.
    assert r['grad_rel'] < 1e-9, r
    assert r['grad_zero_abs'] < 1e-15, r
    assert r['loss_rel'] < 1e-12 and r['sn_rel'] < 1e-12, r
