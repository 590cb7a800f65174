"""Named evaluation protocols, shared by training and the standalone evaluator.

  results = registry.evaluate(config, sample_fn, ['fid10k', 'kid10k'], workdir, step=1000)

`sample_fn(num, seed, batch_size)` yields uint8 image batches (B, S, S, 3) from the
generator, `num` samples in total, deterministic in `seed`; for video protocols it is
called as `sample_fn(num, seed, batch_size, frames=F)` and yields videos (B, F, S, S, 3).
:class:`ModelSamples` makes it (and the pose function of motion500) from a model with
``sample_batches`` (relate_jax.api.Relate).

A protocol is (kind, N, detector, frames). Generated features are computed once per
(detector, N, frames) and shared by the protocols that use them (fid10k and kid10k score
the same 10k samples). The real side is ``data.iterate_split(config, config.eval.split,
…)``, at most N examples (all of the split when it is smaller; the count is recorded);
video protocols use its evaluation clips of F = 30 frames. Real features are cached on
disk keyed by dataset, split, image size, evaluation resolution, detector, frames and N.
With ``config.eval.resolution`` set, both sides are resized to it with PIL LANCZOS before
the detector (the paper: 96 px for CLEVR5, 64 px for ShapeStacks), which then resizes to
its input with the legacy-TF bilinear rule (Inception 299, I3D 224).

Baselines (``baseline='shuffled'``, no model): the generated side is replaced by N clips
of the train split with their frames in a random order (the paper's time-shuffled real
sequences, §4.3), against the same test clips.

motion500 (BallsInBowl only): the model's pose trajectories θ(t) of 500 videos of 30
frames, in pixels, against the simulator's test trajectories (metrics/motion.py).

Each result is appended as a JSON line to ``<workdir>/metrics.jsonl`` with the protocol:
detector, the sha256 of its weights file, frames, the resize path, N real / N fake and
the baseline (None for a model).
"""

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from relate_jax.metrics import frechet
from relate_jax.metrics import motion
from relate_jax.metrics import weights

SampleFn = Callable[..., Iterable[np.ndarray]]
PoseFn = Callable[[int, int, int, int], np.ndarray]

SAMPLE_SEED = 0  # Fixed generated set: the same latents at every evaluation.
VIDEO_FRAMES = 30  # F of the video protocols (paper §4.3: 30-frame clips).
SHUFFLED = 'shuffled'
BASELINES = (SHUFFLED,)


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
  kind: str  # 'frechet' (FID / FVD), 'kernel' (KID / KVD, reported ×10³) or 'motion'.
  num: int  # N: generated samples, and at most N real ones.
  detector: str | None  # 'inception' (images), 'i3d' (videos), None (motion).
  frames: int | None = None  # F: frames per video (None: images).


PROTOCOLS = {p.name: p for p in (
    Protocol('fid10k', 'frechet', 10_000, 'inception'),
    Protocol('kid10k', 'kernel', 10_000, 'inception'),
    Protocol('fid5k', 'frechet', 5_000, 'inception'),
    Protocol('kid5k', 'kernel', 5_000, 'inception'),
    Protocol('fid1k', 'frechet', 1_000, 'inception'),
    Protocol('kid1k', 'kernel', 1_000, 'inception'),
    Protocol('fvd500', 'frechet', 500, 'i3d', VIDEO_FRAMES),
    Protocol('kvd500', 'kernel', 500, 'i3d', VIDEO_FRAMES),
    Protocol('fvd256', 'frechet', 256, 'i3d', VIDEO_FRAMES),
    Protocol('kvd256', 'kernel', 256, 'i3d', VIDEO_FRAMES),
    Protocol('motion500', 'motion', 500, None, VIDEO_FRAMES),
)}

# Weights file of each detector (weights.py).
DETECTOR_WEIGHTS = {'inception': weights.INCEPTION, 'i3d': weights.I3D}


def get(name: str) -> Protocol:
  if name not in PROTOCOLS:
    raise ValueError(f'unknown metric {name!r}; known: {", ".join(sorted(PROTOCOLS))}')
  return PROTOCOLS[name]


def _detector_module(name: str):
  # Imported lazily: the detector modules import flax.
  if name == 'inception':
    from relate_jax.metrics import inception  # pylint: disable=g-import-not-at-top
    return inception
  if name == 'i3d':
    from relate_jax.metrics import i3d  # pylint: disable=g-import-not-at-top
    return i3d
  raise ValueError(f'unknown detector {name!r}')


