r"""Side-by-side relate-jax and the PyTorch reference on identical inputs: the forward pass
and, with --iteration, one full training iteration.

  pip install 'relate-jax[torch]'
  python -m relate_jax.compare_reference --reference_repo=/path/to/relate \
      --config=configs/clevr.py [--checkpoint=model_epoch_00000039.pth] [--batch_size=2] \
      [--iteration --config.train.reference_schedule=True] [--schedule_effect]

Imports the user's own checkout of the reference code by path (nothing of it is copied
here; its visualisation-only dependencies visdom, torchvision, matplotlib and imageio are
replaced by inert placeholders when not installed). Builds the reference model from the
config (random weights from torch.manual_seed(--seed), or --checkpoint), converts the very
same state dict with relate_jax.models.convert, draws training latents (z0, z_k, θ̂,
removed slots, selected object, clip start) with relate-jax's sampler and real images from
a seeded RNG, and prints Markdown tables of max abs differences (relate_jax.parity).

Forward (static and ordered families): the reference's modules are driven with the latents
directly (NPE / stack chain, GAN_gen, GAN_disc, its gradient_penalty with the same α, β);
rows: poses, scene tensor, images, single-object images, D outputs (logit, position, style)
on each sub-batch, spectral-norm vectors after one power iteration, the loss terms.
Forward (video family): the reference's own RELATEVideo.forward (run_model) runs with its
randomness replaced by the same latents (`reference_draws`, `replaying`) and is read with
forward hooks; rows: θ(0), the 20 rollout velocities, every frame's poses, the frames, the
single-object frame 0, D outputs on the position, fake and real inputs (called in that
order, as relate-jax's train.reference_schedule), the loss terms. The reference masks the
dynamics on the latest vx: pass --config.model.reference_presence_bug=True when some cars
are absent.

--iteration: one full training iteration from the converted weights with fresh Adam
states: 1 D update and M G updates with fresh latents each, run by relate-jax's trainer
(steps.Phases, under the config's train.reference_schedule) and by the reference's
model.forward / run_model with its randomness replaced by the same latents and
gradient-penalty noise, its own optimizers from optimizer/__init__.py, in its order ('disc',
then 'gen' × M), each update as main.trainvalidate does it (zero_grad, forward, backward of
the objective, step). The reference also runs in float64, so every gradient row shows the
reference's own float32 rounding next to the difference; Adam's first step turns
rounding-level gradients into ±lr (β1 = 0), and the tables count those elements.

--schedule_effect: relate-jax alone, on the converted weights: the gradients of one D and
one G update in the default fast schedule against train.reference_schedule, at the checkpoint's (or
torch's fresh random) spectral-norm vectors and after 20 power iterations.

Families: relate_static (128 and 256 px), relate_static_order, relate_video. The reference
runs on CPU.
"""

import contextlib
import copy
import importlib
import io
import os
import sys
import types
import warnings
from typing import NamedTuple, Sequence
from unittest import mock

import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

_REPO = flags.DEFINE_string('reference_repo', None, 'Checkout of the PyTorch reference code.')
_CONFIG = config_flags.DEFINE_config_file('config', None, 'relate-jax config to compare.',
                                          lock_config=True)
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'Reference .pth (default: random weights).')
_TRUST = flags.DEFINE_bool('trust_pickle', False, 'Allow non-tensor pickles in --checkpoint.')
_BATCH = flags.DEFINE_integer('batch_size', 2, 'Scenes per batch.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the weights, latents and real images.')
_ITERATION = flags.DEFINE_bool('iteration', False, 'Also compare one full training iteration '
                               '(1 D + M G updates with Adam; the reference in float32 and '
                               'float64).')
_SCHEDULE = flags.DEFINE_bool('schedule_effect', False,
                              "Also print the D- and G-gradient differences between "
                              "relate-jax's fast and reference spectral-norm schedules.")
flags.mark_flags_as_required(['reference_repo', 'config'])

# Imported by the reference only to draw or save pictures.
_VISUAL_ONLY = ('visdom', 'torchvision', 'matplotlib', 'imageio')
# Power iterations after which the spectral-norm vectors count as converged.
CONVERGED_ITERATIONS = 20


class _Inert(types.ModuleType):
  """Placeholder module: every attribute is a callable that does nothing."""

  def __getattr__(self, name):
    if name.startswith('__'):
      raise AttributeError(name)
    return lambda *args, **kwargs: None


