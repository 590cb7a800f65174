"""Tiny CPU config of the video model for tests: 32x32 clips of 4 frames, few channels."""

from relate_jax.config import VIDEO
from relate_jax.config import base_config


def get_config():
  config = base_config()
  config.data.name = 'balls_in_bowl_video_tiny'  # 4 train / 2 test sequences of 32 frames.
  config.data.image_size = 32
  config.model.name = VIDEO
  config.model.num_objects = 3
  config.model.min_objects = 1
  config.model.obj_size = 4
  config.model.obj_dim = 4
  config.model.obj_channels = 16
  config.model.scene_channels = 8
  config.model.decoder_channels = (8, 8, 8)
  config.model.disc_channels = (8, 16, 32)
  config.model.interaction_hidden = 8
  config.model.scale_hidden = 8
  config.model.pose_clamp = 0.8
  config.model.absent_pose = -1.8
  config.model.clip_length = 4
  config.model.rollout_steps = 7
  config.model.sample_frames = 6
  config.train.batch_size = 2
  config.train.num_steps = 3
  config.train.log_every = 1
  config.train.sample_every = 2
  config.train.checkpoint_every = 2
  config.train.num_grid = 2
  config.eval.batch_size = 2
  return config
