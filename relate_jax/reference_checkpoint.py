"""Reference PyTorch checkpoints into relate-jax workdirs (relate_jax.convert_torch's work).

torch is imported only when a .pth file is read (`pip install 'relate-jax[torch]'`); tensors
come back as NumPy arrays, re-laid out by relate_jax.models.convert.
"""

import functools
import os
import pickle
from typing import Any

from absl import logging

INSTALL_HINT = ("reading PyTorch checkpoints needs torch: pip install 'relate-jax[torch]' "
                '(or pip install torch; the CPU build is enough)')


class ConvertError(Exception):
  """A problem with the user's files; the command-line tools print it without a traceback."""


def optimizer_path(checkpoint_path: str) -> str:
  """The reference writes the Adam states beside the model as <name>_opt.pth."""
  return os.path.splitext(checkpoint_path)[0] + '_opt.pth'


def load_torch_file(path: str, trust_pickle: bool = False) -> Any:
  """torch.load on CPU with tensors turned into NumPy arrays (nested dicts/lists kept).

  weights_only=True first; a file holding other objects is refused unless trust_pickle.
  """
  try:
    import torch
  except ImportError:
    raise ConvertError(INSTALL_HINT) from None
  if not os.path.isfile(path):
    raise ConvertError(f'{path}: no such file')
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except pickle.UnpicklingError as e:
    if not trust_pickle:
      # torch's message is a page long; after 'WeightsUnpickler error:' it names the object.
      detail = str(e).split('Unpickler error:', 1)[-1].split('Check the documentation')[0]
      reason = ' '.join(detail.split()).split('. ')[0] or 'not a plain tensor file'
      raise ConvertError(f'{path} holds objects other than tensors ({reason}). If you trust the '
                         'file, rerun with --trust_pickle.') from None
    obj = torch.load(path, map_location='cpu', weights_only=False)
  return _to_numpy(obj, torch)


def _to_numpy(obj, torch):
  if isinstance(obj, torch.Tensor):
    return obj.detach().cpu().numpy()
  if isinstance(obj, dict):
    return {k: _to_numpy(v, torch) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_to_numpy(v, torch) for v in obj)
  return obj


def _with_adam(opt_state, count: int, mu, nu):
  """`opt_state` (optax.adam) with its ScaleByAdamState's count and moments replaced."""
  import jax
  import jax.numpy as jnp
  import optax

  def replace(s):
    if isinstance(s, optax.ScaleByAdamState):
      mu_ = jax.tree.map(lambda p, m: jnp.asarray(m, p.dtype), s.mu, mu)
      nu_ = jax.tree.map(lambda p, m: jnp.asarray(m, p.dtype), s.nu, nu)
      return s._replace(count=jnp.asarray(count, s.count.dtype), mu=mu_, nu=nu_)
    return s

  return jax.tree.map(replace, opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))


def _check_hyperparams(config, name: str, hyper: dict) -> None:
  o = config.optim
  ours = {'lr': o.lr, 'betas': (o.b1, o.b2), 'eps': o.eps, 'weight_decay': 0.0}
  for key, theirs in hyper.items():
    theirs, mine = (tuple(theirs) if isinstance(theirs, (list, tuple)) else theirs), ours[key]
    if theirs != mine:
      logging.warning('The reference %s Adam ran with %s=%s; this config has %s.', name, key,
                      theirs, mine)


def expected_variables(config) -> dict:
  """Shapes of the variables `config` builds, in convert.from_torch_state_dict's layout
  {'generator': {'params'}, 'discriminator': {'params', 'spectral'}} (nothing allocated)."""
  import jax

  from relate_jax import steps
  state = jax.eval_shape(functools.partial(steps.init_state, config),
                         steps.stream_keys(config.seed)['init'])
  return {'generator': {'params': state.g_params},
          'discriminator': {'params': state.d_params, 'spectral': state.spectral}}


