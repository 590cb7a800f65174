"""Named evaluation protocols, shared by training and the standalone evaluator.

  results = registry.evaluate(config, sample_fn, ['fid10k', 'kid10k'], workdir, step=1000)

`sample_fn(num, seed, batch_size)` yields uint8 batches from the generator — images
(B, S, S, 3) for image protocols, videos (B, T, S, S, 3) for video protocols — `num`
samples in total, deterministic in `seed`.

A protocol is (kind, N, detector). Generated features are computed once per (detector, N)
and shared by the protocols that use them (fid10k and kid10k score the same 10k samples).
The real side is ``data.iterate_split(config, config.eval.split, …)``, at most N examples
(all of the split when it is smaller; the count is recorded), and its features are cached
on disk keyed by dataset, split, image size, evaluation resolution, detector and N. With
``config.eval.resolution`` set, both sides are resized to it with PIL LANCZOS before the
detector (the paper: 96 px for CLEVR5, 64 px for ShapeStacks). Each result is appended as a
JSON line to ``<workdir>/metrics.jsonl``.
"""

import dataclasses
import json
import logging
import os
import time
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from relate_jax.metrics import frechet
from relate_jax.metrics import weights

SampleFn = Callable[[int, int, int], Iterable[np.ndarray]]

SAMPLE_SEED = 0  # Fixed generated set: the same latents at every evaluation.



@dataclasses.dataclass
class _RealSet:
  features: np.ndarray
  stats: frechet.Statistics | None = None  # Built on first Fréchet use (keeps its factor).


# Real features (and statistics) per cache file, kept for the life of the process so
# in-training evaluations pay for loading and the eigendecomposition once.
_REAL_MEMO: dict[str, _RealSet] = {}


@dataclasses.dataclass(frozen=True)
class Protocol:
  name: str
  kind: str  # 'frechet' (FID / FVD) or 'kernel' (KID / KVD, reported ×10³).
  num: int  # N: generated samples, and at most N real ones.
  detector: str  # 'inception' (images) or 'i3d' (videos).


PROTOCOLS = {p.name: p for p in (
    Protocol('fid10k', 'frechet', 10_000, 'inception'),
    Protocol('kid10k', 'kernel', 10_000, 'inception'),
    Protocol('fid5k', 'frechet', 5_000, 'inception'),
    Protocol('kid5k', 'kernel', 5_000, 'inception'),
    Protocol('fid1k', 'frechet', 1_000, 'inception'),
    Protocol('kid1k', 'kernel', 1_000, 'inception'),
    Protocol('fvd500', 'frechet', 500, 'i3d'),
    Protocol('kvd500', 'kernel', 500, 'i3d'),
    Protocol('fvd256', 'frechet', 256, 'i3d'),
    Protocol('kvd256', 'kernel', 256, 'i3d'),
)}


def get(name: str) -> Protocol:
  if name not in PROTOCOLS:
    raise ValueError(f'unknown metric {name!r}; known: {", ".join(sorted(PROTOCOLS))}')
  return PROTOCOLS[name]


def _detector(name: str, batch_size: int):
  # Imported lazily: building a detector loads (and on first use downloads) its weights.
  if name == 'inception':
    from relate_jax.metrics import inception  # pylint: disable=g-import-not-at-top
    return inception.InceptionFeatures(batch_size)
  if name == 'i3d':
    from relate_jax.metrics import i3d  # pylint: disable=g-import-not-at-top
    return i3d.I3DFeatures(batch_size)
  raise ValueError(f'unknown detector {name!r}')


def resize_lanczos(batch: np.ndarray, size: int) -> np.ndarray:
  """uint8 (..., H, W, 3) → (..., size, size, 3) with PIL LANCZOS (the paper's tools/resize.py)."""
  if size <= 0 or batch.shape[-3:-1] == (size, size):
    return batch
  flat = batch.reshape((-1,) + batch.shape[-3:])
  out = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.LANCZOS))
                  for im in flat])
  return out.reshape(batch.shape[:-3] + (size, size, 3))


def _take(batches: Iterable[np.ndarray], num: int) -> Iterator[np.ndarray]:
  seen = 0
  for batch in batches:
    batch = np.asarray(batch)
    if batch.dtype != np.uint8:
      raise TypeError(f'metrics need uint8 samples, got {batch.dtype}')
    batch = batch[:num - seen]
    seen += len(batch)
    yield batch
    if seen >= num:
      return


def features(batches: Iterable[np.ndarray], num: int, detector, resolution: int,
             label: str = '') -> np.ndarray:
  """Detector features of the first `num` samples of `batches` (resized first if asked)."""
  out, seen, t0, last = [], 0, time.time(), time.time()
  for batch in _take(batches, num):
    out.append(detector(resize_lanczos(batch, resolution)))
    seen += len(batch)
    if time.time() - last > 30:
      logging.info('%s: features of %d/%d samples (%.0f s)', label, seen, num, time.time() - t0)
      last = time.time()
  if not out:
    raise ValueError(f'{label}: no samples')
  return np.concatenate(out)


def stats_cache_dir() -> str:
  """$RELATE_JAX_CACHE/stats (default ~/.cache/relate_jax/stats): real-data features."""
  root = os.environ.get('RELATE_JAX_CACHE') or os.path.join(
      os.path.expanduser('~'), '.cache', 'relate_jax')
  return os.path.join(root, 'stats')


