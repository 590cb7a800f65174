r"""RELATE on RealTraffic static frames (reference configs/cars_real_traffic-train.json).

Frames of a street-crossing camera with 1-5 cars, 128x128, K = 5 (1-5 present), H' = 6,
Nb = 1, Nf = 20, Adam(1e-4, 0, 0.999), M = 2, batch 64, 30 virtual epochs of 100k samples.

  python -m relate_jax.main --config=configs/real_traffic.py --workdir=workdirs/real_traffic \
      --config.data.data_dir=/path/to/cars_real_traffic

Paper (Table 2, "Ours + scale"): FID 46.8 at 128x128.

Paper Table A4 model (no scale augmentation): FID 42.0. Use `--config=configs/real_traffic.py:main`.
"""

from relate_jax.config import apply_variant, base_config

# Variants: 'main' is the paper's main-table model (Table A4); relate_jax.config.ABLATIONS
# (blockgan2d, no_residual, no_position) apply too, e.g. `configs/real_traffic.py:main+blockgan2d`.
VARIANTS = {'main': {'model.scale_augment': False}}


def get_config(variant=''):
  config = base_config()
  config.data.name = 'real_traffic'
  config.model.num_objects = 5
  config.model.min_objects = 1
  config.model.obj_size = 6
  config.train.num_steps = 46_890  # 30 epochs x ceil(100,000 / 64).
  return apply_variant(config, variant, VARIANTS)