def import_reference(path: str) -> types.SimpleNamespace:
  """The reference's `models`, `optimizer`, `tools.utils` and `tools.model_io` modules (and
  `path`)."""
  path = os.path.abspath(path)
  if not os.path.isfile(os.path.join(path, 'models', 'relate_static.py')):
    raise ValueError(f'{path} is not a checkout of the RELATE reference code '
                     '(no models/relate_static.py)')
  for name in _VISUAL_ONLY:
    try:
      importlib.import_module(name)
    except ImportError:
      sys.modules[name] = _Inert(name)
  sys.path.insert(0, path)
  try:
    return types.SimpleNamespace(path=path, models=importlib.import_module('models'),
                                 optimizer=importlib.import_module('optimizer'),
                                 utils=importlib.import_module('tools.utils'),
                                 model_io=importlib.import_module('tools.model_io'))
  finally:
    sys.path.remove(path)


def build_reference_model(ref, config, seed: int = 0):
  """The reference model class of config.model.name with the equivalent settings (and loss
  weights), its weights initialised by the reference's own code under
  torch.manual_seed(seed)."""
  import torch

  from relate_jax import parity
  torch.manual_seed(seed)
  np.random.seed(seed)
  model = ref.models.archs[config.model.name](**parity.reference_settings(config))
  return model.train()  # Spectral norm iterates in train mode, as during training.


def state_dict_arrays(model) -> dict[str, np.ndarray]:
  return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def load_arrays(model, arrays: dict[str, np.ndarray]) -> None:
  """Loads NumPy arrays into the reference model (every key, shapes checked by torch)."""
  import torch
  model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()},
                        strict=True)


def _spectral_buffers(module) -> dict:
  return {k: v for k, v in module.state_dict(keep_vars=True).items()
          if k.endswith(('weight_u', 'weight_v'))}


@contextlib.contextmanager
def _restoring(buffers: dict):
  """Every D call inside starts from the spectral-norm vectors held on entry."""
  saved = {k: v.detach().clone() for k, v in buffers.items()}

  def reset():
    for k, v in buffers.items():
      v.data.copy_(saved[k])

  try:
    yield reset
  finally:
    reset()


