r"""RELATE on CLEVR5 (reference configs/clevr5-train.json, scale-augmented model).

90k training images of 3-5 objects (OCF authors' generator), 128x128, K = 5, H' = 4,
Nb = 1, Nf = 20, Adam(1e-4, 0, 0.999), M = 2, batch 64, 40 epochs (~56k iterations;
"about 8 hours on one V100" for the reference).

  python -m relate_jax.main --config=configs/clevr5.py --workdir=workdirs/clevr5 \
      --config.data.data_dir=/path/to/CLEVR5

Paper (Table 2, "Ours + scale"): FID 37.4, scored at 96x96 (`--config.eval.resolution=96`).

Paper Table A4 model (no scale augmentation, Nf = 90): FID 58.4. Use `--config=configs/clevr5.py:main`.
"""

from relate_jax.config import apply_variant, base_config

# Variants: 'main' is the paper's main-table model (Table A4); relate_jax.config.ABLATIONS
# (blockgan2d, no_residual, no_position) apply too, e.g. `configs/clevr5.py:main+blockgan2d`.
VARIANTS = {'main': {'model.scale_augment': False, 'model.obj_dim': 90}}


def get_config(variant=''):
  config = base_config()
  config.data.name = 'clevr5'
  config.model.num_objects = 5
  config.model.min_objects = 3
  config.model.obj_size = 4
  config.train.num_steps = 56_280  # 40 epochs x ceil(90,000 / 64).
  config.eval.resolution = 96
  return apply_variant(config, variant, VARIANTS)
