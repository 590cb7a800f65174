r"""Times the jitted training iteration and sampling on synthetic data already on device.

  python tools/benchmark.py --config=configs/clevr.py [--batch=64] [--steps=50]

No input pipeline is involved: random uint8 images (video model: clips of
model.clip_length frames) are placed on the devices once. Prints compile time, steps/s,
images/s (real images — or clips — per iteration = batch), peak device memory, and the
model FLOP utilisation estimated from XLA's cost analysis of the compiled step. Sampling is
timed on evaluation latents (video: videos of model.sample_frames frames). The last line is
machine-readable:
  TRAIN images_per_s=... steps_per_s=... compile_s=... peak_mem_gib=... mfu=...
"""

import functools
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from relate_jax import config as config_lib  # noqa: E402
from relate_jax import models  # noqa: E402
from relate_jax import steps  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config.')
_BATCH = flags.DEFINE_integer('batch', None, 'Global batch (default: the config\'s).')
_STEPS = flags.DEFINE_integer('steps', 50, 'Timed iterations.')
_WARMUP = flags.DEFINE_integer('warmup', 3, 'Untimed iterations after compilation.')
_SAMPLE_BATCH = flags.DEFINE_integer('sample_batch', 64, 'Batch for the sampling benchmark.')
_PEAK_TFLOPS = flags.DEFINE_float(
    'peak_tflops', None, 'Peak device TFLOP/s for MFU (default: a table for known GPUs).')
flags.mark_flags_as_required(['config'])

# Dense peak throughput used by XLA's default float32 precision on each GPU (TF32 tensor
# cores) and for bfloat16.
_PEAKS = {'H100': {'float32': 494.7, 'bfloat16': 989.4},
          'H200': {'float32': 494.7, 'bfloat16': 989.4},
          'A100': {'float32': 156.0, 'bfloat16': 312.0},
          'V100': {'float32': 15.7, 'bfloat16': 125.0}}


def peak_tflops(dtype: str) -> float | None:
  if _PEAK_TFLOPS.value:
    return _PEAK_TFLOPS.value
  kind = jax.devices()[0].device_kind
  for name, peaks in _PEAKS.items():
    if name in kind:
      return peaks[dtype] * len(jax.devices())
  return None


def peak_memory_gib() -> float:
  """Peak device memory (GPU) or the process's peak resident memory (CPU), in GiB."""
  stats = [d.memory_stats() or {} for d in jax.local_devices()]
  peaks = [s.get('peak_bytes_in_use', 0) for s in stats]
  if any(peaks):
    return max(peaks) / 2**30
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def flops_of(compiled) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  return float((analysis or {}).get('flops', 0.0))


def block(tree):
  jax.tree.map(lambda x: x.block_until_ready() if isinstance(x, jax.Array) else x, tree)


def main(argv):
  del argv
  config = _CONFIG.value
  if _BATCH.value:
    config.train.batch_size = _BATCH.value
  config_lib.validate(config)
  batch, size = config.train.batch_size, config.data.image_size
  dtype = getattr(config.model, 'compute_dtype', 'float32')
  print(f'devices: {jax.devices()}  jax {jax.__version__}  batch {batch}  {size}x{size}  '
        f'M={config.optim.gen_steps}  gradient_penalty={config.loss.gradient_penalty}  '
        f'compute dtype {dtype}', flush=True)

  mesh = steps.make_mesh()
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  state = jax.jit(functools.partial(steps.init_state, config), out_shardings=replicated)(
      jax.random.key(0))
  print(f'parameters: generator side {models.count_params(state.g_params):,}, '
        f'discriminator {models.count_params(state.d_params):,}', flush=True)
  is_video = config.model.name == config_lib.VIDEO
  clip = (config.model.clip_length,) if is_video else ()
  images = jax.device_put(np.random.default_rng(0).integers(
      0, 256, (batch,) + clip + (size, size, 3), dtype=np.uint8), sharded)

  step_fn = steps.compile_train_step(config, mesh)
  start = time.perf_counter()
  compiled = step_fn.lower(state, images).compile()
  compile_s = time.perf_counter() - start
  flops = flops_of(compiled)
  for _ in range(_WARMUP.value):
    state, metrics = compiled(state, images)
  block(metrics)
  start = time.perf_counter()
  for _ in range(_STEPS.value):
    state, metrics = compiled(state, images)
  block((state.step, metrics))
  seconds = time.perf_counter() - start
  steps_per_s = _STEPS.value / seconds
  peak = peak_tflops(dtype)
  mfu = flops * steps_per_s / (peak * 1e12) if peak and flops else float('nan')
  train_peak_mem = peak_memory_gib()
  print(f'train: compile {compile_s:.1f} s, {steps_per_s:.3f} it/s, '
        f'{steps_per_s * batch:.1f} images/s, {flops / 1e9:.1f} GFLOP/iteration, '
        f'MFU {mfu:.3f}, peak memory {train_peak_mem:.2f} GiB', flush=True)

  # Sampling: the generator alone, evaluation latents, batch sharded over devices.
  generator, _ = steps.build_models(config)
  n = _SAMPLE_BATCH.value

  @jax.jit
  def sample(params, key):
    latents = models.sample_latents(key, config.model, n, train=False)
    latents = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharded), latents)
    out, _ = generator.apply({'params': params}, latents, render_single=False,
                             **steps.generator_kwargs(config, train=False))
    return jnp.clip(jnp.round((out + 1.0) * 127.5), 0, 255).astype(jnp.uint8)

  key = jax.random.key(1)
  block(sample(state.g_params, key))
  reps = max(5, _STEPS.value)
  start = time.perf_counter()
  for i in range(reps):
    out = sample(state.g_params, jax.random.fold_in(key, i))
  block(out)
  sample_rate = reps * n / (time.perf_counter() - start)
  if is_video:
    frames = config.model.sample_frames
    print(f'SAMPLE videos_per_s={sample_rate:.2f} frames_per_s={sample_rate * frames:.1f} '
          f'frames={frames} batch={n}', flush=True)
  else:
    print(f'SAMPLE images_per_s={sample_rate:.1f} batch={n}', flush=True)
  print(f'TRAIN images_per_s={steps_per_s * batch:.1f} steps_per_s={steps_per_s:.3f} '
        f'compile_s={compile_s:.1f} peak_mem_gib={train_peak_mem:.2f} mfu={mfu:.3f}', flush=True)


if __name__ == '__main__':
  app.run(main)