def reference_forward(ref, model, config, latents, real: np.ndarray,
                      penalty: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
  """The reference's values of relate_jax.parity.forward's quantities (same names, NHWC).

  latents: relate_jax Latents (NumPy or JAX arrays); real: (B, S, S, 3); penalty: (α, β)
  from parity.penalty_noise for `l_gradient`.
  """
  import torch

  from relate_jax import config as config_lib
  from relate_jax.models import convert

  t = lambda a: torch.from_numpy(np.ascontiguousarray(np.asarray(a), dtype=np.float32))
  nchw = lambda a: t(np.asarray(a).transpose(0, 3, 1, 2))
  nhwc = lambda x: x.detach().numpy().transpose(0, 2, 3, 1)
  b, k, _ = np.shape(latents.appearance)
  z0 = t(latents.background)
  app = t(latents.appearance).permute(1, 0, 2)  # (K, B, Nf), the reference's layout
  poses = np.asarray(latents.poses)
  tx0, ty0 = t(poses[..., 0].T[..., None]), t(poses[..., 1].T[..., None])  # (K, B, 1)
  ordered = config.model.name == config_lib.ORDERED
  out = {}
  with torch.no_grad():
    if ordered:  # RELATEStatOrder.run_model's chain on the given θ̂_1.
      xy = model.mlp_xy(torch.cat((z0, app[0], torch.cat((tx0[0], ty0[0]), 1)), 1))
      tx, ty = [0.5 * torch.tanh(xy[:, :1]) + tx0[0]], [0.5 * torch.tanh(xy[:, 1:]) + ty0[0]]
      for i in range(1, k):
        step = model.mlp_xy_rec(torch.cat((app[i - 1], z0), 1))
        tx.append(tx[-1] + 0.2 * torch.tanh(step[:, :1]))
        ty.append(ty[-1] + 0.1 + model.offset_mlp * torch.sigmoid(step[:, 1:]))
      absent = t(np.asarray(latents.present).T[..., None]) == 0
      tx = torch.where(absent, -2.0, torch.stack(tx))
      ty = torch.where(absent, -2.0, torch.stack(ty))
      select = None
    else:  # RELATEStat.run_model after sampling.
      tx, ty = tx0, ty0
      if not model.ablation_xy:
        xy = model.Gamma(torch.cat((app, tx0, ty0, 0 * tx0, 0 * ty0), 2), z0)
        tx = model.xy_mod * xy[:, :, :1] + model.coeff_xy * tx0
        ty = model.xy_mod * xy[:, :, 1:] + model.coeff_xy * ty0
      tx, ty = torch.clamp(tx, -2.0, 2.0), torch.clamp(ty, -2.0, 2.0)
      select = torch.from_numpy(np.asarray(latents.select).astype(np.int64))
    scenes = []
    hook = model.generator.upsample_net.register_forward_hook(
        lambda module, inputs, output: scenes.append(inputs[0]))
    images, single = model.generator(b, [model.zbg, model.zfg], [z0, app], tx, ty,
                                     select=select)
    hook.remove()
    out['poses'] = torch.cat((tx, ty), 2).permute(1, 0, 2).numpy()
    out['scene'] = nhwc(scenes[0])
    out['images'] = nhwc(images)
    batches = {'fake': images, 'real': nchw(real)}
    if not ordered:
      out['single'] = nhwc(single)
      batches['single'] = single
    heads = {}
    buffers = _spectral_buffers(model.discriminator)
    with _restoring(buffers) as reset:
      for name, x in batches.items():
        reset()
        _, logit, position, style = model.discriminator(x)
        heads[name] = (logit, position, style)
        out[f'd_{name}_logit'] = logit[:, 0].numpy()
        out[f'd_{name}_position'] = position.numpy()
        out[f'd_{name}_style'] = torch.cat(style, 1).numpy()
      for key, value in buffers.items():
        path = convert.locate('discriminator.' + key, config.model.name).path
        out[f'sn_{path[-2]}_{path[-1]}'] = value.detach().numpy().copy()
      bce = model.loss_bce
      fake_logit, fake_position, fake_style = heads['fake']
      real_logit, _, real_style = heads['real']
      if ordered:
        target, position = torch.cat((tx[0], ty[0]), 1), fake_position
      else:
        idx = torch.arange(b)
        target = torch.cat((tx[select, idx], ty[select, idx]), 1)
        position = heads['single'][1]
      style_sum = lambda styles, label: sum(bce(z, torch.full_like(z, label)) for z in styles)
      losses = {
          'l_disc': bce(real_logit, torch.ones_like(real_logit)),
          'l_gen': bce(fake_logit, torch.zeros_like(fake_logit)),
          'l_style_disc': style_sum(real_style, 1.0),
          'l_style_gen': style_sum(fake_style, 0.0),
          'l_xy': torch.mean((position - target) ** 2),
          'l_gen_eval': bce(fake_logit, torch.ones_like(fake_logit)),
          'l_style_gen_eval': style_sum(fake_style, 1.0),
      }
      if penalty is not None:
        reset()
        alpha, beta = penalty
        # The reference draws α then β with torch.rand; hand it ours instead.
        with torch.enable_grad(), mock.patch.object(torch, 'rand',
                                                    side_effect=[t(alpha), nchw(beta)]):
          losses['l_gradient'] = ref.utils.gradient_penalty(nchw(real), model.discriminator)
  out.update({name: np.asarray(value.item(), np.float32) for name, value in losses.items()})
  return out


# torch.rand stand-ins lie on this grid: the reference's affine maps of them (2u − 1,
# (2·x_max·u − x_max)/8, …) are then exact in float32 and float64 alike, so both of its
# runs and relate-jax see bit-identical latents.
_GRID = 2.0 ** -16


class Draws(NamedTuple):
  """What the reference's run_model (and gradient_penalty) draw in one update, in call
  order, and the latents relate-jax gets for it."""
  latents: object  # relate_jax Latents (NumPy), exactly the values the reference computes
  rand: tuple  # torch.rand results (float64 arrays on _GRID; α, β of the penalty last)
  randint: tuple  # np.random.randint results
  choice: tuple  # np.random.choice results: removed slots per sample, then selected objects


def _on_grid(u: np.ndarray) -> np.ndarray:
  return np.clip(np.floor(np.asarray(u, np.float64) / _GRID) * _GRID, 0.0, 1.0 - _GRID)


def _exact(name: str, fn, u: np.ndarray) -> np.ndarray:
  """fn(u) in float32 (as torch computes it) after checking it equals float64's result."""
  single, double = fn(u.astype(np.float32), np.float32), fn(u, np.float64)
  if not np.array_equal(single.astype(np.float64), double):
    raise ValueError(f'{name}: the reference maps torch.rand through a scale that float32 '
                     'cannot represent exactly (model.pose_range must be a short binary '
                     'fraction, e.g. 0.625)')
  return single


def reference_draws(config, latents, penalty: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> Draws:
  """The reference's random draws that reproduce `latents` (relate-jax's sampler output).

  Continuous latents are rounded onto _GRID (a change below 2e-5) so that the reference's
  arithmetic is exact; the returned Draws.latents hold the rounded values for relate-jax.
  Static and video: bg, appearance, x, y (video: 2K rows, the last K unused), then
  randint (objects removed), choice (which ones, per sample), choice (the selected
  object), video: randint (clip start s). Ordered: bg, appearance, x_1, y_1 (lower half),
  randint (stack height). penalty: (α (B, 1, 1, 1), β (B, S, S, 3)) appended to torch.rand's
  draws in NCHW, as gradient_penalty draws them after run_model's.
  """
  import jax

  from relate_jax import config as config_lib
  from relate_jax.models import Latents

  m = config.model
  lat = jax.device_get(latents)
  b, k, nf = np.shape(lat.appearance)
  r, x_max = m.pose_range, 8.0 * m.pose_range
  present = np.asarray(lat.present) > 0
  affine = lambda scale, offset: (lambda u, t: (t(scale) * u + t(offset)) / t(8.0))
  u_bg = _on_grid((np.asarray(lat.background, np.float64) + 1) / 2)
  u_app = _on_grid((np.asarray(lat.appearance, np.float64) + 1) / 2)
  unit = lambda u, t: t(2.0) * u - t(1.0)
  background, appearance = _exact('z0', unit, u_bg), _exact('z', unit, u_app)
  poses = np.array(lat.poses, np.float32)
  if m.name == config_lib.ORDERED:
    u_x = _on_grid((poses[:, 0, 0] + r) / (2 * r)).reshape(1, b, 1)
    u_y = _on_grid(-poses[:, 0, 1] / r).reshape(1, b, 1)
    poses[:, 0, 0] = _exact('x', affine(2 * x_max, -x_max), u_x).ravel()
    poses[:, 0, 1] = _exact('y', affine(-x_max, 0.0), u_y).ravel()
    randint, choice = (present.sum(1),), ()
  else:
    rows = 2 * k if m.name == config_lib.VIDEO else k
    u_xy = np.full((2, rows, b, 1), 0.5)  # Absent slots: drawn, then overwritten with −2.
    u_xy[:, :k, :, 0] = np.where(present.T, _on_grid((poses.transpose(2, 1, 0) + r) / (2 * r)),
                                 0.5)
    xy = _exact('θ̂', affine(2 * x_max, -x_max), u_xy)
    poses = np.where(present[..., None], xy[:, :k, :, 0].transpose(2, 1, 0), m.absent_pose)
    u_x, u_y = u_xy
    removed = tuple(np.flatnonzero(~row) for row in present)
    randint = (np.asarray([len(x) for x in removed]),)
    if m.name == config_lib.VIDEO:
      randint += (np.array(lat.start),)
    choice = removed + tuple(int(s) for s in np.asarray(lat.select))
  rand = (u_bg, u_app.reshape(1, b, k * nf), u_x, u_y)
  if penalty is not None:
    alpha, beta = penalty
    rand += (np.asarray(alpha, np.float64), np.asarray(beta, np.float64).transpose(0, 3, 1, 2))
  given = dict(background=background, appearance=appearance,
               poses=poses.astype(np.float32), present=np.asarray(lat.present),
               select=np.asarray(lat.select), start=lat.start)
  return Draws(Latents(**given), rand, randint, choice)


def _shape_of(args) -> tuple[int, ...]:
  shape = args[0] if len(args) == 1 and not isinstance(args[0], int) else args
  return tuple(int(s) for s in shape)


@contextlib.contextmanager
def replaying(draws: Draws, dtype):
  """torch.rand, np.random.randint and np.random.choice return `draws` in call order
  (torch tensors of `dtype`), each call checked against what it was meant to return;
  raises RuntimeError when the reference draws anything else."""
  import torch
  queues = {'torch.rand': list(draws.rand), 'np.random.randint': list(draws.randint),
            'np.random.choice': list(draws.choice)}

  def fail(name, why):
    raise RuntimeError(f'the reference called {name} {why}; is this checkout the published '
                       'RELATE code?')

  def replay(name, check, wrap=lambda v: v):
    def fake(*args, **kwargs):
      if not queues[name]:
        fail(name, f'more often than expected (args {args})')
      value = queues[name].pop(0)
      if not check(value, *args, **kwargs):
        fail(name, f'with {args} {kwargs}; expected to return {value!r}')
      return wrap(value)
    return fake

  def check_rand(value, *args, **kwargs):
    return _shape_of(args) == np.shape(value)

  def check_randint(value, low, high, size):
    return len(value) == size and np.all((low <= value) & (value < high))

  def check_choice(value, a, size=None, replace=True):
    if isinstance(a, int):  # Slots to remove: a sample of `size` of range(a).
      return not replace and len(value) == size and np.all(value < a)
    return size is None and value in list(a)

  np_dtype = np.float64 if dtype == torch.float64 else np.float32
  with mock.patch.object(torch, 'rand', replay('torch.rand', check_rand,
                                                lambda v: torch.from_numpy(v.astype(np_dtype)))), \
       mock.patch.object(np.random, 'randint', replay('np.random.randint', check_randint)), \
       mock.patch.object(np.random, 'choice', replay('np.random.choice', check_choice)):
    yield
  left = {name: len(q) for name, q in queues.items() if q}
  if left:
    fail(', '.join(left), f'fewer times than expected ({left} draws left)')


@contextlib.contextmanager
def _quiet():
  """The reference prints its loss weights and solver settings, and torch warns about its
  grid_sample defaults."""
  with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
    warnings.simplefilter('ignore', UserWarning)
    yield


def _flax_named(arrays: dict[str, np.ndarray], family: str, prefix: str) -> dict:
  """Torch-named arrays re-laid out as relate-jax's, named `prefix` + their path inside the
  player's collection ('conv2/kernel'), dtype kept (float64 runs stay float64)."""
  from relate_jax.models import convert
  out = {}
  for key, value in arrays.items():
    target = convert.locate(key, family)
    out[prefix + '/'.join(target.path[2:])] = target.relayout(np.asarray(value))
  return out


def _spectral(model, family: str) -> dict:
  vectors = {'discriminator.' + k: v.detach().numpy().copy()
             for k, v in _spectral_buffers(model.discriminator).items()}
  return _flax_named(vectors, family, 'sn/')


def reference_video_forward(ref, model, config, draws: Draws, real: np.ndarray) -> dict:
  """The reference's values of relate_jax.parity.forward's video quantities (same names,
  NHWC): one RELATEVideo.forward in the D phase on `draws` (reference_draws), read with
  forward hooks. real: clips (B, T, S, S, 3)."""
  import torch
  calls = {'Gamma': [], 'poses': [], 'generator': [], 'discriminator': []}
  hooks = [model.Gamma.register_forward_hook(lambda m, i, o: calls['Gamma'].append(o)),
           model.generator.register_forward_pre_hook(
               lambda m, args: calls['poses'].append(torch.cat(args[3:5], 2))),
           model.generator.register_forward_hook(lambda m, i, o: calls['generator'].append(o)),
           model.discriminator.register_forward_hook(
               lambda m, i, o: calls['discriminator'].append(o))]
  try:
    with torch.no_grad(), replaying(draws, torch.float32), _quiet():
      preds, _ = model(gt_images=torch.from_numpy(real.transpose(0, 1, 4, 2, 3).copy()),
                       trainmode='train', it=0, gen=False)
  finally:
    for hook in hooks:
      hook.remove()
  nhwc = lambda x: x.numpy().transpose(0, 2, 3, 1)
  velocities = torch.stack([v[..., :2] for v in calls['Gamma']])  # (steps, K, B, 2)
  out = {'poses': torch.cat((model.tx, model.ty), 2).permute(1, 0, 2).numpy(),
         'velocities': velocities.permute(2, 0, 1, 3).numpy(),
         'frame_poses': torch.stack(calls['poses']).permute(2, 0, 1, 3).numpy(),
         'frames': preds['gen_images'].numpy().transpose(0, 1, 3, 4, 2),
         'single': nhwc(calls['generator'][0][1])}
  outputs = dict(zip(('position', 'fake', 'real'), calls['discriminator']))
  for name, (_, logit, position, style) in outputs.items():
    out.update({f'd_{name}_logit': logit[:, 0].numpy(), f'd_{name}_position': position.numpy(),
                f'd_{name}_style': torch.cat(style, 1).numpy()})
  out.update({k.replace('sn/', 'sn_').replace('/', '_'): v
              for k, v in _spectral(model, config.model.name).items()})
  _, fake_logit, _, fake_style = outputs['fake']
  bce = model.loss_bce
  losses = {name: preds[name] for name in ('l_disc', 'l_gen', 'l_style_disc', 'l_style_gen',
                                           'l_xy')}
  losses['l_gen_eval'] = bce(fake_logit, torch.ones_like(fake_logit))
  losses['l_style_gen_eval'] = sum(bce(z, torch.ones_like(z)) for z in fake_style)
  out.update({name: np.asarray(value.item(), np.float32) for name, value in losses.items()})
  return out


def _reference_metrics(preds: dict, update: str) -> dict[str, float]:
  """The reference's loss terms of one update under relate-jax's metric names."""
  v = {k: float(t) for k, t in preds.items() if k != 'gen_images'}
  if update == 'gen':
    return {'g_gan': v['l_gen_eval'], 'g_style': v['l_style_gen_eval'],
            'g_position': v['l_xy'], 'g_total': v['objective']}
  out = {'d_gan': v['l_disc'] + v['l_gen'], 'd_style': v['l_style_disc'] + v['l_style_gen'],
         'd_position': v['l_xy'], 'd_total': v['objective']}
  if 'l_gradient' in v:
    out['d_penalty'] = v['l_gradient']
  return out


@contextlib.contextmanager
def _default_dtype(dtype):
  import torch
  saved = torch.get_default_dtype()
  torch.set_default_dtype(dtype)
  try:
    yield
  finally:
    torch.set_default_dtype(saved)


def reference_updates(ref, model, config, draws: Sequence[Draws], real: np.ndarray,
                      names: Sequence[str] | None = None,
                      float64: bool = False) -> tuple[list[str], list[dict[str, np.ndarray]]]:
  """Reference training updates from a copy of `model` with fresh Adam states.

  The optimizers are the reference's own (optimizer.init_optimizer with the config's lr and
  betas, torch's default eps). Each update is one optimizer step as main.trainvalidate
  makes it: zero_grad, model.forward in train mode (its run_model, drawing `draws[i]`
  through `replaying`), backward of the objective, step. names: 'disc' / 'gen' per update;
  default: the reference's iteration in its order (the optimizers sorted by name, each
  num_iter times: 'disc', then 'gen' × M). real: D's real input in torch layout,
  (B, 3, S, S) images or (B, T, 3, S, S) clips. float64: the copy runs in float64 (draws and
  default dtype too).

  Returns (names, records): records as relate_jax.parity.train_updates' ('grad/<leaf>',
  'param/<leaf>', 'sn/<layer>/<u|v>', 'loss/<metric>'), in relate-jax's layout.
  """
  import torch

  from relate_jax.models import convert
  o = config.optim
  if o.eps != 1e-8:
    raise ValueError(f"the reference's Adam uses torch's default eps 1e-8; optim.eps={o.eps}")
  dtype = torch.float64 if float64 else torch.float32
  model = copy.deepcopy(model).to(dtype)
  family = config.model.name
  solver = dict(lr=o.lr, betas=[o.b1, o.b2],
                group_params={'disc': {'num_iter': 1}, 'gen': {'num_iter': o.gen_steps}})
  with _quiet():
    optimizers, _ = ref.optimizer.init_optimizer(model, None, **solver)
  if names is None:
    names = [opt.name for opt in optimizers for _ in range(opt.num_iter)]
  if len(names) != len(draws):
    raise ValueError(f'{len(draws)} sets of draws for the {len(names)} updates {names}')
  by_name = {opt.name: opt for opt in optimizers}
  keys = convert.optimizer_param_keys(list(model.state_dict()), family)
  params = dict(model.named_parameters())
  x = torch.from_numpy(np.ascontiguousarray(real, np.float64 if float64 else np.float32))
  records = []
  with _default_dtype(dtype):
    for name, draw in zip(names, draws):
      optimizer = by_name[name]
      optimizer.zero_grad()
      with replaying(draw, dtype), _quiet():
        preds, objective = model(gt_images=x, trainmode='train', it=0, gen=name == 'gen')
      objective.backward()
      grads = {key: (torch.zeros_like(params[key]) if params[key].grad is None
                     else params[key].grad).numpy().copy() for key in keys[name]}
      optimizer.step()
      record = _flax_named(grads, family, 'grad/')
      record.update(_flax_named({key: params[key].detach().numpy().copy() for key in keys[name]},
                                family, 'param/'))
      record.update(_spectral(model, family))
      record.update({f'loss/{k}': np.asarray(v)
                     for k, v in _reference_metrics(preds, name).items()})
      records.append(record)
  return list(names), records


def reference_and_variables(ref, config, seed: int = 0, checkpoint: str | None = None,
                            trust_pickle: bool = False):
  """The reference model (random weights from `seed`, or `checkpoint`) and the very same
  weights converted into relate-jax variables."""
  from relate_jax import reference_checkpoint
  from relate_jax.models import convert

  model = build_reference_model(ref, config, seed)
  if checkpoint:
    arrays = reference_checkpoint.load_torch_file(checkpoint, trust_pickle)
    arrays = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in arrays.items()}
    load_arrays(model, arrays)
  variables = convert.from_torch_state_dict(state_dict_arrays(model), config.model.name,
                                            reference_checkpoint.expected_variables(config))
  return model, variables


def real_batch(config, batch_size: int, seed: int) -> np.ndarray:
  """Uniform [−1, 1) 'real' images (B, S, S, 3), or clips (B, T, S, S, 3) for the video
  family, from numpy's default_rng(seed)."""
  from relate_jax import config as config_lib
  size = config.data.image_size
  clip = (config.model.clip_length,) if config.model.name == config_lib.VIDEO else ()
  shape = (batch_size,) + clip + (size, size, 3)
  return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def d_inputs(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """A real batch as relate-jax's D input (frames on channels) and as the reference's
  (NCHW; clips (B, T, 3, S, S))."""
  from relate_jax.models.discriminator import frames_to_channels
  if real.ndim == 5:
    return np.asarray(frames_to_channels(real)), real.transpose(0, 1, 4, 2, 3)
  return real, real.transpose(0, 3, 1, 2)


def compare(ref, config, batch_size: int = 2, seed: int = 0,
            checkpoint: str | None = None, trust_pickle: bool = False):
  """(rows, reference values, relate-jax values) of one forward comparison."""
  import jax

  from relate_jax import config as config_lib
  from relate_jax import parity
  from relate_jax.models import sample_latents

  model, variables = reference_and_variables(ref, config, seed, checkpoint, trust_pickle)
  key_latents, key_penalty = jax.random.split(jax.random.key(seed))
  latents = jax.device_get(sample_latents(key_latents, config.model, batch_size, train=True))
  real = real_batch(config, batch_size, seed)
  if config.model.name == config_lib.VIDEO:
    draws = reference_draws(config, latents)
    ours = parity.forward(config, variables, draws.latents, real)
    theirs = reference_video_forward(ref, model, config, draws, real)
    return parity.compare(theirs, ours), theirs, ours
  penalty_key = key_penalty if config.loss.gradient_penalty else None
  ours = parity.forward(config, variables, latents, real, penalty_key)
  penalty = None if penalty_key is None else parity.penalty_noise(penalty_key, real.shape)
  theirs = reference_forward(ref, model, config, latents, real, penalty)
  return parity.compare(theirs, ours), theirs, ours


def iteration_inputs(config, batch_size: int, seed: int):
  """(key of the updates, D's real input for relate-jax and for the reference, Draws per
  update) of one training iteration: fresh latents for the D update and each of the M G
  updates, the D update's gradient-penalty noise from the key (parity.update_penalty_key)."""
  import jax

  from relate_jax import parity
  from relate_jax.models import sample_latents

  keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), 1), config.optim.gen_steps + 2)
  ours, theirs = d_inputs(real_batch(config, batch_size, seed + 1))
  penalty = None
  if config.loss.gradient_penalty:
    penalty = parity.penalty_noise(parity.update_penalty_key(keys[0]), ours.shape)
  draws = [reference_draws(config, jax.device_get(sample_latents(k, config.model, batch_size,
                                                                 train=True)),
                           penalty if i == 0 else None) for i, k in enumerate(keys[1:])]
  return keys[0], ours, theirs, draws


