r"""RELATE video on RealTraffic (reference configs/cars_real_traffic-video-train.json).

Clips of T = 10 frames (stride 2) of a street-crossing camera, 128x128, K = 5 slots (1-5
cars present, also when sampling), H' = 6, Nb = 1, Nf = 20, Adam(1e-4, 0, 0.999), M = 2,
batch 32, 20 virtual epochs of 100,000 clips. θ(0) is clamped to ±0.8 (absent cars parked
at −1.8), the rollout has 20 steps in training and starts at a random s; sampled videos
have 32 frames from s = 1 and z0 ~ U[−0.5, 0.5] (paper A3; the reference's eval config).

  python -m relate_jax.main --config=configs/real_traffic_video.py --workdir=workdirs/rt_video \
      --config.data.data_dir=/path/to/cars_real_traffic
  python -m relate_jax.sample --workdir=workdirs/rt_video --num=500 --frames=30 --out=videos/
  python -m relate_jax.evaluate --workdir=workdirs/rt_video --metrics=fvd500,kvd500

Paper (§4.3): FVD 2253 on 30-frame clips (scale model 1855); time-shuffled real clips 3370.
"""

from relate_jax.config import VIDEO, apply_variant, base_config


def get_config(variant=''):
  config = base_config()
  config.data.name = 'real_traffic_video'
  config.model.name = VIDEO
  config.model.num_objects = 5
  config.model.min_objects = 1
  config.model.obj_size = 6
  config.model.pose_clamp = 0.8
  config.model.absent_pose = -1.8
  config.model.eval_bg_range = 0.5
  config.model.eval_all_objects = False
  config.model.clip_length = 10
  config.model.rollout_steps = 20
  config.model.sample_frames = 32
  config.train.batch_size = 32
  config.train.num_steps = 62_500  # 20 epochs x ceil(100,000 / 32).
  config.eval.batch_size = 10
  return apply_variant(config, variant)
