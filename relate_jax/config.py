"""Base configuration shared by every experiment config in ``configs/``.

Every field has a one-line comment. Experiment configs call :func:`base_config`
and override what differs; :func:`validate` checks a resolved config once, with
clear messages, before anything is built.

Defaults follow the reference PyTorch code (``REFERENCE.md``); where the paper
differs, the paper's choice is reachable through a field named here.
"""

import dataclasses
import importlib.util
import math
import operator
import os
from typing import Callable, Iterable

import ml_collections

# Model names.
STATIC = 'relate_static'  # RELATE with the interaction module Γ (paper eq. 1-2).
ORDERED = 'relate_static_order'  # Markov pose chain for stacked scenes (paper eq. 3).
VIDEO = 'relate_video'  # Γ for θ(0), then a velocity rollout θ(t+1) = θ(t) + v(t+1) (paper §3.2).
MODEL_NAMES = (STATIC, ORDERED, VIDEO)

PIXEL_RANGES = ('tanh', 'reference')
POOLINGS = ('max', 'sum')


def base_config() -> ml_collections.ConfigDict:
  """The reference's `relate_static` CLEVR setting (configs/clevr-train.json)."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # Root PRNG seed: parameters, latents, data order, sample grids.

  c.data = ml_collections.ConfigDict()
  c.data.name = 'shapes'  # Dataset builder: shapes, clevr, clevr5, clevr5_vbg, shapestacks, real_traffic, balls_in_bowl.
  c.data.data_dir = ''  # Directory with the raw dataset in its published layout (TFDS manual dir).
  c.data.tfds_dir = ''  # Where prepared array_record files go; '' = $RELATE_JAX_DATA or ~/.cache/relate_jax/tensorflow_datasets.
  c.data.image_size = 128  # Square training resolution (PIL LANCZOS resize, as the reference).
  c.data.pixel_range = 'tanh'  # 'tanh': real images in [-1, 1] like G's tanh output; 'reference': [-0.5, 0.5] as the PyTorch code fed them.
  c.data.num_threads = 2  # grain read threads.
  c.data.prefetch = 2  # Batches prefetched by the grain iterator.
  c.data.rebuild = False  # Prepare the dataset again from data_dir even if a prepared copy exists.

  c.model = ml_collections.ConfigDict()
  c.model.name = STATIC  # One of MODEL_NAMES.
  c.model.num_objects = 6  # K: object slots.
  c.model.min_objects = 3  # K_min: fewest objects present in a training scene.
  c.model.obj_size = 6  # H': side of the object window inside the H x H scene tensor.
  c.model.bg_dim = 1  # Nb: size of the background code z0.
  c.model.obj_dim = 20  # Nf: size of each object code z_k.
  c.model.upsample = False  # The 256x256 variant: 32x32 scene tensor, object windows upsampled x2.
  c.model.obj_channels = 512  # Channels of the learned object constant T_f and of Ψf's first layers.
  c.model.scene_channels = 256  # Channels C of the scene tensor W (and of T_b).
  c.model.decoder_channels = (128, 64, 64)  # Channels of the image decoder G's hidden layers.
  c.model.disc_channels = (64, 128, 256, 512, 1024)  # Channels of D's stride-2 convs (128 px needs 5).
  c.model.interaction_hidden = 32  # Width of Γ's MLPs f and g.
  c.model.scale_hidden = 32  # Width of the scale MLP sc.
  c.model.scale_augment = True  # Scale augmentation s = 1 + 2 tanh(sc(z0, z_k, θ_k)) (reference default; paper Table A3).
  c.model.use_interaction = True  # Γ on; False gives BlockGAN2D poses (θ = θ̂).
  c.model.residual = True  # θ = coeff_xy·θ̂ + xy_mod·Γ; False drops θ̂ ("w/o residual").
  c.model.xy_mod = 0.5  # Scale of Γ's correction (reference 0.5; the paper writes 1).
  c.model.coeff_xy = 1.0  # Weight of θ̂ in the residual.
  c.model.pose_range = 0.625  # θ̂ ~ U[-r, r]^2 (reference x_max/8; paper 0.6).
  c.model.pose_clamp = 2.0  # Corrected poses are clamped to [-c, c].
  c.model.absent_pose = -2.0  # Pose written into absent slots (reference parks them at (-2, -2)).
  c.model.pooling = 'max'  # Scene composition: 'max' (reference) or 'sum' (BallsInBowl).
  c.model.fixed_objects = False  # One constant T_f per slot and constant style (BallsInBowl); implies no scale MLP input z0.
  c.model.eval_bg_range = 0.75  # z0 ~ U[-r, r] when sampling for evaluation (reference 0.75; paper 0.5 or 1).
  c.model.eval_all_objects = True  # Evaluation samples render every slot (reference); False samples K like training.
  c.model.clip_background = True  # Keep the zero canvases of every slot in the max, clipping W at 0 (reference quirk §9.14).
  c.model.hide_absent = False  # Zero the canvases of absent slots so they cannot re-enter the frame when s is large (reference: False).
  c.model.order_offset = 0.3  # Ordered model: max extra vertical step per stacked object (reference offset_mlp).
  c.model.order_f1_sees_pose = False  # Ordered model: f1 also takes θ_{k-1} (paper eq. 3); False = reference.
  c.model.order_position_on_single = False  # Ordered model: position loss on a render of the bottom block alone; False = on the full stack (reference).
  c.model.clip_length = 10  # Video: T, frames per training clip seen by D (reference seq_len).
  c.model.rollout_steps = 20  # Video: rollout steps in training; a clip starts at s ~ U{0..rollout_steps − T − 2}.
  c.model.past_velocities = 3  # Video: velocities of history the dynamics Γ_v sees (reference past).
  c.model.sample_frames = 32  # Video: default frames of a sampled video (reference len_ev); any length works.
  c.model.sample_start = 1  # Video: displacement index of a sampled video's first frame (reference validation: 1).
  c.model.reference_presence_bug = False  # Video: mask Γ_v's partners on the latest vx as the reference does (absent objects act as present).
  c.model.render_chunk = 0  # Video sampling: frames per image-decoder call (bounds memory); 0 = all frames at once.
  c.model.compute_dtype = 'float32'  # G/D activations and matmuls: 'float32' or 'bfloat16' (weights, IN/SN statistics, losses stay float32).

  c.loss = ml_collections.ConfigDict()
  c.loss.gan = 1.0  # Non-saturating BCE GAN loss (l_disc, l_gen, l_gen_eval).
  c.loss.style_disc = 1.0  # Style heads' BCE loss on the discriminator side.
  c.loss.style_gen = 0.0  # Style loss on the generator side (reference l_style_gen_eval = 0).
  c.loss.position = 1.0  # Position regression on the single-object render (l_xy).
  c.loss.gradient_penalty = 0.0  # DRAGAN-style gradient penalty on real images (grad_pen configs: 1).

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-4  # Adam learning rate, both players.
  c.optim.b1 = 0.0  # Adam beta1.
  c.optim.b2 = 0.999  # Adam beta2.
  c.optim.eps = 1e-8  # Adam epsilon.
  c.optim.gen_steps = 2  # M: generator updates per discriminator update.

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64  # Global batch (real images per D update; latents per update).
  c.train.num_steps = 60_000  # Iterations (1 D + M G updates each).
  c.train.log_every = 50  # Steps between progress lines and TensorBoard scalars.
  c.train.sample_every = 1000  # Steps between sample grids (fixed latents).
  c.train.checkpoint_every = 1000  # Steps between Orbax checkpoints.
  c.train.keep_checkpoints = 3  # Checkpoints kept on disk.
  c.train.num_grid = 64  # Images in the sample grid.
  c.train.ema_decay = 0.0  # EMA of generator weights for sampling; 0 = off (reference).
  c.train.reference_schedule = False  # D called separately per sub-batch in the reference's order, one power iteration per call (slower; for parity).
  c.train.on_nonfinite = 'stop'  # NaN/Inf losses or state: 'stop' (report, exit 1) or 'rollback' (newest good checkpoint, new key).
  c.train.max_rollbacks = 3  # With on_nonfinite='rollback': give up (stop) after this many rollbacks.
  c.train.checkpoint_timeout = 300.0  # Seconds a checkpoint write may take before the run stops with an error.

  c.eval = ml_collections.ConfigDict()
  c.eval.metrics = ()  # Metric protocol names run during training, e.g. ('fid10k',).
  c.eval.every = 0  # Steps between in-training evaluations; 0 = never.
  c.eval.split = 'test'  # Real split the metrics compare against.
  c.eval.batch_size = 100  # Batch for sampling and feature extraction.
  c.eval.resolution = 0  # Resize both sides to this before the detector; 0 = native size.
  return c


# Ablations of the paper's Table 1, as switches on any config (`configs/X.py:<variant>`).
ABLATIONS = {
    # BlockGAN2D: independent poses (no Γ) and no position regression.
    'blockgan2d': {'model.use_interaction': False, 'loss.position': 0.0},
    # "w/o residual": θ is Γ's output alone, θ̂ is not added back.
    'no_residual': {'model.residual': False},
    # "w/o pos. reg.": no position-regression loss.
    'no_position': {'loss.position': 0.0},
}


def apply_variant(config: ml_collections.ConfigDict, variant: str,
                  own: dict[str, dict] | None = None) -> ml_collections.ConfigDict:
  """Applies a named variant: one of the config file's `own` ones or an ABLATION.

  Variants combine with '+', e.g. 'main+blockgan2d'. '' leaves the config unchanged.
  """
  table = dict(ABLATIONS, **(own or {}))
  for name in filter(None, variant.split('+')):
    if name not in table:
      raise ValueError(f'Unknown variant {name!r}; this config knows {sorted(table)}')
    for path, value in table[name].items():
      group, field = path.split('.')
      config[group][field] = value
  return config


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """Loads `configs/X.py` or `configs/X.py:variant` like the --config flag does."""
  path, _, variant = path.partition(':')
  name = 'relate_config_' + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant) if variant else module.get_config()


class ConfigError(ValueError):
  """A user error in the config (or in how it meets the workdir): the command line prints
  its message alone, without a traceback."""


@dataclasses.dataclass(frozen=True)
class Rule:
  """What one config field accepts, and whether it may change when a workdir resumes.

  kind: 'int', 'float' (ints accepted; finite), 'bool', 'str', 'ints' (tuple of ints),
  'strs' (tuple of strings). Bounds ge/gt/le/lt apply to numbers and tuple entries;
  `choices` (values, or a function returning them, for registries imported late) to
  strings and tuple entries; `length` to tuples.
  resumable: the field changes the schedule, logging or resources of a run, not its model
  or data, so `workdir.check_config` lets a resumed run change it (and logs it).
  """
  kind: str
  ge: float | None = None
  gt: float | None = None
  le: float | None = None
  lt: float | None = None
  choices: tuple | Callable[[], Iterable] | None = None
  length: int | None = None
  resumable: bool = False

  def _bounds(self):
    """(symbol, comparison, bound) of each bound that is set."""
    return [(sym, op, bound) for sym, op, bound in (
        ('>=', operator.ge, self.ge), ('>', operator.gt, self.gt),
        ('<=', operator.le, self.le), ('<', operator.lt, self.lt)) if bound is not None]

  def _choices(self) -> tuple:
    return tuple(self.choices() if callable(self.choices) else self.choices)

  def allowed(self) -> str:
    """The accepted values in words, e.g. 'an int >= 1' or "one of 'max', 'sum'"."""
    if self.choices is not None:
      entry = 'one of ' + ', '.join(repr(c) for c in self._choices())
    else:
      entry = {'int': 'an int', 'float': 'a finite number', 'bool': 'True or False',
               'str': 'a string', 'ints': 'an int', 'strs': 'a string'}[self.kind]
      entry += ''.join(f' {sym} {bound:g}' for sym, _, bound in self._bounds())
    if self.kind in ('ints', 'strs'):
      count = f'{self.length} ' if self.length else ''
      return f'a tuple of {count}entries, each {entry}'
    return entry

  def _scalar_ok(self, value, kind: str) -> bool:
    if kind == 'bool':
      return isinstance(value, bool)
    if kind == 'str':
      ok = isinstance(value, str)
    else:
      types = (int,) if kind == 'int' else (int, float)
      ok = (isinstance(value, types) and not isinstance(value, bool) and math.isfinite(value)
            and all(op(value, bound) for _, op, bound in self._bounds()))
    return ok and (self.choices is None or value in self._choices())

  def accepts(self, value) -> bool:
    if self.kind in ('ints', 'strs'):
      entry = 'int' if self.kind == 'ints' else 'str'
      return (isinstance(value, (tuple, list))
              and (self.length is None or len(value) == self.length)
              and all(self._scalar_ok(v, entry) for v in value))
    return self._scalar_ok(value, self.kind)


def _dataset_names() -> list[str]:
  from relate_jax.data import registry  # Deferred: imports TFDS.
  return sorted(registry.DATASETS)


def _metric_names() -> list[str]:
  from relate_jax.metrics import registry  # Deferred: keeps config imports light.
  return sorted(registry.PROTOCOLS)


def _int(**kw) -> Rule:
  return Rule('int', **kw)


def _float(**kw) -> Rule:
  return Rule('float', **kw)


def _bool(**kw) -> Rule:
  return Rule('bool', **kw)


def _choice(values, **kw) -> Rule:
  return Rule('str', choices=values, **kw)


# Every field of base_config(), in its order. validate() rejects fields missing here, so a
# new field needs one line: its rule, and resumable=True if a resumed run may change it
# (schedule, logging, resources, and how samples are drawn after training).
FIELDS: dict[str, Rule] = {
    'seed': _int(ge=0),
    'data.name': _choice(_dataset_names),
    'data.data_dir': Rule('str', resumable=True),
    'data.tfds_dir': Rule('str', resumable=True),
    'data.image_size': _int(ge=1),
    'data.pixel_range': _choice(PIXEL_RANGES),
    'data.num_threads': _int(ge=0, resumable=True),
    'data.prefetch': _int(ge=0, resumable=True),
    'data.rebuild': _bool(resumable=True),
    'model.name': _choice(MODEL_NAMES),
    'model.num_objects': _int(ge=1),
    'model.min_objects': _int(ge=1),
    'model.obj_size': _int(ge=1),
    'model.bg_dim': _int(ge=1),
    'model.obj_dim': _int(ge=1),
    'model.upsample': _bool(),
    'model.obj_channels': _int(ge=1),
    'model.scene_channels': _int(ge=1),
    'model.decoder_channels': Rule('ints', length=3, ge=1),
    'model.disc_channels': Rule('ints', ge=1),
    'model.interaction_hidden': _int(ge=1),
    'model.scale_hidden': _int(ge=1),
    'model.scale_augment': _bool(),
    'model.use_interaction': _bool(),
    'model.residual': _bool(),
    'model.xy_mod': _float(),
    'model.coeff_xy': _float(),
    'model.pose_range': _float(gt=0),
    'model.pose_clamp': _float(gt=0),
    'model.absent_pose': _float(),
    'model.pooling': _choice(POOLINGS),
    'model.fixed_objects': _bool(),
    'model.eval_bg_range': _float(ge=0, resumable=True),
    'model.eval_all_objects': _bool(resumable=True),
    'model.clip_background': _bool(),
    'model.hide_absent': _bool(),
    'model.order_offset': _float(ge=0),
    'model.order_f1_sees_pose': _bool(),
    'model.order_position_on_single': _bool(),
    'model.clip_length': _int(ge=1),
    'model.rollout_steps': _int(ge=1),
    'model.past_velocities': _int(ge=1),
    'model.sample_frames': _int(ge=1, resumable=True),
    'model.sample_start': _int(ge=0, resumable=True),
    'model.reference_presence_bug': _bool(),
    'model.render_chunk': _int(ge=0, resumable=True),
    'model.compute_dtype': _choice(('float32', 'bfloat16')),
    'loss.gan': _float(ge=0),
    'loss.style_disc': _float(ge=0),
    'loss.style_gen': _float(ge=0),
    'loss.position': _float(ge=0),
    'loss.gradient_penalty': _float(ge=0),
    'optim.lr': _float(gt=0, resumable=True),
    'optim.b1': _float(ge=0, lt=1),
    'optim.b2': _float(ge=0, lt=1),
    'optim.eps': _float(ge=0),
    'optim.gen_steps': _int(ge=1),
    'train.batch_size': _int(ge=1),
    'train.num_steps': _int(ge=0, resumable=True),
    'train.log_every': _int(ge=1, resumable=True),
    'train.sample_every': _int(ge=1, resumable=True),
    'train.checkpoint_every': _int(ge=1, resumable=True),
    'train.keep_checkpoints': _int(ge=1, resumable=True),
    'train.num_grid': _int(ge=1, resumable=True),
    'train.ema_decay': _float(ge=0, lt=1),
    'train.reference_schedule': _bool(),
    'train.on_nonfinite': _choice(('stop', 'rollback'), resumable=True),
    'train.max_rollbacks': _int(ge=1, resumable=True),
    'train.checkpoint_timeout': _float(gt=0, resumable=True),
    'eval.metrics': Rule('strs', choices=_metric_names, resumable=True),
    'eval.every': _int(ge=0, resumable=True),
    'eval.split': _choice(('train', 'test'), resumable=True),
    'eval.batch_size': _int(ge=1, resumable=True),
    'eval.resolution': _int(ge=0, resumable=True),
}


def flatten(config: ml_collections.ConfigDict) -> dict:
  """{'group.field': value} of a config (top-level fields such as 'seed' as they are)."""
  flat = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      flat.update({f'{key}.{name}': field for name, field in value.items()})
    else:
      flat[key] = value
  return flat


def _scene_size(c) -> int:
  return 16 * (2 if c['model.upsample'] else 1)


def _check_objects(c):
  if c['model.min_objects'] > c['model.num_objects']:
    return (f'model.min_objects={c["model.min_objects"]}: must be <= model.num_objects '
            f'({c["model.num_objects"]})')


def _check_window(c):
  scene, factor = _scene_size(c), 2 if c['model.upsample'] else 1
  window = c['model.obj_size'] * factor
  if window > scene or (scene - window) % 2:
    return (f'model.obj_size={c["model.obj_size"]}: the object window ({window} px) must leave '
            f'an even margin inside the {scene}x{scene} scene, e.g. obj_size in '
            f'{[s for s in range(1, scene // factor + 1) if (scene - s * factor) % 2 == 0]}')


def _check_image_size(c):
  size, scene = c['data.image_size'], _scene_size(c)
  if size < scene or size & (size - 1):
    return f'data.image_size={size}: must be a power of two >= the scene size {scene}'
  if len(c['model.disc_channels']) != size.bit_length() - 3:
    return (f'model.disc_channels has {len(c["model.disc_channels"])} entries; {size}x{size} '
            f'images need {size.bit_length() - 3} (stride-2 convs down to 4x4)')


def _check_dataset(c):
  from relate_jax.data import registry  # Deferred: imports TFDS.
  try:
    registry.builder_config(c['data.name'], c['data.image_size'])
  except ValueError as e:
    return f'data.name={c["data.name"]!r} at data.image_size={c["data.image_size"]}: {e}'
  video_data = registry.entry(c['data.name']).feature == 'video'
  if video_data != (c['model.name'] == VIDEO):
    return (f'model.name={c["model.name"]!r} cannot train on data.name={c["data.name"]!r}: '
            f'{VIDEO!r} needs a clip dataset, the static models an image dataset')


def _check_rollout(c):
  if c['model.name'] == VIDEO and c['model.rollout_steps'] < c['model.clip_length'] + 2:
    return (f'model.rollout_steps={c["model.rollout_steps"]}: the video model needs >= '
            f'model.clip_length + 2 = {c["model.clip_length"] + 2} (clip starts are drawn '
            f'from 0..rollout_steps - clip_length - 2)')


# Checks across fields: (fields read, check returning a message or None). A check runs only
# when each of its fields passed its own rule.
CHECKS = (
    (('model.min_objects', 'model.num_objects'), _check_objects),
    (('model.obj_size', 'model.upsample'), _check_window),
    (('data.image_size', 'model.upsample', 'model.disc_channels'), _check_image_size),
    (('data.name', 'data.image_size', 'model.name'), _check_dataset),
    (('model.name', 'model.rollout_steps', 'model.clip_length'), _check_rollout),
)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks every field against FIELDS, then CHECKS; raises ConfigError listing each
  problem with the field and what it accepts."""
  flat = flatten(config)
  problems = [f'{name}: unknown field (not in relate_jax.config.FIELDS)'
              for name in flat if name not in FIELDS]
  problems += [f'{name}: missing (start configs from config.base_config())'
               for name in FIELDS if name not in flat]
  bad = set()
  for name, rule in FIELDS.items():
    if name in flat and not rule.accepts(flat[name]):
      problems.append(f'{name}={flat[name]!r}: must be {rule.allowed()}')
      bad.add(name)
  for fields, check in CHECKS:
    if all(f in flat and f not in bad for f in fields):
      problem = check(flat)
      if problem:
        problems.append(problem)
  if problems:
    raise ConfigError('Invalid config:\n  - ' + '\n  - '.join(problems))
