"""Tiny CPU config for tests: 32x32 images, few channels, a handful of steps."""

from relate_jax.config import base_config


def get_config():
  config = base_config()
  config.data.name = 'shapes_tiny'  # 64 train / 16 test images, rendered in seconds.
  config.data.image_size = 32
  config.model.num_objects = 3
  config.model.min_objects = 1
  config.model.obj_size = 4
  config.model.obj_channels = 16
  config.model.scene_channels = 8
  config.model.decoder_channels = (8, 8, 8)
  config.model.disc_channels = (8, 16, 32)
  config.model.interaction_hidden = 8
  config.model.scale_hidden = 8
  config.train.batch_size = 4
  config.train.num_steps = 3
  config.train.log_every = 1
  config.train.sample_every = 2
  config.train.checkpoint_every = 2
  config.train.num_grid = 4
  config.eval.batch_size = 4
  return config
