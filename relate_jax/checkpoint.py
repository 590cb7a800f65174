"""Orbax checkpoints of the train state together with the input iterator's state.

Layout: <workdir>/checkpoints/<step>/{state, data}. The newest `train.keep_checkpoints`
are kept; training resumes from the newest one automatically.
"""

import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp


def manager(workdir: str, keep: int | None = None) -> ocp.CheckpointManager:
  """A CheckpointManager on <workdir>/checkpoints (keep=None keeps everything)."""
  directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
  return ocp.CheckpointManager(directory, options=options)


def save(mgr: ocp.CheckpointManager, state: Any, data_iterator=None, *, force: bool = False) -> bool:
  """Saves `state` (and the grain iterator) at `state.step`; waits until it is on disk."""
  step = int(jax.device_get(state.step))
  items = {'state': ocp.args.StandardSave(state)}
  if data_iterator is not None:
    items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
  saved = mgr.save(step, args=ocp.args.Composite(**items), force=force)
  mgr.wait_until_finished()
  return saved


def restore(mgr: ocp.CheckpointManager, abstract_state: Any, data_iterator=None,
            step: int | None = None) -> Any:
  """Restores the state at `step` (default newest) into the structure and shardings of
  `abstract_state`; restores `data_iterator` in place when given and the step has its
  state (checkpoints converted from the reference have none: the iterator starts afresh)."""
  step = mgr.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f'no checkpoint in {mgr.directory}')
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
  items = {'state': ocp.args.StandardRestore(target)}
  if data_iterator is not None and 'data' in mgr.item_metadata(step):
    items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
  restored = mgr.restore(step, args=ocp.args.Composite(**items))
  return restored['state']
