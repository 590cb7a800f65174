"""Reference PyTorch checkpoints (`model_epoch_*.pth` state dicts, `_opt.pth` Adam states)
to Flax variables and optax Adam moments.

Re-lays out arrays only (REFERENCE §3.1-3.3); reading the .pth files (torch.load) is
relate_jax.reference_checkpoint's job, which passes mappings of key → NumPy array here.

  Linear (out, in)                      → Dense kernel W.T
  Conv2d (out, in, kh, kw)              → kernel W.transpose(2, 3, 1, 0)
  ConvTranspose2d (in, out, kh, kw)     → kernel W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
  spectral_norm weight_orig / _u / _v   → params kernel (as above) / spectral u / v unchanged
  zbg, zfg (N, C, H, W)                 → background_constant, object_constant (N, H, W, C)

Families (config.model.name) and where their extra modules go in the generator's params:

  relate_static        Gamma.{interaction,v}.*      → interaction/{interaction,v}/layers_i
  relate_static_order  mlp_xy.*, mlp_xy_rec.*       → chain/mlp_xy/…, chain/mlp_xy_rec/…
  relate_video         mlp_xy.{interaction,v}.*     → interaction/{interaction,v}/layers_i (Γ)
                       mlp_speed.*                  → speed/layers_i (e_v)
                       Gamma.{interaction,v}.*      → dynamics/{interaction,v}/layers_i (Γ_v)

The video discriminator's conv1 takes the T frames concatenated on channels in torch's
order (channel 3t + c), so its kernel converts like any Conv2d.

`generator.upsample_net.*` entries are aliases of `generator.deconvN` (the same storage in
torch); they are consumed by checking that they equal their original.

Adam moments (exp_avg, exp_avg_sq) have their parameter's torch layout and are re-laid out
the same way. Torch numbers an optimizer's parameters across its param groups in the order
of the model's `_get_param_groups` (REFERENCE §5): 'disc' = the discriminator's parameters;
'gen' = generator, zbg, zfg, then the family's extra modules (`PARAM_GROUP_MODULES`).
Module parameters are listed in state-dict order without the spectral-norm buffers
(weight_u, weight_v) and without the aliases.
"""

from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

from relate_jax import config as config_lib

_SEQUENTIAL = {'0': 'layers_0', '2': 'layers_1', '4': 'layers_2'}  # torch Linear indices
_BUFFERS = ('weight_u', 'weight_v')
_ALIAS = 'upsample_net'

# Optimizer 'gen' group after the generator, zbg and zfg (the models' _get_param_groups).
PARAM_GROUP_MODULES = {
    config_lib.STATIC: ('Gamma',),
    config_lib.ORDERED: ('mlp_xy', 'mlp_xy_rec'),
    config_lib.VIDEO: ('Gamma', 'mlp_xy', 'mlp_speed'),
}


def _dense(w):
  return w.T


def _conv(w):
  return w.transpose(2, 3, 1, 0)


def _conv_transpose(w):
  return w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)


def _nchw_constant(w):
  return w.transpose(0, 2, 3, 1)


def _same(w):
  return w


class Target(NamedTuple):
  """Where one torch array goes: Flax path ('generator'|'discriminator', collection, …)
  and the re-layout applied to it (and to its Adam moments)."""
  path: tuple[str, ...]
  relayout: Callable[[np.ndarray], np.ndarray]


def _linear(prefix: tuple[str, ...], name: str) -> Target:
  kernel = name == 'weight'
  return Target(prefix + ('kernel' if kernel else 'bias',), _dense if kernel else _same)


def _mlp(parts: list[str], prefix: tuple[str, ...]) -> Target:
  """A torch Sequential of Linear layers `<i>.{weight,bias}` (i = 0, 2, 4)."""
  if len(parts) != 2 or parts[0] not in _SEQUENTIAL:
    raise KeyError
  return _linear(prefix + (_SEQUENTIAL[parts[0]],), parts[1])


def _npe(parts: list[str], prefix: tuple[str, ...]) -> Target:
  """The reference NPE: `{interaction,v}.<i>.{weight,bias}`."""
  if parts[0] not in ('interaction', 'v'):
    raise KeyError
  return _mlp(parts[1:], prefix + (parts[0],))