def _detector(name: str, batch_size: int):
  """The feature extractor `name`: loads (and on first use downloads) its weights."""
  module = _detector_module(name)
  cls = module.InceptionFeatures if name == 'inception' else module.I3DFeatures
  return cls(batch_size)


_SHA256: dict[tuple, str] = {}


def weights_sha256(detector: str) -> str | None:
  """sha256 of the weights file the detector loads (None if it is not on disk)."""
  path = weights.weights_path(DETECTOR_WEIGHTS[detector])
  if not os.path.exists(path):
    return None
  key = (path, os.path.getsize(path), os.path.getmtime(path))
  if key not in _SHA256:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
      for chunk in iter(lambda: f.read(1 << 20), b''):
        digest.update(chunk)
    _SHA256[key] = digest.hexdigest()
  return _SHA256[key]


def protocol_record(config, p: Protocol) -> dict:
  """The protocol fields of a metrics.jsonl row: detector, weights hash, frames, resizes."""
  record = {'frames': p.frames, 'resolution': config.eval.resolution or None}
  if p.detector is None:
    return record
  resize = [['lanczos', config.eval.resolution]] if config.eval.resolution else []
  resize.append(['legacy_tf_bilinear', _detector_module(p.detector).INPUT_SIZE])
  record.update(detector=p.detector, detector_weights=DETECTOR_WEIGHTS[p.detector],
                detector_weights_sha256=weights_sha256(p.detector), resize=resize)
  return record


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


def real_cache_path(config, split: str, num: int, detector: str, frames: int | None = None,
                    shuffled: bool = False) -> str:
  """Cache file of real features: dataset, split (time-shuffled?), sizes, detector, F, N."""
  d = config.data
  res = config.eval.resolution or d.image_size
  view = f'{split}_{SHUFFLED}' if shuffled else split
  clip = f'_f{frames}' if frames else ''
  return os.path.join(stats_cache_dir(),
                      f'{d.name}_{view}_{d.image_size}px_eval{res}px_{detector}{clip}_n{num}.npz')


def real_features(config, num: int, detector_name: str, detector=None,
                  frames: int | None = None) -> np.ndarray:
  """Features of up to `num` examples (clips of `frames`) of config.eval.split, cached on disk."""
  return _real(config, config.eval.split, num, detector_name, detector, frames).features


def _real(config, split, num, detector_name, detector=None, frames=None,
          shuffled=False) -> _RealSet:
  path = real_cache_path(config, split, num, detector_name, frames, shuffled)
  if path not in _REAL_MEMO:
    _REAL_MEMO[path] = _RealSet(_real_features_on_disk(
        path, config, split, num, detector_name, detector, frames, shuffled))
  return _REAL_MEMO[path]


def _real_features_on_disk(path, config, split, num, detector_name, detector, frames,
                           shuffled):
  if os.path.exists(path):
    with np.load(path) as f:
      return f['features']
  from relate_jax import data  # pylint: disable=g-import-not-at-top
  detector = detector or _detector(detector_name, config.eval.batch_size)
  view = f'{config.data.name}/{split}' + (' time-shuffled' if shuffled else '')
  logging.info('Real %s features of %s (up to %d examples); cached at %s', detector_name,
               view, num, path)
  clips = {} if frames is None else {'frames': frames, 'shuffle_time': shuffled}
  feats = features(data.iterate_split(config, split, config.eval.batch_size, num=num, **clips),
                   num, detector, config.eval.resolution, label=f'real {view}')
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


def _generated(sample_fn: SampleFn, p: Protocol, batch_size: int) -> Iterable[np.ndarray]:
  if p.frames is None:
    return sample_fn(p.num, SAMPLE_SEED, batch_size)
  return sample_fn(p.num, SAMPLE_SEED, batch_size, frames=p.frames)


# ----------------------------------------------------------------------------- motion


def _ball_radius_px(config) -> float:
  """BallsInBowl's ball radius in pixels (the simulator's r in image units, image = 2)."""
  from relate_jax.data.builders import balls_in_bowl  # pylint: disable=g-import-not-at-top
  return balls_in_bowl.PHYSICS.radius * config.data.image_size / 2


