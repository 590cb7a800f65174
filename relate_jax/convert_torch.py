r"""Converts a reference PyTorch checkpoint into a relate-jax workdir.

  pip install 'relate-jax[torch]'
  python -m relate_jax.convert_torch --checkpoint=exp/model_epoch_00000039.pth \
      --config=configs/clevr.py --workdir=workdirs/clevr_from_torch

Reads the state dict (torch.load(weights_only=True): tensors only, anything else is refused
unless --trust_pickle) and, when `model_epoch_…_opt.pth` lies beside it, both Adam states:
moments and step counts, so training continues where the reference stopped. Writes an
Orbax checkpoint at the reference's iteration count (its D optimizer's step; 0 without an
optimizer state) and config.json into --workdir, which `relate_jax.main` (resume),
`relate_jax.evaluate`, `relate_jax.sample` and relate_jax.api then load as if trained here.

Every key is consumed and every shape checked against the model `--config` builds;
unknown keys, missing parameters and mismatches are listed by name. Legacy (torch ≤ 1.5,
non-zip) checkpoints load too. The reference fed D real images in [−0.5, 0.5]: continue its
training with --config.data.pixel_range=reference.
"""

import functools
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from relate_jax.torch_io import ConvertError, load_torch_file, optimizer_path

_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'Reference model_epoch_XXXXXXXX.pth.')
_CONFIG = config_flags.DEFINE_config_file('config', None, 'relate-jax config of the same model.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'New relate-jax workdir to write.')
_TRUST = flags.DEFINE_bool('trust_pickle', False,
                           'Allow arbitrary pickled objects (runs code from the file: only for '
                           'files you trust).')
flags.mark_flags_as_required(['checkpoint', 'config', 'workdir'])

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

  abstract = jax.eval_shape(functools.partial(steps.init_state, config),
                            steps.stream_keys(config.seed)['init'])
  expected = {'generator': {'params': abstract.g_params},
              'discriminator': {'params': abstract.d_params, 'spectral': abstract.spectral}}
  try:
    variables = convert_lib.from_torch_state_dict(state_dict, name, expected)
  except convert_lib.ConversionError as e:
    raise ConvertError(f'{checkpoint_path} does not fit {name} as configured: {e}') from None
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
  mgr = checkpoint.manager(workdir, config.train.keep_checkpoints)
  try:
    if mgr.latest_step() is not None:
      raise ConvertError(f'{workdir} already holds checkpoints (step {mgr.latest_step()}); '
                         'convert into a new workdir')
    train.write_config(config, workdir)
    checkpoint.save(mgr, state, None, force=True)
  finally:
    mgr.close()
  logging.info('Wrote %s at step %d (%d generator-side, %d discriminator parameters).',
               os.path.join(workdir, 'checkpoints'), step,
               sum(x.size for x in jax.tree.leaves(g_params)),
               sum(x.size for x in jax.tree.leaves(d_params)))
  if config.data.pixel_range != 'reference':
    logging.info('The reference trained D on real images in [-0.5, 0.5]; to continue its '
                 'training unchanged pass --config.data.pixel_range=reference.')
  return state


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from relate_jax import config as config_lib
  try:
    config_lib.validate(_CONFIG.value)
  except ValueError as e:
    sys.exit(f'error: {e}')
  try:
    convert(_CHECKPOINT.value, _CONFIG.value, _WORKDIR.value, _TRUST.value)
  except ConvertError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main)