def _generator_target(parts: list[str]) -> Target:
  g = ('generator', 'params')
  head, name = parts[0], parts[-1]
  if head in ('bg_generator', 'obj_generator'):
    module = 'background_decoder' if head == 'bg_generator' else 'object_decoder'
    layer = parts[1]
    if layer.startswith('style') and parts[2:4] == ['mlp', '0']:  # styleN.mlp.0.*
      return _linear(g + (module, layer, 'mlp'), name)
    if layer.startswith('deconv') and parts[2] == '0':  # deconvN.0.*
      kernel = name == 'weight'
      return Target(g + (module, layer, 'conv', 'kernel' if kernel else 'bias'),
                    _conv_transpose if kernel else _same)
    if layer == 'scale' and head == 'obj_generator':  # scale.{0,2,4}.*
      return _mlp(parts[2:], g + ('scale',))
  if head.startswith('deconv') and parts[1] == '0':  # image decoder G: deconvN.0.*
    kernel = name == 'weight'
    return Target(g + ('image_decoder', head, 'conv', 'kernel' if kernel else 'bias'),
                  _conv_transpose if kernel else _same)
  raise KeyError


def _discriminator_target(parts: list[str]) -> Target:
  layer, name = parts[0], parts[-1]
  if layer == 'disc_conv1':
    kernel = name == 'weight'
    return Target(('discriminator', 'params', 'conv1', 'conv', 'kernel' if kernel else 'bias'),
                  _conv if kernel else _same)
  renames = {'dh4': 'logit', 'enc': 'position'}
  if layer.startswith('disc_conv'):
    module = 'conv' + layer[len('disc_conv'):]
  elif layer.startswith('inorm'):
    module = layer
  elif layer.startswith('class'):
    module = 'style' + layer[len('class'):]
  elif layer in renames:
    module = renames[layer]
  else:
    raise KeyError
  if name in _BUFFERS:
    return Target(('discriminator', 'spectral', module, name[-1]), _same)
  params = ('discriminator', 'params', module)
  if name == 'bias':
    return Target(params + ('bias',), _same)
  if module.startswith('inorm'):
    return Target(params + ('scale',), _same)
  return Target(params + ('kernel',), _conv if module.startswith('conv') else _dense)


def _strip(key: str) -> list[str]:
  parts = key.split('.')
  return parts[1:] if parts[0] == 'module' else parts  # DataParallel prefix


def is_alias(key: str) -> bool:
  """True for `generator.upsample_net.*`, torch's second name for `generator.deconvN`."""
  parts = _strip(key)
  return len(parts) > 1 and parts[0] == 'generator' and parts[1] == _ALIAS


def alias_source(key: str) -> str:
  """`generator.upsample_net.<i>.…` → `generator.deconv<i+1>.…` (prefix kept)."""
  prefix = 'module.' if key.startswith('module.') else ''
  parts = _strip(key)
  return prefix + '.'.join(['generator', f'deconv{int(parts[2]) + 1}'] + parts[3:])


def locate(key: str, model_name: str) -> Target:
  """The Flax destination of a (non-alias) reference state-dict key.

  Raises KeyError for keys the family does not have.
  """
  if model_name not in PARAM_GROUP_MODULES:
    raise ValueError(f'unknown model family {model_name!r}')
  parts = _strip(key)
  g = ('generator', 'params')
  try:
    top, rest = parts[0], parts[1:]
    if top == 'zbg' and not rest:
      return Target(g + ('background_constant',), _nchw_constant)
    if top == 'zfg' and not rest:
      return Target(g + ('object_constant',), _nchw_constant)
    if top == 'generator':
      return _generator_target(rest)
    if top == 'discriminator':
      return _discriminator_target(rest)
    if model_name == config_lib.STATIC and top == 'Gamma':
      return _npe(rest, g + ('interaction',))
    if model_name == config_lib.ORDERED and top in ('mlp_xy', 'mlp_xy_rec'):
      return _mlp(rest, g + ('chain', top))
    if model_name == config_lib.VIDEO:
      if top == 'mlp_xy':
        return _npe(rest, g + ('interaction',))
      if top == 'mlp_speed':
        return _mlp(rest, g + ('speed',))
      if top == 'Gamma':
        return _npe(rest, g + ('dynamics',))
  except (IndexError, KeyError):
    pass
  raise KeyError(key)


