"""relate-jax's side of the comparison with the PyTorch reference (no torch needed).

Two kinds of comparison, both under the names the reference driver
(relate_jax.compare_reference) gives its own values, so the two sides compare key by key:

* `forward`: every quantity of one training iteration's forward pass on given latents and
  real images. Static and ordered families: poses θ, scene tensor W, images, single-object
  images, D's outputs on each sub-batch (logit, position P, style heads), the spectral-norm
  vectors after one power iteration and the reference's loss terms; every D call starts from
  the same (u, v). Video family: θ(0), the velocities v(1..steps), the poses of every frame,
  the frames, the single-object frame 0, and D's outputs on its three 3T-channel inputs
  (position, fake, real) called in that order, each iterating (u, v) in turn, as the
  reference's run_model does (relate-jax: steps.Phases with train.reference_schedule).
* `train_updates`: updates of relate-jax's own trainer (steps.Phases.discriminator_update /
  generator_update) from converted weights with fresh Adam states and given latents; per
  update the gradients of the updated player (read from Adam's first moment), its parameters
  after Adam, the spectral-norm vectors and the trainer's loss metrics. `compare_updates`
  turns reference values of float32 and float64 runs and ours into per-leaf rows.

Conventions shared by both sides: the position target of the ordered model is θ_1 under D's
head applied to the full image, as the reference computes it (REFERENCE §2.3), with
relate-jax's single-object form reported as `l_xy_single`; the gradient-penalty noise α, β
comes from `penalty_noise`, the draws relate_jax.losses.gradient_penalty makes from its key,
and is handed to the reference's own gradient_penalty. The stored fixtures of
tests/test_reference_parity.py are the reference's values, written by
tools/make_reference_fixtures.py.
"""

import functools
from typing import NamedTuple, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from relate_jax import config as config_lib
from relate_jax import losses
from relate_jax import steps
from relate_jax.models import Latents
from relate_jax.models.discriminator import frames_to_channels

# Model fields whose value the reference hard-codes (or cannot express otherwise).
_FIXED = {
    'obj_channels': 512, 'scene_channels': 256, 'decoder_channels': (128, 64, 64),
    'interaction_hidden': 32, 'scale_hidden': 32, 'scale_augment': True, 'pose_clamp': 2.0,
    'absent_pose': -2.0, 'pooling': 'max', 'fixed_objects': False, 'clip_background': True,
    'hide_absent': False, 'order_f1_sees_pose': False, 'compute_dtype': 'float32',
}
# RELATEVideo: θ(0) clamped to ±0.8 with absent cars at −1.8, θ = θ̂ + 0.5·Γ, a 20-step
# rollout in training, 1..K cars, no 256 px variant.
_FIXED_VIDEO = {
    'pose_clamp': 0.8, 'absent_pose': -1.8, 'rollout_steps': 20, 'min_objects': 1,
    'use_interaction': True, 'residual': True, 'xy_mod': 0.5, 'coeff_xy': 1.0,
    'upsample': False,
}


def reference_loss_weights(config: ml_collections.ConfigDict) -> dict[str, float]:
  """The reference model's `loss_weights` equivalent to config.loss (REFERENCE §4): its
  objective is Σ weight · term over the terms an update computes."""
  w = config.loss
  return {'l_gen': w.gan, 'l_gen_eval': w.gan, 'l_disc': w.gan, 'l_style_disc': w.style_disc,
          'l_style_gen': w.style_disc, 'l_style_gen_eval': w.style_gen, 'l_xy': w.position,
          'l_gradient': w.gradient_penalty}


