"""RELATE models: latents, generator (Ψb, Ψf, T_b, T_f, Γ, sc, G) and discriminator (D, P)."""

import jax
import numpy as np

from relate_jax.models.discriminator import Discriminator
from relate_jax.models.generator import RelateGenerator, compose
from relate_jax.models.latents import Latents, sample_latents

__all__ = ['Discriminator', 'Latents', 'RelateGenerator', 'compose', 'count_params',
           'param_table', 'sample_latents']


def count_params(tree) -> int:
  """Number of scalars in a pytree of arrays (or jax.ShapeDtypeStruct)."""
  return int(sum(np.prod(x.shape, dtype=np.int64) for x in jax.tree.leaves(tree)))


def param_table(params, depth: int = 1) -> str:
  """Parameter counts per module (paths cut at `depth` levels), one line each, with a total."""
  counts: dict[str, int] = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    keys = [str(getattr(p, 'key', p)) for p in path]
    name = '/'.join(keys[:depth])
    counts[name] = counts.get(name, 0) + int(np.prod(leaf.shape, dtype=np.int64))
  width = max([len(n) for n in counts] + [5])
  lines = [f'{n:<{width}}  {v:>12,}' for n, v in counts.items()]
  lines.append(f'{"total":<{width}}  {sum(counts.values()):>12,}')
  return '\n'.join(lines)
