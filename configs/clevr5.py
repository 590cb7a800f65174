r"""RELATE on CLEVR5 (reference configs/clevr5-train.json, scale-augmented model).

90k training images of 3-5 objects (OCF authors' generator), 128x128, K = 5, H' = 4,
Nb = 1, Nf = 20, Adam(1e-4, 0, 0.999), M = 2, batch 64, 40 epochs (~56k iterations;
"about 8 hours on one V100" for the reference).

  python -m relate_jax.main --config=configs/clevr5.py --workdir=workdirs/clevr5 \
      --config.data.data_dir=/path/to/CLEVR5

Paper (Table 2, "Ours + scale"): FID 37.4, scored at 96x96 (`--config.eval.resolution=96`).
"""

from relate_jax.config import base_config


def get_config():
  config = base_config()
  config.data.name = 'clevr5'
  config.model.num_objects = 5
  config.model.min_objects = 3
  config.model.obj_size = 4
  config.train.num_steps = 56_280  # 40 epochs x ceil(90,000 / 64).
  config.eval.resolution = 96
  return config
