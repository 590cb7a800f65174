r"""RELATE on CLEVR5-vbg (reference configs/clevr5_vbg-train.json, scale-augmented model).

Like CLEVR5 with a varying background: 90k training images of 3-5 objects, 128x128,
K = 5, H' = 4, Nb = 1, Nf = 20, Adam(1e-4, 0, 0.999), M = 2, batch 64, 40 epochs
(the paper's Table A4 says 30).

  python -m relate_jax.main --config=configs/clevr5_vbg.py --workdir=workdirs/clevr5_vbg \
      --config.data.data_dir=/path/to/CLEVR5_vbg

Paper (Table 2, "Ours + scale"): FID 35.9, scored at 96x96.

Paper Table A4 model (no scale augmentation, Nf = 90, 30 epochs): FID 36.4. Use `--config=configs/clevr5_vbg.py:main`.
"""

from relate_jax.config import apply_variant, base_config

# Variants: 'main' is the paper's main-table model (Table A4); relate_jax.config.ABLATIONS
# (blockgan2d, no_residual, no_position) apply too, e.g. `configs/clevr5_vbg.py:main+blockgan2d`.
VARIANTS = {'main': {'model.scale_augment': False, 'model.obj_dim': 90, 'train.num_steps': 42_210}}


def get_config(variant=''):
  config = base_config()
  config.data.name = 'clevr5_vbg'
  config.model.num_objects = 5
  config.model.min_objects = 3
  config.model.obj_size = 4
  config.train.num_steps = 56_280  # 40 epochs x ceil(90,000 / 64).
  config.eval.resolution = 96
  return apply_variant(config, variant, VARIANTS)
