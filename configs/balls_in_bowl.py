r"""RELATE on BallsInBowl, the paper's ablation dataset (Table 1, Table A4).

Exactly K = 2 balls, sum pooling, one learned constant per object and a constant style
vector (`fixed_objects`), Nf = 1, Nb = 3, H' = 8, θ̂ ~ U[-0.8, 0.8]^2, Adam(1e-3, 0.5,
0.999), M = 1, batch 64. The data is simulated and rendered locally on first use.

  python -m relate_jax.main --config=configs/balls_in_bowl.py --workdir=workdirs/bib

Ablations of Table 1 (FID: full 81.9, BlockGAN2D 152.3, w/o residual 133.9,
w/o pos. reg. 154.8):
  --config=configs/balls_in_bowl.py:blockgan2d
  --config=configs/balls_in_bowl.py:no_residual
  --config=configs/balls_in_bowl.py:no_position
"""

from relate_jax.config import apply_variant, base_config


def get_config(variant=''):
  config = base_config()
  config.data.name = 'balls_in_bowl'
  config.data.image_size = 128
  config.model.num_objects = 2
  config.model.min_objects = 2
  config.model.obj_size = 8
  config.model.bg_dim = 3
  config.model.obj_dim = 1
  config.model.pooling = 'sum'
  config.model.fixed_objects = True
  config.model.scale_augment = False
  config.model.pose_range = 0.8
  config.optim.lr = 1e-3
  config.optim.b1 = 0.5
  config.optim.gen_steps = 1
  # 60 epochs of 10,000 samples ("an epoch as 10,000 iterations over the data", A6).
  config.train.num_steps = 9_375
  return apply_variant(config, variant)
