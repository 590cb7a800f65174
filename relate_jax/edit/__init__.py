"""Scene editing tools: the recipe command (`python -m relate_jax.edit`) and the browser
editor (`python -m relate_jax.edit.serve`). The edits themselves are relate_jax.editing."""