def reference_settings(config: ml_collections.ConfigDict) -> dict:
  """Keyword arguments of the reference model class equivalent to `config` (its model and
  loss weights).

  Raises ValueError naming every field the reference cannot reproduce (its layer widths
  are fixed: only the full-size configs compare).
  """
  m = config.model
  video = m.name == config_lib.VIDEO
  fixed = dict(_FIXED, **_FIXED_VIDEO) if video else _FIXED
  problems = [f'model.{name}={m[name]!r} (the reference has {value!r})'
              for name, value in fixed.items() if _as_tuple(m[name]) != value]
  disc = (64, 128, 256, 512, 1024) + ((1024,) if m.upsample else ())
  if tuple(m.disc_channels) != disc:
    problems.append(f'model.disc_channels={tuple(m.disc_channels)} (the reference has {disc})')
  size = 256 if m.upsample else 128
  if config.data.image_size != size:
    problems.append(f'data.image_size={config.data.image_size} (the reference renders {size})')
  common = dict(n_objects=m.num_objects, backgd_dim=m.bg_dim, obj_dim=m.obj_dim,
                x_max=8.0 * m.pose_range, y_max=8.0 * m.pose_range,
                loss_weights=reference_loss_weights(config))
  if m.name == config_lib.STATIC:
    settings = dict(common, min_obj_num=m.min_objects, obj_size=m.obj_size, xy_mod=m.xy_mod,
                    coeff_xy=m.coeff_xy if m.residual else 0.0, upsample=m.upsample,
                    ablation_xy=not m.use_interaction, fixed_objs=False)
  elif m.name == config_lib.ORDERED:
    settings = dict(common, offset_mlp=m.order_offset)
    if m.obj_size != 4 or m.upsample:
      problems.append('the ordered reference model has obj_size 4 and no upsample variant')
  elif video:
    settings = dict(common, seq_len=m.clip_length, obj_size=m.obj_size,
                    past=m.past_velocities, fixed_objs=False)
    if config.loss.gradient_penalty:
      problems.append('loss.gradient_penalty: the video reference has no gradient penalty')
  else:
    raise ValueError(f'comparing {m.name} with the reference is not supported')
  if problems:
    raise ValueError('This config has no reference counterpart:\n  - ' + '\n  - '.join(problems))
  return settings


def _as_tuple(value):
  """Config lists (from JSON) compare as tuples."""
  return tuple(value) if isinstance(value, (list, tuple)) else value


