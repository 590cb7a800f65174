"""Data-parallel training: one step on 8 simulated CPU devices equals the 1-device step."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent('''
    import functools, jax, numpy as np
    jax.config.update('jax_disable_most_optimizations', True)
    from relate_jax import config as config_lib, steps
    assert len(jax.devices()) == 8, jax.devices()
    config = config_lib.load_config_file('configs/test.py')
    config.train.batch_size = 8
    config.loss.gradient_penalty = 1.0
    # Adam's first step is lr * g / (|g| + eps): with the default eps it turns gradients that
    # are zero in exact arithmetic (biases before an instance norm) into +-lr from rounding
    # noise alone. A larger eps keeps the update proportional to the gradient, so the check
    # compares what sharding affects: the gradients and updates.
    config.optim.eps = 1e-2
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
      mesh = steps.make_mesh(devices)
      state = jax.jit(functools.partial(steps.init_state, config))(jax.random.key(0))
      state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
      batch = jax.device_put(images, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data')))
      step = steps.compile_train_step(config, mesh)
      state, metrics = step(state, batch)
      results.append(jax.device_get((state.g_params, state.d_params, state.spectral, metrics)))
    one, eight = results
    worst = 0.0  # max |a - b| / (atol + rtol |a|) over every parameter and loss
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
      a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
      worst = max(worst, float(np.max(np.abs(a - b) / (1e-6 + 1e-4 * np.abs(a)))))
    print('WORST', worst)
''')


def test_eight_devices_equal_one_device():
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=8')
  result = subprocess.run([sys.executable, '-c', SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  worst = float(result.stdout.split('WORST')[1])
  assert worst <= 1.0, worst
