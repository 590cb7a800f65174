r"""Converts a reference PyTorch checkpoint into a relate-jax workdir.

  pip install 'relate-jax[torch]'
  python -m relate_jax.convert_torch --checkpoint=exp/model_epoch_00000039.pth \
      --config=configs/clevr.py --workdir=workdirs/clevr_from_torch

Reads the state dict (torch.load(weights_only=True): tensors only, anything else is refused
unless --trust_pickle) and, when `model_epoch_…_opt.pth` lies beside it, both Adam states:
moments and step counts, so training continues where the reference stopped. Writes an
Orbax checkpoint at the reference's iteration count (its D optimizer's step; 0 without an
optimizer state) and config.json into --workdir, which `relate_jax.main` (resume),
`relate_jax.evaluate`, `relate_jax.sample` and relate_jax.api then load as if trained here.

Every key is consumed and every shape checked against the model `--config` builds;
unknown keys, missing parameters and mismatches are listed by name. Legacy (torch ≤ 1.5,
non-zip) checkpoints load too. The reference fed D real images in [−0.5, 0.5]: continue its
training with --config.data.pixel_range=reference.
"""

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from relate_jax import reference_checkpoint

_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'Reference model_epoch_XXXXXXXX.pth.')
_CONFIG = config_flags.DEFINE_config_file('config', None, 'relate-jax config of the same model.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'New relate-jax workdir to write.')
_TRUST = flags.DEFINE_bool('trust_pickle', False,
                           'Allow arbitrary pickled objects (runs code from the file: only for '
                           'files you trust).')
flags.mark_flags_as_required(['checkpoint', 'config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from relate_jax import config as config_lib
  try:
    config_lib.validate(_CONFIG.value)
  except ValueError as e:
    sys.exit(f'error: {e}')
  try:
    reference_checkpoint.convert(_CHECKPOINT.value, _CONFIG.value, _WORKDIR.value,
                                 _TRUST.value)
  except reference_checkpoint.ConvertError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main)
