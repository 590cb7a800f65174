"""The workdir's config guard: a resumed run may change its schedule, never its model or data.

  <workdir>/config.json           the config of the newest run (what `api.load` builds)
  <workdir>/config_history.jsonl  one JSON line per config a run started with: the first
                                  run's, then each changed one (time, changes, config)

`check_config` compares a run's resolved config with config.json before anything is
touched. Fields marked `resumable` in `config.FIELDS` (steps, learning rate, intervals,
evaluation, resources) may change and are logged; any other difference (shapes, model
switches, dataset, image size, seed, ...) stops with a diff, unless the change is
allowed explicitly (`--allow_config_change`). `record_config` then writes config.json,
keeping every earlier version in the history.
"""

import datetime
import json
import os

import ml_collections
from absl import logging

from relate_jax import config as config_lib

CONFIG = 'config.json'
HISTORY = 'config_history.jsonl'


def _plain(value):
  """JSON lists and tuples compare equal."""
  return tuple(_plain(v) for v in value) if isinstance(value, (list, tuple)) else value


def _as_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def previous_config(workdir: str) -> ml_collections.ConfigDict | None:
  """The workdir's config.json read onto today's defaults (fields added since then keep
  their defaults, so they never count as changes), or None for a new workdir."""
  from relate_jax import api  # Deferred: api builds models.
  if not os.path.exists(os.path.join(workdir, CONFIG)):
    return None
  try:
    return api._normalise(api.load_config(workdir))  # pylint: disable=protected-access
  except (ValueError, KeyError, AttributeError, TypeError) as e:
    raise config_lib.ConfigError(
        f'{os.path.join(workdir, CONFIG)} is unreadable ({type(e).__name__}: {e}); move it '
        'aside to resume this workdir with the config given now') from e


def changes(old: ml_collections.ConfigDict, new: ml_collections.ConfigDict) -> dict:
  """{field: (old value, new value)} of every field that differs."""
  a, b = config_lib.flatten(old), config_lib.flatten(new)
  return {name: (a.get(name), b.get(name)) for name in sorted(set(a) | set(b))
          if _plain(a.get(name)) != _plain(b.get(name))}


def check_config(config: ml_collections.ConfigDict, workdir: str,
                 allow_change: bool = False) -> dict:
  """The changes of `config` against the workdir's config.json ({} for a new workdir).

  Raises:
    config.ConfigError: a field that is not resumable differs and allow_change is False
      (the message lists each such field with both values).
  """
  old = previous_config(workdir)
  if old is None:
    return {}
  diff = changes(old, config)
  refused = {n: d for n, d in diff.items()
             if n in config_lib.FIELDS and not config_lib.FIELDS[n].resumable}
  lines = lambda d: ''.join(f'\n  {n}: {o!r} (workdir) -> {v!r} (now)' for n, (o, v) in d.items())
  if refused and not allow_change:
    raise config_lib.ConfigError(
        f'{workdir} was trained with a different model or data; these fields differ from '
        f'its {CONFIG}:{lines(refused)}\nTrain this config in a new --workdir, or resume with '
        f'the workdir\'s values. (--allow_config_change resumes anyway; the old config stays '
        f'in {HISTORY}.)')
  if refused:
    logging.warning('Resuming %s with model/data changes (--allow_config_change):%s', workdir,
                    lines(refused))
  if diff.keys() - refused.keys():
    logging.info('Config changes since the last run of %s:%s', workdir,
                 lines({n: d for n, d in diff.items() if n not in refused}))
  return diff


def _append_history(workdir: str, entry: dict) -> None:
  with open(os.path.join(workdir, HISTORY), 'a') as f:
    f.write(json.dumps(entry, sort_keys=True) + '\n')


def record_config(config: ml_collections.ConfigDict, workdir: str, diff: dict) -> None:
  """Writes config.json (atomically) and, for a new workdir or a changed config, appends
  it to the history; a workdir from before the history starts it with its old config."""
  path = os.path.join(workdir, CONFIG)
  now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
  exists = os.path.exists(path)
  if exists and not os.path.exists(os.path.join(workdir, HISTORY)):
    with open(path) as f:
      _append_history(workdir, {'time': None, 'changes': None, 'config': json.load(f),
                                'note': f'{CONFIG} found before the history began'})
  if not exists or diff:
    _append_history(workdir, {'time': now, 'config': _as_json(config),
                              'changes': {n: list(d) for n, d in diff.items()} or None})
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True) + '\n')
  os.replace(tmp, path)
