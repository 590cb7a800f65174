r"""The embedded default: RELATE on procedurally rendered shapes, sized for a CPU.

No download: the dataset is rendered locally on first use (2-5 shaded objects on a
ground plane, never interpenetrating). 64x64 images, K = 5 slots (2-5 present),
narrower layers than the paper's model so a laptop CPU trains it in minutes.

  python -m relate_jax.main --config=configs/shapes.py --workdir=workdirs/shapes
"""

from relate_jax.config import base_config


def get_config():
  config = base_config()
  config.data.name = 'shapes'
  config.data.image_size = 64
  config.model.num_objects = 5
  config.model.min_objects = 2
  config.model.obj_size = 4
  config.model.obj_channels = 128
  config.model.scene_channels = 64
  config.model.decoder_channels = (64, 32, 32)
  config.model.disc_channels = (32, 64, 128, 256)
  config.optim.lr = 2e-4
  config.train.batch_size = 16
  config.train.num_steps = 800
  config.train.log_every = 25
  config.train.sample_every = 100
  config.train.checkpoint_every = 200
  config.train.num_grid = 36
  return config
