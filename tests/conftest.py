"""Test-wide settings: CPU only, fast compiles, isolated caches."""

import os

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import jax  # noqa: E402
import pytest  # noqa: E402

# Compile time dominates the tiny test models on 2 cores.
jax.config.update('jax_disable_most_optimizations', True)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
  """Keep prepared datasets and weights out of the user's home during tests."""
  monkeypatch.setenv('RELATE_JAX_DATA', str(tmp_path_factory.getbasetemp() / 'tfds'))
