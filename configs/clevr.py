r"""RELATE on CLEVR v1.0 (reference configs/clevr-train.json, scale-augmented model).

Train on train+val scenes with 3-6 objects, 128x128, K slots = 6, H' = 6, Nb = 1, Nf = 20,
Adam(1e-4, beta1 = 0, beta2 = 0.999), M = 2, batch 64, 40 epochs.

  python -m relate_jax.main --config=configs/clevr.py --workdir=workdirs/clevr \
      --config.data.data_dir=/path/to/CLEVR_v1.0

Paper (Table 2, "Ours + scale"): FID 44.9 at 128x128.

Paper Table A4 model (no scale augmentation, Nf = 90, H' = 4): FID 62.9. Use `--config=configs/clevr.py:main`.
"""

from relate_jax.config import apply_variant, base_config

# Variants: 'main' is the paper's main-table model (Table A4); relate_jax.config.ABLATIONS
# (blockgan2d, no_residual, no_position) apply too, e.g. `configs/clevr.py:main+blockgan2d`.
VARIANTS = {'main': {'model.scale_augment': False, 'model.obj_dim': 90, 'model.obj_size': 4}}


def get_config(variant=''):
  config = base_config()
  config.data.name = 'clevr'
  config.data.image_size = 128
  config.model.num_objects = 6
  config.model.min_objects = 3
  config.model.obj_size = 6
  # About 40 epochs of the ~62k filtered train+val scenes at batch 64.
  config.train.num_steps = 40_000
  return apply_variant(config, variant, VARIANTS)
