"""Slow tier (`pytest -m slow`): learning happens, and the benchmark script runs end to end."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from relate_jax import config as config_lib
from relate_jax import steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_position_regression_and_discriminator_learn():
  """Over 300 iterations on the tiny config the position regressor's error falls and D
  separates real from fake better than chance at the start."""
  config = config_lib.load_config_file(os.path.join(ROOT, 'configs', 'test.py'))
  config.train.batch_size = 8
  mesh = steps.make_mesh(jax.devices()[:1])
  step_fn = steps.compile_train_step(config, mesh)
  state = jax.jit(lambda k: steps.init_state(config, k))(jax.random.key(0))
  # Real data: the embedded shapes scenes at the test config's size.
  from relate_jax import data
  iterator = data.make_train_iterator(config, process_index=0, process_count=1)
  history = []
  for _ in range(300):
    state, metrics = step_fn(state, next(iterator)['image'])
    history.append({k: float(v) for k, v in jax.device_get(metrics).items()})
  first = {k: np.mean([h[k] for h in history[:50]]) for k in history[0]}
  last = {k: np.mean([h[k] for h in history[-50:]]) for k in history[0]}
  assert last['g_position'] < 0.8 * first['g_position'], (first, last)
  assert last['d_position'] < 0.8 * first['d_position'], (first, last)
  assert all(np.isfinite(v) for h in history for v in h.values())


@pytest.mark.slow
def test_benchmark_script_prints_machine_readable_line():
  result = subprocess.run(
      [sys.executable, 'tools/benchmark.py', '--config=configs/test.py', '--batch=4',
       '--steps=3', '--warmup=1', '--sample_batch=4'],
      cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS='cpu'), capture_output=True, text=True,
      timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  last = result.stdout.strip().splitlines()[-1]
  assert last.startswith('TRAIN images_per_s=')
  fields = dict(kv.split('=') for kv in last.split()[1:])
  assert float(fields['steps_per_s']) > 0 and float(fields['images_per_s']) > 0
