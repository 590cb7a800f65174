"""Reference PyTorch checkpoints (`model_epoch_*.pth` state dicts) to Flax variables.

Re-lays out arrays only (REFERENCE §3.1-3.3); reading the .pth file itself (torch.load with
map_location='cpu') is left to the caller, who passes a mapping of key → NumPy array.

  Linear (out, in)                      → Dense kernel W.T
  Conv2d (out, in, kh, kw)              → kernel W.transpose(2, 3, 1, 0)
  ConvTranspose2d (in, out, kh, kw)     → kernel W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
  spectral_norm weight_orig / _u / _v   → params kernel (as above) / spectral u / v unchanged
  zbg, zfg (N, C, H, W)                 → background_constant, object_constant (N, H, W, C)

`generator.upsample_net.*` entries are aliases of `generator.deconvN` and are skipped.
"""

from typing import Mapping

import numpy as np

_DENSE_SEQUENTIAL = {'0': 'layers_0', '2': 'layers_1', '4': 'layers_2'}


def _dense(w):
  return w.T


def _conv(w):
  return w.transpose(2, 3, 1, 0)


def _conv_transpose(w):
  return w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)


def _nchw_constant(w):
  return w.transpose(0, 2, 3, 1)


def _set(tree: dict, path: list[str], value: np.ndarray) -> None:
  for name in path[:-1]:
    tree = tree.setdefault(name, {})
  if path[-1] in tree:
    raise ValueError(f'two checkpoint entries map to {"/".join(path)}')
  tree[path[-1]] = np.ascontiguousarray(value, dtype=np.float32)


def _generator_entry(parts: list[str], w: np.ndarray):
  """Flax path and array for a `generator.*` key, or None for the aliases."""
  leaf = 'kernel' if parts[-1] == 'weight' else 'bias'
  head = parts[0]
  if head == 'upsample_net':
    return None
  if head in ('bg_generator', 'obj_generator'):
    module = 'background_decoder' if head == 'bg_generator' else 'object_decoder'
    layer = parts[1]
    if layer.startswith('style'):  # styleN.mlp.0.{weight,bias}
      return [module, layer, 'mlp', leaf], (_dense(w) if leaf == 'kernel' else w)
    if layer.startswith('deconv'):  # deconvN.0.{weight,bias}
      return ([module, layer, 'conv', leaf],
              _conv_transpose(w) if leaf == 'kernel' else w)
    if layer == 'scale':  # scale.{0,2,4}.{weight,bias}
      return ['scale', _DENSE_SEQUENTIAL[parts[2]], leaf], (_dense(w) if leaf == 'kernel' else w)
  if head.startswith('deconv'):  # image decoder G: deconvN.0.{weight,bias}
    return ['image_decoder', head, 'conv', leaf], (_conv_transpose(w) if leaf == 'kernel' else w)
  raise KeyError(f'unknown generator entry {".".join(parts)}')


def _discriminator_entry(parts: list[str], w: np.ndarray):
  """(collection, path) and array for a `discriminator.*` key."""
  layer, name = parts[0], parts[-1]
  if layer == 'disc_conv1':
    return 'params', ['conv1', 'conv', 'kernel' if name == 'weight' else 'bias'], (
        _conv(w) if name == 'weight' else w)
  renames = {'dh4': 'logit', 'enc': 'position'}
  if layer.startswith('disc_conv'):
    target = 'conv' + layer[len('disc_conv'):]
  elif layer.startswith('inorm'):
    target = layer
  elif layer.startswith('class'):
    target = 'style' + layer[len('class'):]
  elif layer in renames:
    target = renames[layer]
  else:
    raise KeyError(f'unknown discriminator entry {".".join(parts)}')
  if name in ('weight_u', 'weight_v'):
    return 'spectral', [target, name[-1]], w
  if name == 'bias':
    return 'params', [target, 'bias'], w
  # weight / weight_orig
  if target.startswith('inorm'):
    return 'params', [target, 'scale'], w
  if target.startswith('conv'):
    return 'params', [target, 'kernel'], _conv(w)
  return 'params', [target, 'kernel'], _dense(w)


def from_torch_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, dict]:
  """Converts a reference RELATE state dict (relate_static or relate_static_order).

  Returns {'generator': {'params': …}, 'discriminator': {'params': …, 'spectral': …}}
  laid out as RelateGenerator / Discriminator variables.
  """
  generator: dict = {}
  discriminator: dict = {}
  for key, value in state_dict.items():
    w = np.asarray(value)
    parts = key.split('.')
    if parts[0] == 'module':  # DataParallel prefix
      parts = parts[1:]
    top = parts[0]
    if top == 'zbg':
      _set(generator, ['params', 'background_constant'], _nchw_constant(w))
    elif top == 'zfg':
      _set(generator, ['params', 'object_constant'], _nchw_constant(w))
    elif top == 'generator':
      entry = _generator_entry(parts[1:], w)
      if entry is not None:
        path, array = entry
        _set(generator, ['params'] + path, array)
    elif top == 'discriminator':
      collection, path, array = _discriminator_entry(parts[1:], w)
      _set(discriminator, [collection] + path, array)
    elif top == 'Gamma':  # Gamma.{interaction,v}.{0,2,4}.{weight,bias}
      leaf = 'kernel' if parts[-1] == 'weight' else 'bias'
      _set(generator, ['params', 'interaction', parts[1], _DENSE_SEQUENTIAL[parts[2]], leaf],
           _dense(w) if leaf == 'kernel' else w)
    elif top in ('mlp_xy', 'mlp_xy_rec'):
      leaf = 'kernel' if parts[-1] == 'weight' else 'bias'
      _set(generator, ['params', 'chain', top, _DENSE_SEQUENTIAL[parts[1]], leaf],
           _dense(w) if leaf == 'kernel' else w)
    else:
      raise KeyError(f'unknown checkpoint entry {key}')
  return {'generator': generator, 'discriminator': discriminator}
