r"""Renders an edit recipe (relate_jax/edit/recipe.py documents the format).

  python -m relate_jax.edit --workdir=DIR --recipe=configs/edits/components.json --out=DIR2

Writes one PNG grid per entry (GIF/MP4 for interpolations and video models) and
latents.json, which re-renders the same images on its own: --recipe=DIR2/latents.json.
A bad recipe stops with one message naming the entry and a non-zero exit status.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from relate_jax.edit import recipe as recipe_lib


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    recipe = recipe_lib.load(flags.FLAGS.recipe)
    from relate_jax import api  # pylint: disable=g-import-not-at-top  (after the recipe check)
    from relate_jax import editing  # pylint: disable=g-import-not-at-top
    try:
      model = api.load(flags.FLAGS.workdir, recipe.get('step'))
    except FileNotFoundError as e:
      raise recipe_lib.RecipeError(str(e)) from None
    logging.info('Editing with %s (step %d)', flags.FLAGS.workdir, model.step)
    paths = recipe_lib.run(editing.Editor(model), recipe, flags.FLAGS.out,
                           log=lambda line: logging.info('%s', line))
  except recipe_lib.RecipeError as e:
    sys.exit(f'relate_jax.edit: {flags.FLAGS.recipe}: {e}')
  print(f'wrote {len(paths)} files into {flags.FLAGS.out}')


if __name__ == '__main__':
  flags.DEFINE_string('workdir', None, 'Training workdir with checkpoints.')
  flags.DEFINE_string('recipe', None, 'Recipe JSON (see relate_jax/edit/recipe.py).')
  flags.DEFINE_string('out', None, 'Output directory.')
  flags.mark_flags_as_required(['workdir', 'recipe', 'out'])
  app.run(main)
