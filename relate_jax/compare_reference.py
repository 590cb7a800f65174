r"""Side-by-side forward pass of relate-jax and the PyTorch reference on identical inputs.

  pip install 'relate-jax[torch]'
  python -m relate_jax.compare_reference --reference_repo=/path/to/relate \
      --config=configs/clevr.py [--checkpoint=model_epoch_00000039.pth] [--batch_size=2]

Imports the user's own checkout of the reference code by path (nothing of it is copied
here; its visualisation-only dependencies visdom, torchvision, matplotlib and imageio are
replaced by inert placeholders when not installed). Builds the reference model from the
config (random weights from torch.manual_seed(--seed), or --checkpoint), converts the very
same state dict with relate_jax.models.convert, draws one batch of training latents (z0,
z_k, θ̂, removed slots, selected object) with relate-jax's sampler and real images from a
seeded RNG, and drives the reference's modules with them directly (NPE / stack chain,
GAN_gen, GAN_disc, its gradient_penalty with the same α, β) rather than `run_model`,
which samples internally. Prints a Markdown table of max abs differences: poses, scene
tensor, images, single-object images, D outputs (logit, position, style) on each sub-batch,
spectral-norm vectors after one power iteration, and the loss terms (relate_jax.parity).

Families: relate_static (128 and 256 px) and relate_static_order. The reference runs on CPU.
`compare` returns the rows with both sides' values; further checks (e.g. one full training
iteration) add their own rows to the same table.
"""

import contextlib
import importlib
import os
import sys
import types
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
flags.mark_flags_as_required(['reference_repo', 'config'])

# Imported by the reference only to draw or save pictures.
_VISUAL_ONLY = ('visdom', 'torchvision', 'matplotlib', 'imageio')


class _Inert(types.ModuleType):
  """Placeholder module: every attribute is a callable that does nothing."""

  def __getattr__(self, name):
    if name.startswith('__'):
      raise AttributeError(name)
    return lambda *args, **kwargs: None


def import_reference(path: str) -> types.SimpleNamespace:
  """The reference's `models`, `tools.utils` and `tools.model_io` modules (and `path`)."""
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
                                 utils=importlib.import_module('tools.utils'),
                                 model_io=importlib.import_module('tools.model_io'))
  finally:
    sys.path.remove(path)


def build_reference_model(ref, config, seed: int = 0):
  """The reference model class of config.model.name with the equivalent settings, its
  weights initialised by the reference's own code under torch.manual_seed(seed)."""
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


def compare(ref, config, batch_size: int = 2, seed: int = 0,
            checkpoint: str | None = None, trust_pickle: bool = False):
  """(rows, reference values, relate-jax values) of one forward comparison."""
  import jax

  from relate_jax import parity
  from relate_jax import reference_checkpoint
  from relate_jax.models import convert
  from relate_jax.models import sample_latents

  model = build_reference_model(ref, config, seed)
  if checkpoint:
    arrays = reference_checkpoint.load_torch_file(checkpoint, trust_pickle)
    arrays = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in arrays.items()}
    load_arrays(model, arrays)
  variables = convert.from_torch_state_dict(state_dict_arrays(model), config.model.name,
                                            reference_checkpoint.expected_variables(config))
  key_latents, key_penalty = jax.random.split(jax.random.key(seed))
  latents = jax.device_get(sample_latents(key_latents, config.model, batch_size, train=True))
  size = config.data.image_size
  real = np.random.default_rng(seed).uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32)
  penalty_key = key_penalty if config.loss.gradient_penalty else None
  ours = parity.forward(config, variables, latents, real, penalty_key)
  penalty = None if penalty_key is None else parity.penalty_noise(penalty_key, real.shape)
  theirs = reference_forward(ref, model, config, latents, real, penalty)
  return parity.compare(theirs, ours), theirs, ours


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # Both sides in float32 on CPU; the reference also moves tensors to CUDA when it sees one.
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
  try:
    rows, _, _ = compare(ref, config, _BATCH.value, _SEED.value, _CHECKPOINT.value, _TRUST.value)
  except reference_checkpoint.ConvertError as e:
    sys.exit(f'error: {e}')
  weights = _CHECKPOINT.value or f'random reference weights (torch.manual_seed({_SEED.value}))'
  print(f'relate-jax vs reference: {config.model.name}, {config.data.image_size} px, batch '
        f'{_BATCH.value}, {weights}, torch {torch.__version__}, float32 on CPU\n')
  print(parity.format_table(rows))


if __name__ == '__main__':
  app.run(main)
