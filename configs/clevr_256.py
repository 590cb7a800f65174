r"""RELATE on CLEVR at 256x256 with gradient penalty (reference configs/clevr-256-train.json).

The upsample variant: 32x32 scene tensor, object windows upsampled x2 by Ψf, a deeper
image decoder and an extra discriminator conv. Adam(1e-4, 0.5, 0.999), M = 1, DRAGAN
penalty weight 1, batch 64, 200 epochs.

  python -m relate_jax.main --config=configs/clevr_256.py --workdir=workdirs/clevr_256 \
      --config.data.data_dir=/path/to/CLEVR_v1.0
"""

from relate_jax.config import apply_variant, base_config


def get_config(variant=''):
  config = base_config()
  config.data.name = 'clevr'
  config.data.image_size = 256
  config.model.upsample = True
  config.model.num_objects = 6
  config.model.min_objects = 3
  config.model.obj_size = 6
  config.model.disc_channels = (64, 128, 256, 512, 1024, 1024)
  config.optim.b1 = 0.5
  config.optim.gen_steps = 1
  config.loss.gradient_penalty = 1.0
  config.train.num_steps = 133_000  # About 200 epochs of the ~42k filtered CLEVR scenes.
  return apply_variant(config, variant)
