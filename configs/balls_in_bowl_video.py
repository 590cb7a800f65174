r"""RELATE video on BallsInBowl (paper §4.3: clips of 15 frames, Table A4 model).

The static BallsInBowl model (K = 2 balls, sum pooling, one constant per ball and a
constant style, Nf = 1, Nb = 3, H' = 8, θ̂ ~ U[-0.8, 0.8]^2, M = 1) with the dynamics of
relate_video, trained on clips of T = 15 frames cut at a random start from the simulated
32-frame sequences. As §A3 says for dynamics: lr 1e-4 and β1 = 0. Batch 32 as the
reference's video config; 60 epochs of 10,000 clips. The data is simulated on first use.

  python -m relate_jax.main --config=configs/balls_in_bowl_video.py --workdir=workdirs/bib_video
  python -m relate_jax.evaluate --workdir=workdirs/bib_video --metrics=fvd500,motion500
  python -m relate_jax.evaluate --workdir=workdirs/bib_video --metrics=fvd500 --baseline=shuffled

Paper (§4.3): FVD 556 on 30-frame clips; time-shuffled real sequences 920.
"""

from relate_jax.config import VIDEO, apply_variant, base_config

# 'cpu': the same model at 32x32 with narrower layers and 10-frame clips, to see balls roll
# after a CPU run (the docs/ GIF): `--config=configs/balls_in_bowl_video.py:cpu`.
VARIANTS = {'cpu': {
    'data.image_size': 32,
    'model.obj_channels': 128,
    'model.scene_channels': 64,
    'model.decoder_channels': (64, 32, 32),
    'model.disc_channels': (32, 64, 128),
    'model.clip_length': 10,
    'train.batch_size': 16,
    'train.num_steps': 3_000,
    'train.log_every': 25,
    'train.sample_every': 250,
    'train.checkpoint_every': 250,
    'train.num_grid': 16,
}}


def get_config(variant=''):
  config = base_config()
  config.data.name = 'balls_in_bowl_video'
  config.data.image_size = 128
  config.model.name = VIDEO
  config.model.num_objects = 2
  config.model.min_objects = 2
  config.model.obj_size = 8
  config.model.bg_dim = 3
  config.model.obj_dim = 1
  config.model.pooling = 'sum'
  config.model.fixed_objects = True
  config.model.scale_augment = False
  config.model.pose_range = 0.8
  config.model.pose_clamp = 0.8
  config.model.absent_pose = -1.8
  config.model.clip_length = 15
  config.model.rollout_steps = 20
  config.model.sample_frames = 30
  config.optim.lr = 1e-4
  config.optim.b1 = 0.0
  config.optim.gen_steps = 1
  config.train.batch_size = 32
  config.train.num_steps = 18_750  # 60 epochs x 10,000 clips / 32.
  config.eval.batch_size = 10
  return apply_variant(config, variant, VARIANTS)