def _set(tree: dict, path: Sequence[str], value: np.ndarray) -> None:
  for name in path[:-1]:
    tree = tree.setdefault(name, {})
  tree[path[-1]] = np.ascontiguousarray(value, dtype=np.float32)


class ConversionError(ValueError):
  """A checkpoint that does not fit the model; the message lists every problem by name."""


def _flatten(tree, prefix=()) -> dict[tuple[str, ...], tuple[int, ...]]:
  """{path: shape} of a nested dict of arrays (or shape-dtype structs)."""
  out = {}
  for name, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_flatten(value, prefix + (str(name),)))
    else:
      out[prefix + (str(name),)] = tuple(value.shape)
  return out


def from_torch_state_dict(state_dict: Mapping[str, np.ndarray],
                          model_name: str = config_lib.STATIC,
                          expected: Mapping | None = None) -> dict[str, dict]:
  """Converts a reference RELATE state dict of family `model_name`.

  Returns {'generator': {'params': …}, 'discriminator': {'params': …, 'spectral': …}}
  laid out as the family's generator and Discriminator variables. With `expected` (the
  same structure of arrays or jax.ShapeDtypeStruct, e.g. from jax.eval_shape) every
  converted shape is checked and every expected leaf must be filled.

  Raises ConversionError listing all keys the family does not know, aliases that differ
  from their original, two keys mapping to one leaf, shape mismatches and missing leaves.
  """
  tree: dict = {}
  sources: dict[tuple[str, ...], str] = {}
  problems = []
  for key, value in state_dict.items():
    w = np.asarray(value)
    if is_alias(key):
      original = alias_source(key)
      if original not in state_dict:
        problems.append(f'{key}: alias of {original}, which the checkpoint lacks')
      elif not np.array_equal(w, np.asarray(state_dict[original])):
        problems.append(f'{key}: differs from {original} (torch stores one tensor under both)')
      continue
    try:
      target = locate(key, model_name)
    except KeyError:
      problems.append(f'{key} {tuple(w.shape)}: not a {model_name} entry')
      continue
    if target.path in sources:
      problems.append(f'{key} and {sources[target.path]} both map to {"/".join(target.path)}')
      continue
    sources[target.path] = key
    _set(tree, target.path, target.relayout(w))
  if expected is not None:
    have, want = _flatten(tree), _flatten(expected)
    for path, shape in have.items():
      if path not in want:
        problems.append(f'{sources[path]}: no {"/".join(path)} in this model')
      elif shape != want[path]:
        problems.append(f'{sources[path]} {tuple(np.shape(state_dict[sources[path]]))}: '
                        f'becomes {shape} but the model has {"/".join(path)} {want[path]}')
    for path, shape in want.items():
      if path not in have:
        problems.append(f'missing: the model needs {"/".join(path)} {shape}')
  if problems:
    raise ConversionError(f'{len(problems)} problem(s) converting the {model_name} checkpoint:\n  '
                          + '\n  '.join(problems))
  return {'generator': tree.get('generator', {}), 'discriminator': tree.get('discriminator', {})}


def relayout(arrays: Mapping[str, np.ndarray], model_name: str) -> dict:
  """Torch-named arrays (parameters, gradients, Adam moments; no aliases) re-laid out
  into the nested Flax layout {'generator': …, 'discriminator': …}, without checks."""
  tree: dict = {}
  for key, value in arrays.items():
    target = locate(key, model_name)
    _set(tree, target.path, target.relayout(np.asarray(value)))
  return tree


def optimizer_param_keys(keys: Sequence[str], model_name: str) -> dict[str, list[str]]:
  """State-dict keys of the parameters of torch's 'disc' and 'gen' Adams, in the order
  torch numbers them (see the module docstring)."""
  params = [k for k in keys if not is_alias(k) and _strip(k)[-1] not in _BUFFERS]
  by_module: dict[str, list[str]] = {}
  for key in params:
    by_module.setdefault(_strip(key)[0], []).append(key)
  gen_modules = ('generator', 'zbg', 'zfg') + PARAM_GROUP_MODULES[model_name]
  return {'disc': by_module.get('discriminator', []),
          'gen': [k for m in gen_modules for k in by_module.get(m, [])]}