def real_tracks(config, split: str, num: int, frames: int, shuffled: bool = False
                ) -> np.ndarray:
  """Simulated ball positions of the evaluation clips of `split` in pixels (N, F, K, 2)."""
  from relate_jax import data  # pylint: disable=g-import-not-at-top
  from relate_jax.metrics import relate_metrics  # pylint: disable=g-import-not-at-top
  notes = data.annotations(config, split, num, frames=frames, shuffle_time=shuffled)
  if 'positions' not in notes:
    raise ValueError(
        f'motion metrics compare trajectories with the simulator\'s ground truth: BallsInBowl '
        f'video only; {config.data.name!r} stores no per-frame positions '
        f'({", ".join(sorted(notes)) or "no annotations"})')
  # Image coordinates p are the pose θ = −p at s = 1: the same pixel rule as the model's.
  return relate_metrics.pose_to_pixels(-notes['positions'], config.data.image_size)


def generated_tracks(config, pose_fn: PoseFn, p: Protocol) -> np.ndarray:
  """The model's final poses θ(t) of N videos of F frames in pixels (N, F, K, 2), s = 1."""
  from relate_jax.metrics import relate_metrics  # pylint: disable=g-import-not-at-top
  if config.model.scale_augment:
    raise ValueError(f'{p.name}: the model has scale augmentation, whose scales the pose '
                     'trajectories do not carry; motion metrics need s = 1 (BallsInBowl)')
  poses = np.asarray(pose_fn(p.num, SAMPLE_SEED, config.eval.batch_size, p.frames))
  if poses.ndim != 4 or poses.shape[1] != p.frames:
    raise ValueError(f'{p.name}: expected poses (N, {p.frames}, K, 2), got {poses.shape}')
  return relate_metrics.pose_to_pixels(poses[:p.num], config.data.image_size)


def _motion(config, p: Protocol, pose_fn: PoseFn | None, baseline: str | None):
  """(statistics, N fake, N real) of a motion protocol."""
  real = real_tracks(config, config.eval.split, p.num, p.frames)
  if baseline == SHUFFLED:
    fake = real_tracks(config, 'train', p.num, p.frames, shuffled=True)
  elif pose_fn is None:
    raise ValueError(f'{p.name} needs the model\'s pose trajectories (pose_fn; see '
                     'ModelSamples)')
  else:
    fake = generated_tracks(config, pose_fn, p)
  return motion.motion_statistics(fake, real, _ball_radius_px(config)), len(fake), len(real)


# ----------------------------------------------------------------------------- evaluate


class ModelSamples:
  """`sample_fn` and `pose_fn` of a model with ``sample_batches(num, seed, batch_size,
  frames=None)`` yielding (uint8 images or videos, latents, final poses θ), as
  relate_jax.api.Relate. The poses of a completed pass are kept, so motion500 after
  fvd500 (same N, seed and frames) does not render the videos again."""

  def __init__(self, model):
    self.model = model
    self._poses: dict[tuple, np.ndarray] = {}

  def _batches(self, num, seed, batch_size, frames):
    extra = {} if frames is None else {'frames': frames}
    return self.model.sample_batches(num, seed=seed, batch_size=batch_size, **extra)

  def images(self, num: int, seed: int, batch_size: int, frames: int | None = None
             ) -> Iterator[np.ndarray]:
    """uint8 images (B, S, S, 3), or videos (B, F, S, S, 3) when `frames` is given."""
    poses, seen = [], 0
    for images, _, theta in self._batches(num, seed, batch_size, frames):
      seen += len(images)
      if frames is not None:
        poses.append(np.asarray(theta))
        if seen >= num:
          self._poses[(num, seed, frames)] = np.concatenate(poses)
      yield images

  def poses(self, num: int, seed: int, batch_size: int, frames: int) -> np.ndarray:
    """Final poses θ(t) (num, F, K, 2) of the videos `images` yields for the same args."""
    key = (num, seed, frames)
    if key not in self._poses:
      self._poses[key] = np.concatenate(
          [np.asarray(theta) for _, _, theta in self._batches(num, seed, batch_size, frames)])
    return self._poses[key]


def _write(workdir: str | None, records: list[dict]) -> None:
  if workdir:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, 'metrics.jsonl'), 'a') as f:
      f.writelines(json.dumps(r) + '\n' for r in records)