def convert(checkpoint_path: str, config, workdir: str, trust_pickle: bool = False):
  """Writes the converted TrainState and config.json into `workdir`; returns the state."""
  import jax
  import jax.numpy as jnp

  from relate_jax import checkpoint
  from relate_jax import config as config_lib
  from relate_jax import steps
  from relate_jax import train
  from relate_jax.models import convert as convert_lib

  config_lib.validate(config)
  name = config.model.name
  state_dict = load_torch_file(checkpoint_path, trust_pickle)
  if not isinstance(state_dict, dict) or not all(hasattr(v, 'shape') for v in state_dict.values()):
    raise ConvertError(f'{checkpoint_path} is not a state dict (a mapping of names to tensors)')
  logging.info('Read %d entries from %s', len(state_dict), checkpoint_path)

  try:
    variables = convert_lib.from_torch_state_dict(state_dict, name, expected_variables(config))
  except convert_lib.ConversionError as e:
    raise ConvertError(f'{checkpoint_path}: {e}') from None
  g_params = jax.tree.map(jnp.asarray, variables['generator']['params'])
  d_params = jax.tree.map(jnp.asarray, variables['discriminator']['params'])
  spectral = jax.tree.map(jnp.asarray, variables['discriminator']['spectral'])

  optimizer = steps.make_optimizer(config)
  g_opt, d_opt, step = optimizer.init(g_params), optimizer.init(d_params), 0
  opt_path = optimizer_path(checkpoint_path)
  if os.path.isfile(opt_path):
    opt = load_torch_file(opt_path, trust_pickle)
    if not isinstance(opt, dict) or set(opt) != {'disc', 'gen'}:
      raise ConvertError(f"{opt_path}: expected the reference's {{'disc', 'gen'}} Adam states")
    keys = convert_lib.optimizer_param_keys(list(state_dict), name)
    try:
      d_adam = convert_lib.from_torch_adam(opt['disc'], keys['disc'], state_dict, name)
      g_adam = convert_lib.from_torch_adam(opt['gen'], keys['gen'], state_dict, name)
    except convert_lib.ConversionError as e:
      raise ConvertError(f'{opt_path}: {e}') from None
    d_opt = _with_adam(d_opt, d_adam.count, d_adam.mu['discriminator']['params'],
                       d_adam.nu['discriminator']['params'])
    g_opt = _with_adam(g_opt, g_adam.count, g_adam.mu['generator']['params'],
                       g_adam.nu['generator']['params'])
    _check_hyperparams(config, 'disc', d_adam.hyperparams)
    _check_hyperparams(config, 'gen', g_adam.hyperparams)
    step = d_adam.count
    if step and g_adam.count != step * config.optim.gen_steps:
      logging.warning('The reference made %d generator updates in %d iterations; this config '
                      'has optim.gen_steps=%d.', g_adam.count, step, config.optim.gen_steps)
    logging.info('Adam states from %s: %d D and %d G updates', opt_path, d_adam.count,
                 g_adam.count)
  else:
    logging.info('No %s: fresh Adam states, step 0.', opt_path)

  state = steps.TrainState(
      step=jnp.asarray(step, jnp.int32), g_params=g_params, d_params=d_params,
      spectral=spectral, g_opt=g_opt, d_opt=d_opt,
      ema_params=g_params if config.train.ema_decay > 0 else None)
  os.makedirs(workdir, exist_ok=True)
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)  # Orbax logs every stage of a save at INFO.
  mgr = checkpoint.manager(workdir, config.train.keep_checkpoints)
  try:
    if mgr.latest_step() is not None:
      raise ConvertError(f'{workdir} already holds checkpoints (step {mgr.latest_step()}); '
                         'convert into a new workdir')
    train.write_config(config, workdir)
    checkpoint.save(mgr, state, None, force=True)
  finally:
    mgr.close()
    logging.set_verbosity(verbosity)
  logging.info('Wrote %s at step %d (%d generator-side, %d discriminator parameters).',
               os.path.join(workdir, 'checkpoints'), step,
               sum(x.size for x in jax.tree.leaves(g_params)),
               sum(x.size for x in jax.tree.leaves(d_params)))
  if config.data.pixel_range != 'reference':
    logging.info('The reference trained D on real images in [-0.5, 0.5]; to continue its '
                 'training unchanged pass --config.data.pixel_range=reference.')
  return state
