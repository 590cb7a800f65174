"""Orbax checkpoints of the train state and the input iterator, with checksums.

Layout: <workdir>/checkpoints/<step>/
  state/  the TrainState (Orbax StandardSave)
  data/   the grain iterator's position; absent in checkpoints written without an
          iterator (e.g. converted from PyTorch files): the input then starts afresh
  meta/   JSON: the items saved, the sha256 of every state array's bytes, the sha256 of
          the iterator state, and the NaN rollbacks so far (train.on_nonfinite='rollback')

The newest `train.keep_checkpoints` are kept. Only finite states are saved, so rotation
never replaces a good checkpoint by a diverged one. `restore_newest` falls back past
checkpoints that cannot be read or fail their checksums, moving each aside to
`<step>.corrupt`, and refuses to start afresh when the workdir had checkpoints.
"""

import dataclasses
import hashlib
import json
import os
import time
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

CORRUPT_SUFFIX = '.corrupt'
INCOMPLETE_SUFFIX = '.incomplete'
_TMP_MARK = '.orbax-checkpoint-tmp'


class CheckpointError(RuntimeError):
  """A checkpoint problem the user must act on; printed without a traceback."""


class CorruptCheckpoint(CheckpointError):
  """A step that cannot be read, or whose arrays fail their checksums."""


class IncompatibleCheckpoint(CheckpointError):
  """A readable step written by a different model (tree or shapes differ from the config's)."""


class CheckpointTimeout(CheckpointError):
  """A write that did not finish within its time limit (it may still be running)."""


class NonFiniteState(CheckpointError):
  """A state with NaN/Inf entries, which `save` refuses to write."""


@dataclasses.dataclass
class Restored:
  state: Any
  step: int
  rollbacks: int  # NaN rollbacks before this checkpoint was saved (folded into the train key).
  data_restored: bool  # False: the step had no iterator state and the input starts afresh.


def manager(workdir: str, keep: int | None = None,
            timeout_s: float | None = None) -> ocp.CheckpointManager:
  """A CheckpointManager on <workdir>/checkpoints (keep=None keeps everything; timeout_s
  bounds Orbax's own waits inside a save)."""
  directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
  async_options = ocp.AsyncOptions(timeout_secs=max(1, round(timeout_s))) if timeout_s else None
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         async_options=async_options)
  return ocp.CheckpointManager(directory, options=options)