def compare_iteration(ref, model, variables: dict, config, batch_size: int = 2, seed: int = 0):
  """One full training iteration on both sides (the module docstring); per update
  (label 'D', 'G1', …, parity.LeafRow rows, parity.Row rows of spectral vectors and losses)."""
  from relate_jax import parity

  key, ours_real, torch_real, draws = iteration_inputs(config, batch_size, seed)
  names, theirs = reference_updates(ref, model, config, draws, torch_real)
  expected = ['disc'] + ['gen'] * config.optim.gen_steps
  if names != expected:
    raise RuntimeError(f"the reference's iteration runs {names}, relate-jax's {expected}")
  _, theirs64 = reference_updates(ref, model, config, draws, torch_real, names, float64=True)
  ours = parity.train_updates(config, variables, [(n, d.latents) for n, d in zip(names, draws)],
                              ours_real, key)
  labels = ['D'] + [f'G{i + 1}' for i in range(config.optim.gen_steps)]
  return [(label,) + parity.compare_updates(t, t64, o, config.optim.lr)
          for label, t, t64, o in zip(labels, theirs, theirs64, ours)]


def schedule_effect(variables: dict, config, batch_size: int = 2, seed: int = 0):
  """relate-jax's D and G gradients of one update each from `variables`, fast schedule
  against train.reference_schedule, at the given spectral-norm vectors and after
  CONVERGED_ITERATIONS more power iterations: [(label, rows)]."""
  from relate_jax import parity

  key, real, _, draws = iteration_inputs(config, batch_size, seed)
  converged = parity.iterate_spectral(config, variables, CONVERGED_ITERATIONS)
  return [(f'{player} gradients, {label}',
           parity.schedule_effect(config, v, name, draws[i].latents, real, key))
          for label, v in (('given u, v', variables),
                           (f'after {CONVERGED_ITERATIONS} power iterations', converged))
          for i, (player, name) in enumerate((('D', 'disc'), ('G', 'gen')))]