def penalty_noise(key: jax.Array, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
  """α (B, 1, 1, 1) and β (shape) as relate_jax.losses.gradient_penalty draws them from
  `key`, for handing the same noise to the reference."""
  key_beta, key_alpha = jax.random.split(key)
  beta = jax.random.uniform(key_beta, shape, jnp.float32)
  alpha = jax.random.uniform(key_alpha, (shape[0],) + (1,) * (len(shape) - 1), jnp.float32)
  return np.asarray(alpha), np.asarray(beta)


def update_penalty_key(key: jax.Array) -> jax.Array:
  """The gradient-penalty key steps.Phases.discriminator_update derives from its key."""
  return jax.random.split(key)[1]


def _style_losses(fake: dict, real: dict | None) -> dict:
  """The reference's BCE terms of D's outputs on fake (and real) batches."""
  out = {'l_gen': losses.bce(fake['logit'], 0.0),
         'l_style_gen': losses.style_bce(fake['style'], 0.0),
         'l_gen_eval': losses.bce(fake['logit'], 1.0),
         'l_style_gen_eval': losses.style_bce(fake['style'], 1.0)}
  if real is not None:
    out.update(l_disc=losses.bce(real['logit'], 1.0),
               l_style_disc=losses.style_bce(real['style'], 1.0))
  return out


def _forward(generator, discriminator, config, g_vars, d_vars, latents, real, penalty_key):
  (images, aux), inter = generator.apply(g_vars, latents, mutable=['intermediates'])

  def d(x):
    return discriminator.apply(d_vars, x, update_stats=True, mutable=['spectral'])

  out = {'poses': aux['poses'], 'scene': inter['intermediates']['scene'][0],
         'images': images, 'single': aux['single']}
  heads = {}
  for name, batch in (('fake', images), ('single', aux['single']), ('real', real)):
    heads[name], updated = d(batch)
    out.update({f'd_{name}_{k}': v for k, v in heads[name].items()})
  # Every call starts from the same (u, v), so the vectors after any one of them agree.
  out.update(_spectral_rows(updated['spectral']))
  ordered = config.model.name == config_lib.ORDERED
  position = heads['fake']['position'] if ordered else heads['single']['position']
  target = losses.selected_pose(aux['poses'], latents.select)
  out.update(_style_losses(heads['fake'], heads['real']))
  out['l_xy'] = losses.position_loss(position, target)
  if ordered:
    out['l_xy_single'] = losses.position_loss(heads['single']['position'], target)
  if penalty_key is not None:
    out['l_gradient'], _ = losses.gradient_penalty(lambda x: (d(x)[0]['logit'], None), real,
                                                   penalty_key)
  return out


def _spectral_rows(spectral: dict) -> dict:
  return {f'sn_{layer}_{k}': v for layer, vectors in spectral.items() for k, v in vectors.items()}


def _video_forward(config, g_vars, d_vars, latents, real):
  """The video family's quantities; real clips (B, T, S, S, 3)."""
  phases = steps.Phases(config)
  fake = phases.generate(g_vars['params'], latents)
  frames, aux = fake['images'], fake['aux']
  on, spectral = phases._run_d_on(d_vars['params'], d_vars['spectral'],
                                  dict(fake['inputs'], real=frames_to_channels(real)))
  out = {'poses': aux['start_poses'], 'velocities': aux['velocities'],
         'frame_poses': aux['poses'], 'frames': frames, 'single': aux['single']}
  for name, heads in on.items():
    out.update({f'd_{name}_{k}': v for k, v in heads.items()})
  out.update(_spectral_rows(spectral))
  out.update(_style_losses(on['fake'], on['real']))
  out['l_xy'] = losses.position_loss(on['position']['position'], fake['target'])
  return out


def forward(config: ml_collections.ConfigDict, variables: dict, latents: Latents,
            real: np.ndarray, penalty_key: jax.Array | None = None) -> dict[str, np.ndarray]:
  """All forward quantities of relate-jax (see the module docstring) as NumPy arrays.

  variables: {'generator': {'params'}, 'discriminator': {'params', 'spectral'}} (e.g. from
  relate_jax.models.convert). real: (B, S, S, 3) images, or (B, T, S, S, 3) clips for the
  video family, fed to D as they are. With `penalty_key` the gradient penalty `l_gradient`
  is included (static families).
  """
  if config.model.name == config_lib.VIDEO:
    config = _with_reference_schedule(config, True)
    fn = jax.jit(functools.partial(_video_forward, config))
    out = fn(variables['generator'], variables['discriminator'], latents, jnp.asarray(real))
  else:
    generator, discriminator = steps.build_models(config)
    fn = jax.jit(functools.partial(_forward, generator, discriminator, config))
    out = fn(variables['generator'], variables['discriminator'], latents, jnp.asarray(real),
             penalty_key)
  out = jax.device_get(out)
  return {k: np.asarray(out[k]) for k in sorted(out, key=_row_order)}


def _with_reference_schedule(config: ml_collections.ConfigDict,
                             on: bool) -> ml_collections.ConfigDict:
  config = config.copy_and_resolve_references()
  config.train.reference_schedule = on
  return config


def _row_order(name: str) -> tuple[int, str]:
  """Geometry, pictures, D outputs, spectral-norm vectors, losses."""
  groups = ('poses', 'velocities', 'frame_poses', 'scene', 'images', 'frames', 'single', 'd_',
            'sn_', 'l_')
  return next(i for i, g in enumerate(groups) if name.startswith(g)), name


class GivenLatents(steps.Phases):
  """steps.Phases whose updates take `given` instead of drawing latents from their key."""

  def __init__(self, config: ml_collections.ConfigDict, given: Latents):
    super().__init__(config)
    self.given = given

  def latents(self, key: jax.Array, batch: int) -> Latents:
    del key, batch
    return self.given


# The reference's optimizer names ('disc', 'gen') → relate-jax's players.
PLAYERS = {'disc': ('d_params', 'd_opt'), 'gen': ('g_params', 'g_opt')}


def _first_moment(opt_state):
  return optax.tree_utils.tree_get(opt_state, 'mu')


def train_updates(config: ml_collections.ConfigDict, variables: dict,
                  updates: Sequence[tuple[str, Latents]], real: np.ndarray,
                  key: jax.Array) -> list[dict[str, np.ndarray]]:
  """Runs relate-jax's trainer updates in turn from `variables` with fresh Adam states.

  updates: ('disc' | 'gen', latents) per update, e.g. the iteration's D update and its M G
  updates; each runs steps.Phases.discriminator_update / generator_update (GivenLatents)
  with `key` (the D update derives its gradient-penalty noise from it, see
  `update_penalty_key`). real: D's real input (B, S, S, C) (video: frames on channels).

  Returns one record per update: 'grad/<leaf>' the updated player's gradient, recovered
  from Adam's first moment (g = (μ_t − β1·μ_{t−1}) / (1 − β1); exact for β1 = 0),
  'param/<leaf>' its parameters after Adam, 'sn/<layer>/<u|v>' the spectral-norm vectors
  and 'loss/<metric>' the trainer's metrics (d_gan, d_total, g_gan, …). Leaves are named by
  their Flax path inside the player's params ('conv2/kernel').
  """
  g, d = variables['generator']['params'], variables['discriminator']
  optimizer = steps.make_optimizer(config)
  state = steps.TrainState(
      step=jnp.zeros((), jnp.int32), g_params=g, d_params=d['params'], spectral=d['spectral'],
      g_opt=optimizer.init(g), d_opt=optimizer.init(d['params']), ema_params=None)
  real = jnp.asarray(real)
  b1 = config.optim.b1
  fns = {
      'disc': jax.jit(lambda s, z: GivenLatents(config, z).discriminator_update(s, real, key)),
      'gen': jax.jit(lambda s, z: GivenLatents(config, z).generator_update(s, real.shape[0], key)),
  }
  records = []
  for name, latents in updates:
    new, metrics = fns[name](state, latents)
    params, opt = PLAYERS[name]
    grads = jax.tree.map(lambda m, m0: (m - b1 * m0) / (1.0 - b1),
                         _first_moment(getattr(new, opt)), _first_moment(getattr(state, opt)))
    record = {f'grad/{k}': v for k, v in _flat(grads).items()}
    record.update({f'param/{k}': v for k, v in _flat(getattr(new, params)).items()})
    record.update({f'sn/{k}': v for k, v in _flat(new.spectral).items()})
    record.update({f'loss/{k}': v for k, v in metrics.items()})
    records.append(jax.device_get(record))
    state = new
  return [{k: np.asarray(v) for k, v in r.items()} for r in records]


def _flat(tree) -> dict:
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep='/')


