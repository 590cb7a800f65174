r"""Runs the update fixtures' D and G updates in float64 and compares them with the
reference's own float64 run (no torch needed: the fixture stores it).

  python tools/reference_updates_float64.py clevr shapestacks [--json=OUT.json]

In float32, a few leaves of the updates differ from the reference by more than the spread
between the reference's float32 and float64 runs (README, "Differences from the PyTorch
reference"). This tool separates "a different function" from "float32 rounding": it enables
jax_enable_x64 and aliases jnp.float32 to float64 *in this process only*, so every layer,
including the ones that cast to float32 on purpose (instance norm statistics, G's output),
computes in float64, then runs relate_jax.parity.train_updates in reference_schedule mode
from the fixture's synthetic weights and latents and compares every stored gradient,
loss and spectral-norm vector with the fixture's float64 reference (ref32 + spread).
Prints one line per update and writes the numbers as JSON.
"""

import argparse
import json
import pathlib
import sys

import jax

jax.config.update('jax_enable_x64', True)
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position

jnp.float32 = jnp.float64  # Before relate_jax is imported: every float32 cast is float64.

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from relate_jax import compare_reference  # pylint: disable=g-import-not-at-top,wrong-import-position
from relate_jax import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from relate_jax import parity  # pylint: disable=g-import-not-at-top,wrong-import-position
from relate_jax.models import Latents, convert  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = pathlib.Path(__file__).resolve().parents[1]
LATENT_FIELDS = ('background', 'appearance', 'poses', 'present', 'select')
ZERO = 1e-15  # Leaves whose reference gradient is below this (exact zeros) compare absolutely.


def as64(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64)
                      if np.asarray(x).dtype == np.float32 else x, tree)


def compare(name: str) -> list[dict]:
  with np.load(ROOT / 'tests' / 'data' / f'reference_{name}_updates.npz') as f:
    data = dict(f)
  config = config_lib.load_config_file(str(ROOT / str(data['config'])))
  config.train.reference_schedule = True
  shapes = np.split(data['dims'], np.cumsum(data['ndims'])[:-1])
  state_dict = convert.synthetic_state_dict(list(data['keys']), shapes, int(data['weight_seed']))
  variables = as64(convert.from_torch_state_dict(state_dict, config.model.name))
  key, real, _, _ = compare_reference.iteration_inputs(config, int(data['batch']),
                                                       int(data['seed']))
  results = []
  for i, update in enumerate(str(n) for n in data['names']):
    latents = as64(Latents(**{k: data[f'latents{i}/{k}'] for k in LATENT_FIELDS}))
    ours = parity.train_updates(config, variables, [(update, latents)], as64(real), key)[0]
    row = {'config': name, 'update': update, 'grad_rel': 0.0, 'grad_worst': '',
           'grad_zero_abs': 0.0, 'loss_rel': 0.0, 'sn_rel': 0.0, 'spread_rel_min': np.inf,
           'leaves': 0}
    for k in sorted(data):
      prefix = f'ref32_{i}/'
      if not k.startswith(prefix):
        continue
      leaf = k[len(prefix):]
      reference = data[k].astype(np.float64) + data[f'spread_{i}/{leaf}']
      stride = int(data.get(f'stride/{leaf}', 1))
      mine = np.asarray(ours[leaf], np.float64).reshape(-1)[::stride]
      reference = reference.reshape(-1)
      diff = float(np.abs(mine - reference).max())
      scale = float(np.abs(reference).max())
      kind = leaf.split('/')[0]
      if kind == 'grad':
        row['leaves'] += 1
        if scale < ZERO:
          row['grad_zero_abs'] = max(row['grad_zero_abs'], diff)
          continue
        spread = float(np.abs(data[f'spread_{i}/{leaf}']).max()) / scale
        row['spread_rel_min'] = min(row['spread_rel_min'], spread) if spread > 0 else \
            row['spread_rel_min']
        if diff / scale > row['grad_rel']:
          row['grad_rel'], row['grad_worst'] = diff / scale, leaf
      elif kind in ('loss', 'sn') and scale > 0:
        row[f'{kind}_rel'] = max(row[f'{kind}_rel'], diff / scale)
    results.append(row)
  return results


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('configs', nargs='+', choices=('clevr', 'shapestacks'))
  parser.add_argument('--json', default=None, help='Write the rows as JSON here.')
  args = parser.parse_args(argv)
  rows = [row for name in args.configs for row in compare(name)]
  for r in rows:
    print(f"{r['config']} {r['update']}: {r['leaves']} gradient leaves, max rel diff "
          f"{r['grad_rel']:.1e} ({r['grad_worst']}; exact-zero leaves within "
          f"{r['grad_zero_abs']:.0e}); losses {r['loss_rel']:.1e}; spectral-norm vectors "
          f"{r['sn_rel']:.1e} (smallest nonzero float32 spread of a leaf: "
          f"{r['spread_rel_min']:.1e} relative)")
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(rows, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