class AdamMoments(NamedTuple):
  """One torch Adam's state in Flax layout: step count and the moment trees, both laid out
  like the player's variables ({'generator': {'params': …}} or {'discriminator': …})."""
  count: int
  mu: dict
  nu: dict
  hyperparams: dict  # lr, betas, eps, weight_decay of torch's first param group.


def from_torch_adam(optimizer_state: Mapping, param_keys: Sequence[str],
                    state_dict: Mapping[str, np.ndarray], model_name: str) -> AdamMoments:
  """Converts one torch.optim.Adam state_dict ({'state', 'param_groups'}).

  param_keys: the state-dict keys of its parameters in torch's order
  (`optimizer_param_keys`). A parameter without state (never stepped) gets zero moments;
  all parameters with state must share one step count, as optax keeps a single count.
  Raises ConversionError listing every inconsistency.
  """
  groups = optimizer_state['param_groups']
  indices = [i for group in groups for i in group['params']]
  problems = []
  if len(indices) != len(param_keys):
    raise ConversionError(f'the optimizer state has {len(indices)} parameters, the checkpoint\'s '
                          f'{model_name} param group {len(param_keys)}')
  moments: dict[str, dict[str, np.ndarray]] = {'exp_avg': {}, 'exp_avg_sq': {}}
  steps = {}
  for index, key in zip(indices, param_keys):
    shape = np.shape(state_dict[key])
    state = optimizer_state['state'].get(index)
    if state is None:
      for name in moments:
        moments[name][key] = np.zeros(shape, np.float32)
      continue
    for name in moments:
      if np.shape(state[name]) != shape:
        problems.append(f'{key}: {name} has shape {np.shape(state[name])}, the parameter {shape}')
      moments[name][key] = np.asarray(state[name])
    if 'max_exp_avg_sq' in state:
      problems.append(f'{key}: AMSGrad state (max_exp_avg_sq) has no optax Adam counterpart')
    steps[key] = int(round(float(np.asarray(state['step']))))
  counts = sorted(set(steps.values()))
  if len(counts) > 1:
    problems.append('parameters were stepped different numbers of times: ' + ', '.join(
        f'{k} {v}' for k, v in steps.items() if v != counts[-1]) + f' (others {counts[-1]})')
  if steps and len(steps) != len(param_keys):
    problems.append('parameters without optimizer state: '
                    + ', '.join(k for k in param_keys if k not in steps))
  if problems:
    raise ConversionError('optimizer state does not convert:\n  ' + '\n  '.join(problems))
  first = groups[0]
  hyper = {name: first[name] for name in ('lr', 'betas', 'eps', 'weight_decay') if name in first}
  return AdamMoments(count=counts[0] if counts else 0,
                     mu=relayout(moments['exp_avg'], model_name),
                     nu=relayout(moments['exp_avg_sq'], model_name), hyperparams=hyper)


def synthetic_state_dict(keys: Sequence[str], shapes: Sequence[Sequence[int]],
                         seed: int) -> dict[str, np.ndarray]:
  """Deterministic stand-in reference weights for fixtures: for each key in order,
  0.02·N(0, 1) float32 draws from numpy's default_rng(seed); spectral-norm vectors u, v are
  unit-norm N(0, 1) draws (torch's state at construction); aliases copy their original and
  draw nothing. The same keys, shapes and seed give the same arrays on every machine."""
  rng = np.random.default_rng(seed)
  out = {}
  for key, shape in zip(keys, shapes):
    shape = tuple(int(s) for s in shape)
    if is_alias(key):
      out[key] = out[alias_source(key)]
    elif _strip(key)[-1] in _BUFFERS:
      v = rng.standard_normal(shape, dtype=np.float32)
      out[key] = v / max(np.linalg.norm(v), 1e-12)
    else:
      out[key] = np.float32(0.02) * rng.standard_normal(shape, dtype=np.float32)
  return out