def evaluate(config, sample_fn: SampleFn | None, names: Iterable[str], workdir: str | None,
             step: int | None = None, real_fn: Callable[[int, str], np.ndarray] | None = None,
             *, pose_fn: PoseFn | None = None, baseline: str | None = None
             ) -> dict[str, float]:
  """Runs the named protocols; returns {name: value, name_std: std (kernel kinds)}.

  Args:
    config: the config whose data and eval settings define the real side.
    sample_fn: generated samples (module docstring); None with a baseline.
    names: protocol names.
    workdir: results are appended to <workdir>/metrics.jsonl when given.
    step: training step recorded with the results.
    real_fn: real_fn(num, detector) -> features overrides the cached real-data
      features (tests).
    pose_fn: pose_fn(num, seed, batch_size, frames) -> θ (num, F, K, 2), the
      generated trajectories of motion protocols (ModelSamples.poses).
    baseline: 'shuffled': score time-shuffled real train clips instead of a model.

  Motion protocols return {name}_{statistic} for each of motion.motion_statistics.
  """
  # Motion last: its trajectories then come from the pass that rendered the FVD videos.
  protocols = sorted((get(n) for n in names), key=lambda p: p.kind == 'motion')
  if baseline is not None and baseline not in BASELINES:
    raise ValueError(f'unknown baseline {baseline!r}; known: {", ".join(BASELINES)}')
  if baseline is None and sample_fn is None:
    raise ValueError('evaluate needs a sample_fn (or a baseline)')
  if baseline and any(p.frames is None for p in protocols):
    raise ValueError(f'the {baseline} baseline is defined for video protocols only, not '
                     f'{", ".join(p.name for p in protocols if p.frames is None)}')
  results, fake_cache, detectors = {}, {}, {}
  for p in protocols:
    t0 = time.time()
    common = {'step': step, 'split': config.eval.split, 'dataset': config.data.name,
              'baseline': baseline, **protocol_record(config, p)}
    if p.kind == 'motion':
      stats, num_fake, num_real = _motion(config, p, pose_fn, baseline)
      seconds = round(time.time() - t0, 2)
      records = []
      for stat, value in stats.items():
        results[f'{p.name}_{stat}'] = value
        records.append({'name': f'{p.name}_{stat}', 'value': value, 'seconds': seconds,
                        'num_fake': num_fake, 'num_real': num_real, **common,
                        'time': time.strftime('%Y-%m-%dT%H:%M:%S')})
      logging.info('%s (%d generated vs %d real tracks): %s', p.name, num_fake, num_real,
                   ', '.join(f'{k} {v:.4g}' for k, v in stats.items()))
      _write(workdir, records)
      continue
    if p.detector not in detectors:
      detectors[p.detector] = _detector(p.detector, config.eval.batch_size)
    det = detectors[p.detector]
    fake_key = (p.detector, p.num, p.frames)
    if fake_key not in fake_cache:
      if baseline == SHUFFLED:
        fake_cache[fake_key] = _real(config, 'train', p.num, p.detector, det, p.frames,
                                     shuffled=True).features
      else:
        fake_cache[fake_key] = features(_generated(sample_fn, p, config.eval.batch_size),
                                        p.num, det, config.eval.resolution,
                                        label=f'generated ({p.name})')
    fake = fake_cache[fake_key]
    if real_fn is not None:
      real_set = _RealSet(real_fn(p.num, p.detector))
    else:
      real_set = _real(config, config.eval.split, p.num, p.detector, det, p.frames)
    real = real_set.features
    if p.kind == 'frechet' and real_set.stats is None:
      real_set.stats = frechet.statistics(real)
    out = score(p, fake, real, real_set.stats)
    seconds = time.time() - t0
    results[p.name] = out['value']
    if 'std' in out:
      results[f'{p.name}_std'] = out['std']
    record = {'name': p.name, 'value': out['value'], 'seconds': round(seconds, 2),
              'num_fake': len(fake), 'num_real': len(real), **common,
              'time': time.strftime('%Y-%m-%dT%H:%M:%S')}
    if 'std' in out:
      record['std'] = out['std']
    logging.info('%s = %.4f%s (%d %s vs %d real, %.1f s)', p.name, out['value'],
                 f' ± {out["std"]:.4f}' if 'std' in out else '', len(fake),
                 baseline or 'generated', len(real), seconds)
    if len(real) < p.num:
      logging.warning('%s: only %d real examples in %s/%s (protocol N = %d): compare only '
                      'with results at the same counts.', p.name, len(real), config.data.name,
                      config.eval.split, p.num)
    _write(workdir, [record])
  return results


def prefetch_weights(names: Iterable[str]) -> None:
  """Fetches the detector weights the protocols need (before a long run starts)."""
  for det in {get(n).detector for n in names} - {None}:
    weights.load(DETECTOR_WEIGHTS[det])