def iterate_spectral(config: ml_collections.ConfigDict, variables: dict, iterations: int) -> dict:
  """`variables` with D's spectral-norm vectors after `iterations` more power iterations
  (they depend on D's weights only, not on its input)."""
  phases = steps.Phases(config)
  size = config.data.image_size
  x = jnp.zeros((1, size, size, steps.disc_channels_in(config)), jnp.float32)

  @jax.jit
  def step(d_vars):
    return dict(d_vars, spectral=phases._run_d(d_vars['params'], d_vars['spectral'], x)[1])

  d_vars = variables['discriminator']
  for _ in range(iterations):
    d_vars = step(d_vars)
  return dict(variables, discriminator=d_vars)


# Row of the ordered model's single-object position loss (relate-jax's form) against the
# reference's full-image one.
SINGLE_XY = 'l_xy_single (relate-jax single-object render)'
_PAIRS = ((SINGLE_XY, 'l_xy_single', 'l_xy'),)  # (row label, our key, reference key)


class Row(NamedTuple):
  name: str
  shape: tuple[int, ...]
  scale: float  # max |reference|
  abs_diff: float  # max |ours − reference|
  spread: float | None = None  # max |reference float64 − reference float32|, when run

  @property
  def rel_diff(self) -> float:
    return self.abs_diff / self.scale if self.scale else float(self.abs_diff != 0)


def _max_abs(x) -> float:
  return float(np.max(np.abs(x))) if np.size(x) else 0.0


def compare(reference: dict[str, np.ndarray], ours: dict[str, np.ndarray],
            reference64: dict[str, np.ndarray] | None = None) -> list[Row]:
  """One row per quantity both sides have (in `ours`' order), plus the `_PAIRS` rows; with
  `reference64` (the reference run in float64) each row also gets its float32 spread."""
  pairs = [(name, name, name) for name in ours if name in reference]
  pairs += [p for p in _PAIRS if p[1] in ours and p[2] in reference]
  rows = []
  for label, mine, theirs in pairs:
    a = np.asarray(ours[mine], np.float64)
    b = np.asarray(reference[theirs], np.float64)
    if a.shape != b.shape:
      raise ValueError(f'{label}: relate-jax shape {a.shape}, reference {b.shape}')
    spread = None
    if reference64 is not None and theirs in reference64:
      spread = _max_abs(np.asarray(reference64[theirs], np.float64) - b)
    rows.append(Row(label, a.shape, _max_abs(b), _max_abs(a - b), spread))
  return rows


def _shape(shape) -> str:
  return '×'.join(map(str, shape)) or 'scalar'


def format_table(rows: list[Row]) -> str:
  """A Markdown table of the rows (paste-able into an issue or a README)."""
  spread = any(r.spread is not None for r in rows)
  head = '| quantity | shape | max \\|reference\\| | max abs diff | rel diff |'
  lines = [head + (' \\|ref64 − ref32\\| |' if spread else ''),
           '|---|---|---:|---:|---:|' + ('---:|' if spread else '')]
  for r in rows:
    line = f'| {r.name} | {_shape(r.shape)} | {r.scale:.4g} | {r.abs_diff:.2e} | {r.rel_diff:.2e} |'
    if spread:
      line += ' – |' if r.spread is None else f' {r.spread:.2e} |'
    lines.append(line)
  return '\n'.join(lines)