def real_cache_path(config, split: str, num: int, detector: str) -> str:
  d = config.data
  res = config.eval.resolution or d.image_size
  return os.path.join(stats_cache_dir(),
                      f'{d.name}_{split}_{d.image_size}px_eval{res}px_{detector}_n{num}.npz')


def real_features(config, num: int, detector_name: str, detector=None) -> np.ndarray:
  """Features of up to `num` examples of config.eval.split, cached on disk."""
  return _real(config, num, detector_name, detector).features


def _real(config, num, detector_name, detector=None) -> _RealSet:
  path = real_cache_path(config, config.eval.split, num, detector_name)
  if path not in _REAL_MEMO:
    _REAL_MEMO[path] = _RealSet(_real_features_on_disk(path, config, num, detector_name,
                                                       detector))
  return _REAL_MEMO[path]


def _real_features_on_disk(path, config, num, detector_name, detector):
  if os.path.exists(path):
    with np.load(path) as f:
      return f['features']
  from relate_jax import data  # pylint: disable=g-import-not-at-top
  detector = detector or _detector(detector_name, config.eval.batch_size)
  logging.info('Real %s features of %s/%s (up to %d examples); cached at %s', detector_name,
               config.data.name, config.eval.split, num, path)
  feats = features(data.iterate_split(config, config.eval.split, config.eval.batch_size,
                                      num=num), num, detector, config.eval.resolution,
                   label=f'real {config.data.name}/{config.eval.split}')
  os.makedirs(os.path.dirname(path), exist_ok=True)
  partial = path + '.partial.npz'
  np.savez(partial, features=feats)
  os.replace(partial, path)
  return feats


def score(protocol: Protocol, fake: np.ndarray, real: np.ndarray,
          real_stats: frechet.Statistics | None = None) -> dict[str, float]:
  """{'value': …} (and 'std' for kernel distances, both ×10³) of one protocol."""
  if protocol.kind == 'frechet':
    real_stats = real_stats or frechet.statistics(real)
    return {'value': frechet.frechet_distance(frechet.statistics(fake), real_stats)}
  mean, std = frechet.kernel_distance(fake, real)
  return {'value': mean * 1e3, 'std': std * 1e3}


def evaluate(config, sample_fn: SampleFn, names: Iterable[str], workdir: str | None,
             step: int | None = None, real_fn: Callable[[int, str], np.ndarray] | None = None
             ) -> dict[str, float]:
  """Runs the named protocols; returns {name: value, name_std: std (kernel kinds)}.

  real_fn(num, detector) -> features overrides the cached real-data features (tests).
  Results are appended to <workdir>/metrics.jsonl when workdir is given.
  """
  protocols = [get(n) for n in names]
  results, fake_cache, detectors = {}, {}, {}
  for p in protocols:
    t0 = time.time()
    if p.detector not in detectors:
      detectors[p.detector] = _detector(p.detector, config.eval.batch_size)
    det = detectors[p.detector]
    if (p.detector, p.num) not in fake_cache:
      fake_cache[(p.detector, p.num)] = features(
          sample_fn(p.num, SAMPLE_SEED, config.eval.batch_size), p.num, det,
          config.eval.resolution, label=f'generated ({p.name})')
    fake = fake_cache[(p.detector, p.num)]
    if real_fn is not None:
      real_set = _RealSet(real_fn(p.num, p.detector))
    else:
      real_set = _real(config, p.num, p.detector, det)
    real = real_set.features
    if p.kind == 'frechet' and real_set.stats is None:
      real_set.stats = frechet.statistics(real)
    out = score(p, fake, real, real_set.stats)
    seconds = time.time() - t0
    results[p.name] = out['value']
    if 'std' in out:
      results[f'{p.name}_std'] = out['std']
    record = {'step': step, 'name': p.name, 'value': out['value'], 'seconds': round(seconds, 2),
              'num_fake': len(fake), 'num_real': len(real), 'detector': p.detector,
              'resolution': config.eval.resolution or None, 'split': config.eval.split,
              'dataset': config.data.name, 'time': time.strftime('%Y-%m-%dT%H:%M:%S')}
    if 'std' in out:
      record['std'] = out['std']
    logging.info('%s = %.4f%s (%d generated vs %d real, %.1f s)', p.name, out['value'],
                 f' ± {out["std"]:.4f}' if 'std' in out else '', len(fake), len(real), seconds)
    if len(real) < p.num:
      logging.warning('%s: only %d real examples in %s/%s (protocol N = %d): compare only '
                      'with results at the same counts.', p.name, len(real), config.data.name,
                      config.eval.split, p.num)
    if workdir:
      os.makedirs(workdir, exist_ok=True)
      with open(os.path.join(workdir, 'metrics.jsonl'), 'a') as f:
        f.write(json.dumps(record) + '\n')
  return results


def prefetch_weights(names: Iterable[str]) -> None:
  """Fetches the detector weights the protocols need (before a long run starts)."""
  for det in {get(n).detector for n in names}:
    weights.load(weights.INCEPTION if det == 'inception' else weights.I3D)
