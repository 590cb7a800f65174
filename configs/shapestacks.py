r"""RELATE on ShapeStacks with the ordered (Markov) pose chain (reference
configs/shapestacks-train.json; paper eq. 3).

Stacks of 2-5 blocks, 128x128, K = 5 slots, H' = 4, Nb = 5, Nf = 20, Adam(1e-3, 0, 0.999),
M = 2, batch 64, 30 virtual epochs of 100k samples. The bottom block's pose is sampled in
the lower half of the image and corrected by f0; each next block sits above the previous
one, displaced by f1 (REFERENCE.md §2.3).

  python -m relate_jax.main --config=configs/shapestacks.py --workdir=workdirs/shapestacks \
      --config.data.data_dir=/path/to/shapestacks

Variants:
  :gp    the gradient-penalty configuration (shapestacks-grad_pen-train.json: lr 1e-3,
         beta1 0.5, M = 1, DRAGAN penalty weight 1).
  :main  the paper's Table A4 model (Nb = 12, Nf = 64).
  :paper_f1  f1 also sees θ_{k-1}, as the paper writes eq. 3.
Paper (Table 2): FID 95.8 (main), 79.1 (+ scale), scored at 64x64.
"""

from relate_jax.config import ORDERED, apply_variant, base_config

VARIANTS = {
    'gp': {'optim.b1': 0.5, 'optim.gen_steps': 1, 'loss.gradient_penalty': 1.0},
    'main': {'model.bg_dim': 12, 'model.obj_dim': 64},
    'paper_f1': {'model.order_f1_sees_pose': True},
}


def get_config(variant=''):
  config = base_config()
  config.data.name = 'shapestacks'
  config.model.name = ORDERED
  config.model.num_objects = 5
  config.model.min_objects = 2
  config.model.obj_size = 4
  config.model.bg_dim = 5
  config.optim.lr = 1e-3
  config.train.num_steps = 46_890  # 30 epochs x ceil(100,000 / 64).
  config.eval.resolution = 64
  return apply_variant(config, variant, VARIANTS)