class LeafRow(NamedTuple):
  """One parameter leaf of an update: its gradient and its value after Adam."""
  name: str
  shape: tuple[int, ...]
  scale: float  # max |g_ref32|
  diff: float  # max |g_ours − g_ref32|
  spread: float  # max |g_ref64 − g_ref32|
  param_diff: float  # max |θ'_ours − θ'_ref32| over the elements that are not ±lr flips
  flips: int  # elements whose Adam steps differ by more than lr/2 (see compare_updates)
  flip_grad: float  # max |g_ref64| over the flipped elements (0 without flips)

  @property
  def ratio(self) -> float:
    """|g_ours − g_ref32| in units of the reference's own float32 rounding."""
    return self.diff / self.spread if self.spread else float('inf') if self.diff else 0.0


def compare_updates(reference: dict[str, np.ndarray], reference64: dict[str, np.ndarray],
                    ours: dict[str, np.ndarray], lr: float) -> tuple[list[LeafRow], list[Row]]:
  """Rows of one update: a LeafRow per parameter leaf and Rows for the spectral-norm vectors
  and the losses. The arguments are `train_updates`-style records.

  A ±lr flip is an element whose Adam steps on the two sides differ by more than lr/2:
  Adam's first step is ≈ lr·g/(|g| + ε), so a gradient the float32 rounding decides the
  sign of (an exact zero, e.g. a bias right before an instance norm) becomes ±lr. Flips
  are counted, not hidden, with the largest float64 gradient among them: a flip is rounding
  when that gradient is within the float32 spread.
  """
  leaves = []
  for key in ours:
    if not key.startswith('grad/'):
      continue
    leaf = key[len('grad/'):]
    g, g32, g64 = (np.asarray(r[key], np.float64) for r in (ours, reference, reference64))
    p, p32 = (np.asarray(r[f'param/{leaf}'], np.float64) for r in (ours, reference))
    if g.shape != g32.shape:
      raise ValueError(f'{leaf}: relate-jax shape {g.shape}, reference {g32.shape}')
    spread = _max_abs(g64 - g32)
    step_diff = np.abs(p - p32)
    flipped = step_diff > 0.5 * lr
    leaves.append(LeafRow(leaf, g.shape, _max_abs(g32), _max_abs(g - g32), spread,
                          _max_abs(step_diff[~flipped]), int(flipped.sum()),
                          _max_abs(g64[flipped])))
  rest = {k: v for k, v in ours.items() if k.startswith(('sn/', 'loss/'))}
  return leaves, compare(reference, rest, reference64)


def format_leaf_table(rows: list[LeafRow]) -> str:
  """A Markdown table of gradient and Adam-step rows."""
  lines = ['| leaf | shape | max \\|g_ref32\\| | \\|g_ours − g_ref32\\| '
           '| \\|g_ref64 − g_ref32\\| | ratio | max \\|θ′_ours − θ′_ref32\\| (no flips) '
           '| ±lr flips | max \\|g_ref64\\| of flips |',
           '|---|---|---:|---:|---:|---:|---:|---:|---:|']
  for r in rows:
    flip_grad = f'{r.flip_grad:.1e}' if r.flips else '–'
    lines.append(f'| {r.name} | {_shape(r.shape)} | {r.scale:.3g} | {r.diff:.2e} | '
                 f'{r.spread:.2e} | {r.ratio:.2f} | {r.param_diff:.2e} | {r.flips} | '
                 f'{flip_grad} |')
  return '\n'.join(lines)


def schedule_effect(config: ml_collections.ConfigDict, variables: dict, player: str,
                    latents: Latents, real: np.ndarray, key: jax.Array) -> list[Row]:
  """The gradients of one `player` ('disc' | 'gen') update from `variables` in the fast
  schedule (default: one power iteration per phase on the concatenated batches) against
  train.reference_schedule (one per D call), as Rows with the reference schedule's values
  as 'reference'."""
  records = [train_updates(_with_reference_schedule(config, on), variables, [(player, latents)],
                           real, key)[0] for on in (True, False)]
  grads = [{k: v for k, v in r.items() if k.startswith('grad/')} for r in records]
  return compare(grads[0], grads[1])