def _summary(leaves, rows) -> str:
  sn = [r.rel_diff for r in rows if r.name.startswith('sn/')]
  loss = [r.rel_diff for r in rows if r.name.startswith('loss/')]
  ratio = max(r.ratio for r in leaves)
  return (f'max gradient ratio |ours − ref32| / |ref64 − ref32| {ratio:.2f}; '
          f'±lr flips: {sum(r.flips for r in leaves)} elements in '
          f'{sum(r.flips > 0 for r in leaves)} of {len(leaves)} leaves; spectral vectors max rel '
          f'diff {max(sn):.2e}; losses max rel diff {max(loss):.2e}')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # Both sides on CPU; the reference also moves tensors to CUDA when it sees one.
  os.environ['CUDA_VISIBLE_DEVICES'] = ''
  os.environ['JAX_PLATFORMS'] = 'cpu'
  from relate_jax import config as config_lib
  from relate_jax import parity
  from relate_jax import reference_checkpoint
  config = _CONFIG.value
  try:
    import torch
  except ImportError:
    sys.exit(f'error: {reference_checkpoint.INSTALL_HINT}')
  try:
    config_lib.validate(config)
    parity.reference_settings(config)
    ref = import_reference(_REPO.value)
  except ValueError as e:
    sys.exit(f'error: {e}')
  seed, batch = _SEED.value, _BATCH.value
  try:
    rows, _, _ = compare(ref, config, batch, seed, _CHECKPOINT.value, _TRUST.value)
    if _ITERATION.value or _SCHEDULE.value:
      model, variables = reference_and_variables(ref, config, seed, _CHECKPOINT.value,
                                                 _TRUST.value)
  except reference_checkpoint.ConvertError as e:
    sys.exit(f'error: {e}')
  weights = _CHECKPOINT.value or f'random reference weights (torch.manual_seed({seed}))'
  print(f'relate-jax vs reference: {config.model.name}, {config.data.image_size} px, batch '
        f'{batch}, {weights}, torch {torch.__version__}, CPU\n')
  if config.model.name == config_lib.VIDEO and not config.model.reference_presence_bug:
    print('Note: relate-jax corrects the reference\'s presence mask of the dynamics; with absent '
          'cars pass --config.model.reference_presence_bug=True to compare.\n')
  print('## Forward (float32)\n')
  print(parity.format_table(rows))
  if _ITERATION.value:
    schedule = 'reference' if config.train.reference_schedule else 'fast (default)'
    print(f'\n## One training iteration: 1 D + {config.optim.gen_steps} G updates with Adam '
          f'(lr {config.optim.lr}, betas ({config.optim.b1}, {config.optim.b2})); relate-jax '
          f'in the {schedule} spectral-norm schedule; reference in float32 (ref32) and '
          'float64 (ref64)')
    for label, leaves, other in compare_iteration(ref, model, variables, config, batch, seed):
      print(f'\n### {label} update: {_summary(leaves, other)}\n')
      print(parity.format_leaf_table(leaves) + '\n')
      print(parity.format_table(other))
  if _SCHEDULE.value:
    print('\n## relate-jax: gradients of one D and one G update, fast schedule vs reference '
          'schedule')
    for label, effect in schedule_effect(variables, config, batch, seed):
      worst = max(effect, key=lambda r: r.rel_diff)
      print(f'\n### {label}: max rel diff {worst.rel_diff:.2e} ({worst.name})\n')
      print(parity.format_table(effect))


if __name__ == '__main__':
  app.run(main)
