"""Reading PyTorch .pth files without making torch a dependency of relate-jax.

torch is imported only when a file is read (`pip install 'relate-jax[torch]'`); tensors come
back as NumPy arrays.
"""

import os
import pickle
from typing import Any

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
      reason = str(e).strip().splitlines()[-1]
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
