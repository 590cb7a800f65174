"""relate-jax's side of the comparison with the PyTorch reference (no torch needed).

`forward` evaluates every quantity of one training iteration's forward pass on given
latents and real images — poses θ, scene tensor W, images, single-object images, D's
outputs on each sub-batch (logit, position P, style heads), the spectral-norm vectors after
one power iteration, and the reference's loss terms — under the names the reference
driver (relate_jax.compare_reference) gives its own values, so the two dicts compare key by
key (`compare`, `format_table`). The stored fixtures of tests/test_reference_parity.py are
the reference's dict, written by tools/make_reference_fixtures.py.

Conventions shared by both sides: every D call starts from the same (u, v) and runs one
power iteration (torch train mode); the position target of the ordered model is θ_1 under
D's head applied to the full image, as the reference computes it (REFERENCE §2.3), with
relate-jax's single-object form reported as `l_xy_single`; the gradient-penalty noise α, β
comes from `penalty_noise`, the draws relate_jax.losses.gradient_penalty makes from its
key, and is handed to the reference's own gradient_penalty.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from relate_jax import config as config_lib
from relate_jax import losses
from relate_jax import steps
from relate_jax.models import Latents

# Model fields whose value the reference hard-codes (or cannot express otherwise).
_FIXED = {
    'obj_channels': 512, 'scene_channels': 256, 'decoder_channels': (128, 64, 64),
    'interaction_hidden': 32, 'scale_hidden': 32, 'scale_augment': True, 'pose_clamp': 2.0,
    'absent_pose': -2.0, 'pooling': 'max', 'fixed_objects': False, 'clip_background': True,
    'hide_absent': False, 'order_f1_sees_pose': False, 'compute_dtype': 'float32',
}


def reference_settings(config: ml_collections.ConfigDict) -> dict:
  """Keyword arguments of the reference model class equivalent to `config.model`.

  Raises ValueError naming every field the reference cannot reproduce (its layer widths
  are fixed: only the full-size configs compare).
  """
  m = config.model
  problems = [f'model.{name}={m[name]!r} (the reference has {value!r})'
              for name, value in _FIXED.items() if _as_tuple(m[name]) != value]
  disc = (64, 128, 256, 512, 1024) + ((1024,) if m.upsample else ())
  if tuple(m.disc_channels) != disc:
    problems.append(f'model.disc_channels={tuple(m.disc_channels)} (the reference has {disc})')
  size = 256 if m.upsample else 128
  if config.data.image_size != size:
    problems.append(f'data.image_size={config.data.image_size} (the reference renders {size})')
  common = dict(n_objects=m.num_objects, backgd_dim=m.bg_dim, obj_dim=m.obj_dim,
                x_max=8.0 * m.pose_range, y_max=8.0 * m.pose_range)
  if m.name == config_lib.STATIC:
    settings = dict(common, min_obj_num=m.min_objects, obj_size=m.obj_size, xy_mod=m.xy_mod,
                    coeff_xy=m.coeff_xy if m.residual else 0.0, upsample=m.upsample,
                    ablation_xy=not m.use_interaction, fixed_objs=False)
  elif m.name == config_lib.ORDERED:
    settings = dict(common, offset_mlp=m.order_offset)
    if m.obj_size != 4 or m.upsample:
      problems.append('the ordered reference model has obj_size 4 and no upsample variant')
  else:
    raise ValueError(f'comparing {m.name} with the reference is not supported yet')
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
  for layer, vectors in updated['spectral'].items():
    out.update({f'sn_{layer}_{k}': v for k, v in vectors.items()})
  fake, real_out = heads['fake'], heads['real']
  ordered = config.model.name == config_lib.ORDERED
  position = fake['position'] if ordered else heads['single']['position']
  target = losses.selected_pose(aux['poses'], latents.select)
  out.update({
      'l_disc': losses.bce(real_out['logit'], 1.0),
      'l_gen': losses.bce(fake['logit'], 0.0),
      'l_style_disc': losses.style_bce(real_out['style'], 1.0),
      'l_style_gen': losses.style_bce(fake['style'], 0.0),
      'l_xy': losses.position_loss(position, target),
      'l_gen_eval': losses.bce(fake['logit'], 1.0),
      'l_style_gen_eval': losses.style_bce(fake['style'], 1.0),
  })
  if ordered:
    out['l_xy_single'] = losses.position_loss(heads['single']['position'], target)
  if penalty_key is not None:
    out['l_gradient'], _ = losses.gradient_penalty(lambda x: (d(x)[0]['logit'], None), real,
                                                   penalty_key)
  return out


def forward(config: ml_collections.ConfigDict, variables: dict, latents: Latents,
            real: np.ndarray, penalty_key: jax.Array | None = None) -> dict[str, np.ndarray]:
  """All forward quantities of relate-jax (see the module docstring) as NumPy arrays.

  variables: {'generator': {'params'}, 'discriminator': {'params', 'spectral'}} (e.g. from
  relate_jax.models.convert). real: (B, S, S, 3) images fed to D as they are. With
  `penalty_key` the gradient penalty `l_gradient` is included.
  """
  generator, discriminator = steps.build_models(config)
  fn = jax.jit(functools.partial(_forward, generator, discriminator, config))
  out = fn(variables['generator'], variables['discriminator'], latents, jnp.asarray(real),
           penalty_key)
  out = jax.device_get(out)
  return {k: np.asarray(out[k]) for k in sorted(out, key=_row_order)}


def _row_order(name: str) -> tuple[int, str]:
  """Geometry, pictures, D outputs, spectral-norm vectors, losses."""
  groups = ('poses', 'scene', 'images', 'single', 'd_', 'sn_', 'l_')
  return next(i for i, g in enumerate(groups) if name.startswith(g)), name


# Row of the ordered model's single-object position loss (relate-jax's form) against the
# reference's full-image one.
SINGLE_XY = 'l_xy_single (relate-jax single-object render)'
_PAIRS = ((SINGLE_XY, 'l_xy_single', 'l_xy'),)  # (row label, our key, reference key)


class Row(NamedTuple):
  name: str
  shape: tuple[int, ...]
  scale: float  # max |reference|
  abs_diff: float  # max |ours − reference|

  @property
  def rel_diff(self) -> float:
    return self.abs_diff / self.scale if self.scale else float(self.abs_diff != 0)


def compare(reference: dict[str, np.ndarray], ours: dict[str, np.ndarray]) -> list[Row]:
  """One row per quantity both sides have (in `ours`' order), plus the `_PAIRS` rows."""
  pairs = [(name, name, name) for name in ours if name in reference]
  pairs += [p for p in _PAIRS if p[1] in ours and p[2] in reference]
  rows = []
  for label, mine, theirs in pairs:
    a = np.asarray(ours[mine], np.float64)
    b = np.asarray(reference[theirs], np.float64)
    if a.shape != b.shape:
      raise ValueError(f'{label}: relate-jax shape {a.shape}, reference {b.shape}')
    rows.append(Row(label, a.shape, float(np.max(np.abs(b))), float(np.max(np.abs(a - b)))))
  return rows


def format_table(rows: list[Row]) -> str:
  """A Markdown table of the rows (paste-able into an issue or a README)."""
  lines = ['| quantity | shape | max \\|reference\\| | max abs diff | rel diff |',
           '|---|---|---:|---:|---:|']
  for r in rows:
    shape = '×'.join(map(str, r.shape)) or 'scalar'
    lines.append(f'| {r.name} | {shape} | {r.scale:.4g} | {r.abs_diff:.2e} | {r.rel_diff:.2e} |')
  return '\n'.join(lines)