def step_dir(mgr: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(str(mgr.directory), str(step))


def _name(path) -> str:
  """'g_params.decoder.kernel' for a tree path (the dotted form Orbax's metadata uses)."""
  return '.'.join(str(getattr(k, 'name', getattr(k, 'key', getattr(k, 'idx', k)))) for k in path)


def _host_arrays(tree) -> list[tuple[str, np.ndarray]]:
  """(name, this process's NumPy copy) of every array leaf, in tree order."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  fetched = jax.device_get([x.addressable_data(0) if isinstance(x, jax.Array) else x
                            for _, x in leaves])
  return [(_name(p), np.asarray(x)) for (p, _), x in zip(leaves, fetched)]


def _sha256(data: bytes | np.ndarray) -> str:
  if isinstance(data, np.ndarray):
    data = np.ascontiguousarray(data).tobytes()
  return hashlib.sha256(data).hexdigest()


def _iterator_sha256(data_iterator) -> str:
  state = data_iterator.get_state()
  return _sha256(state if isinstance(state, bytes) else json.dumps(state, sort_keys=True).encode())


def nonfinite_arrays(arrays: list[tuple[str, np.ndarray]]) -> list[str]:
  """Names of the floating arrays with a NaN or Inf entry."""
  return [name for name, x in arrays
          if np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all()]


def save(mgr: ocp.CheckpointManager, state: Any, data_iterator=None, *, rollbacks: int = 0,
         timeout_s: float = 300.0, force: bool = False) -> bool:
  """Saves `state` (and the grain iterator) at `state.step` and waits until it is on disk
  (force: Orbax's, save even off its save interval).

  Raises:
    NonFiniteState: some state array has NaN/Inf entries; nothing is written.
    CheckpointTimeout: the write took longer than `timeout_s` seconds.
  """
  arrays = _host_arrays(state)
  step = int(dict(arrays)['step'])
  bad = nonfinite_arrays(arrays)
  if bad:
    raise NonFiniteState(f'the state at step {step} has {len(bad)} of {len(arrays)} arrays '
                         f'with NaN/Inf entries (e.g. {", ".join(bad[:3])}): not saved')
  meta = {'step': step, 'items': ['state'], 'rollbacks': rollbacks,
          'sha256': {name: _sha256(x) for name, x in arrays}}
  items = {'state': ocp.args.StandardSave(state)}
  if data_iterator is not None:
    items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
    meta['items'].append('data')
    meta['data_sha256'] = _iterator_sha256(data_iterator)
  items['meta'] = ocp.args.JsonSave(meta)
  saved = mgr.save(step, args=ocp.args.Composite(**items), force=force)
  deadline = time.monotonic() + timeout_s
  while mgr.is_saving_in_progress():
    if time.monotonic() > deadline:
      raise CheckpointTimeout(f'writing checkpoint {step_dir(mgr, step)} took longer than '
                            f'{timeout_s:g} s (train.checkpoint_timeout); older checkpoints '
                            'are untouched')
    time.sleep(0.02)
  mgr.wait_until_finished()  # Raises the background write's error, if any.
  return saved


def _check_compatible(path: str, abstract_state: Any, step: int) -> None:
  """Raises IncompatibleCheckpoint when the saved tree or shapes differ from the config's."""
  try:
    saved = ocp.StandardCheckpointer().metadata(path).item_metadata
    saved = {m.name: tuple(m.shape) for m in jax.tree.leaves(saved)}
  except Exception as e:  # Orbax raises anything from JSON to tensorstore errors.
    raise CorruptCheckpoint(f'state/ metadata unreadable ({type(e).__name__}: {e})') from e
  wanted = {_name(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(
      abstract_state)[0]}
  if not saved.keys() & wanted.keys():  # Orbax reads damaged metadata as an empty tree.
    raise CorruptCheckpoint('state/ metadata unreadable (no arrays listed)')
  diffs = [f'{n}: missing in the checkpoint' for n in wanted if n not in saved]
  diffs += [f'{n}: not in this config\'s model' for n in saved if n not in wanted]
  diffs += [f'{n}: {saved[n]} in the checkpoint, {wanted[n]} for this config'
            for n in wanted if n in saved and saved[n] != wanted[n]]
  if diffs:
    more = f' (and {len(diffs) - 3} more)' if len(diffs) > 3 else ''
    raise IncompatibleCheckpoint(
        f'checkpoint step {step} was written by a different model than this config: '
        + '; '.join(diffs[:3]) + more)


def load(mgr: ocp.CheckpointManager, abstract_state: Any, data_iterator=None,
         step: int | None = None) -> Restored:
  """Restores `step` (default newest) into the structure and shardings of `abstract_state`,
  verifying the checksums, and restores `data_iterator` in place when given.

  Raises:
    CorruptCheckpoint: the step cannot be read or fails its checksums.
    IncompatibleCheckpoint: the step holds a different model.
  """
  step = mgr.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(f'no checkpoint in {mgr.directory}')
  path = step_dir(mgr, step)
  if not os.path.isdir(os.path.join(path, 'state')):
    raise CorruptCheckpoint(f'{path} has no state/ directory')
  meta = None
  if os.path.isdir(os.path.join(path, 'meta')):
    try:
      meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']
    except Exception as e:  # Unparseable or missing JSON.
      raise CorruptCheckpoint(f'meta/ unreadable ({type(e).__name__}: {e})') from e
  _check_compatible(os.path.join(path, 'state'), abstract_state, step)
  saved_items = meta['items'] if meta else [n for n in ('state', 'data')
                                            if os.path.isdir(os.path.join(path, n))]
  restore_data = data_iterator is not None and 'data' in saved_items
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
  items = {'state': ocp.args.StandardRestore(target)}
  if restore_data:
    items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
  try:
    state = mgr.restore(step, args=ocp.args.Composite(**items))['state']
  except Exception as e:  # Orbax and tensorstore raise all kinds on damaged files.
    raise CorruptCheckpoint(f'{type(e).__name__}: {e}') from e
  if meta is None:
    logging.warning('Checkpoint %s has no checksums (not written by relate_jax.checkpoint.save): '
                    'loaded unverified.', path)
  else:
    arrays = _host_arrays(state)
    wrong = [n for n, x in arrays if meta['sha256'].get(n) != _sha256(x)]
    if wrong:
      raise CorruptCheckpoint(f'{len(wrong)} of {len(arrays)} arrays fail their sha256 '
                              f'checksum (e.g. {", ".join(wrong[:3])})')
    if restore_data and _iterator_sha256(data_iterator) != meta.get('data_sha256'):
      raise CorruptCheckpoint('the iterator state in data/ fails its sha256 checksum')
  if data_iterator is not None and not restore_data:
    logging.warning('Checkpoint %s holds no input-iterator state: the input starts afresh.', path)
  return Restored(state, step, int(meta.get('rollbacks', 0)) if meta else 0, restore_data)


def restore(mgr: ocp.CheckpointManager, abstract_state: Any, data_iterator=None,
            step: int | None = None) -> Any:
  """The state of `load` (checksums verified)."""
  return load(mgr, abstract_state, data_iterator, step).state


def _move_aside(path: str, suffix: str) -> str:
  target, n = path + suffix, 1
  while os.path.exists(target):
    target, n = f'{path}{suffix}.{n}', n + 1
  if jax.process_index() == 0:
    os.rename(path, target)
  return target


def restore_newest(mgr: ocp.CheckpointManager, abstract_state: Any,
                   data_iterator=None) -> Restored | None:
  """`load` of the newest readable checkpoint, or None when the workdir never had one.

  Unfinished writes (Orbax tmp directories left by a killed process) are moved aside to
  `<name>.incomplete`; unreadable steps to `<step>.corrupt`, each with a warning naming it
  and the problem, and the next older step is tried.

  Raises:
    CheckpointError: checkpoints exist (or were moved aside earlier) but none is readable.
    IncompatibleCheckpoint: the newest readable step holds a different model.
  """
  directory = str(mgr.directory)
  names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
  for name in names:
    if _TMP_MARK in name and not name.endswith(INCOMPLETE_SUFFIX):
      moved = _move_aside(os.path.join(directory, name), INCOMPLETE_SUFFIX)
      logging.warning('%s is an unfinished checkpoint write (the process died while saving): '
                      'moved aside to %s.', os.path.join(directory, name), moved)
  problems = []
  for step in sorted(mgr.all_steps(), reverse=True):
    try:
      return load(mgr, abstract_state, data_iterator, step)
    except CorruptCheckpoint as e:
      moved = _move_aside(step_dir(mgr, step), CORRUPT_SUFFIX)
      logging.warning('Checkpoint %s cannot be used: %s. Moved it aside to %s; trying the '
                      'previous one.', step_dir(mgr, step), e, moved)
      problems.append(f'step {step}: {e} (now {moved})')
      mgr.reload()
  earlier = [n for n in names if CORRUPT_SUFFIX in n]
  if problems or earlier:
    listing = '\n  '.join(problems + [f'{os.path.join(directory, n)} (moved aside earlier)'
                                      for n in earlier])
    raise CheckpointError(
        f'No readable checkpoint in {directory}, which had checkpoints:\n  {listing}\n'
        'Not starting from scratch over them: restore one by hand, or train in a new --workdir.')
  return None
