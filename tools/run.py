#!/usr/bin/env python3
"""Runs `python ARGS...` inside the project's virtual environment, creating it first.

  python3 tools/run.py -m relate_jax.main --config=configs/shapes.py --workdir=workdirs/shapes
  python3 tools/run.py -m pytest

On first use (or when requirements.txt / setup.cfg change) this makes `.venv` beside the
repo root and installs the package with its test extra into it. Set RELATE_JAX_VENV to use
another location. Needs only a Python >= 3.11 with the standard `venv` module.
"""

import hashlib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get('RELATE_JAX_VENV', os.path.join(ROOT, '.venv'))
STAMP = os.path.join(VENV, '.relate_jax_installed')


def _python() -> str:
  sub = 'Scripts' if os.name == 'nt' else 'bin'
  return os.path.join(VENV, sub, 'python.exe' if os.name == 'nt' else 'python')


def _fingerprint() -> str:
  digest = hashlib.sha256()
  for name in ('requirements.txt', 'setup.cfg', 'pyproject.toml'):
    with open(os.path.join(ROOT, name), 'rb') as f:
      digest.update(f.read())
  return digest.hexdigest()


def ensure_venv() -> str:
  """Creates the venv and installs the project when missing or out of date."""
  if sys.version_info < (3, 11):
    sys.exit(f'relate-jax needs Python >= 3.11 (this is {sys.version.split()[0]}).')
  fingerprint = _fingerprint()
  if os.path.exists(STAMP):
    with open(STAMP) as f:
      if f.read().strip() == fingerprint:
        return _python()
  if not os.path.exists(_python()):
    print(f'[tools/run.py] creating a virtual environment in {VENV}', flush=True)
    subprocess.check_call([sys.executable, '-m', 'venv', VENV])
  print('[tools/run.py] installing relate-jax and its dependencies (first run: ~1 min)',
        flush=True)
  subprocess.check_call([_python(), '-m', 'pip', 'install', '--quiet', '-e', f'{ROOT}[test]'])
  with open(STAMP, 'w') as f:
    f.write(fingerprint + '\n')
  return _python()


def main() -> None:
  python = ensure_venv()
  os.chdir(ROOT)
  os.execv(python, [python] + sys.argv[1:])


if __name__ == '__main__':
  main()
