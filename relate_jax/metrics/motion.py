"""Motion statistics of object trajectories: generated poses vs simulated ground truth.

FVD scores frames more than motion; on BallsInBowl, where the simulator stores every
ball's position, the trajectories themselves can be compared. Tracks are pixel
coordinates (x column, y row) of K objects over T frames, (N, T, K, 2): for the model
its final poses θ(t) through `relate_metrics.pose_to_pixels` (the rule of
position_error), for the data the simulator's positions through the same rule.

Per-frame distributions pooled over sequences (and objects):
  speed        |p(t+1) − p(t)|               px/frame, (N, T−1, K)
  acceleration |p(t+1) − 2p(t) + p(t−1)|     px/frame², (N, T−2, K)
  distance     |p_a(t) − p_b(t)| of every object pair a < b, px, (N, T, K(K−1)/2)
are compared by the 1-D Wasserstein-1 distance (in their units), and the overlap rate
is the fraction of frames in which some pair is closer than two radii (interpenetrating
balls; the simulator never lets that happen).
"""

import numpy as np


def wasserstein1(u, v) -> float:
  """W1 between the empirical distributions of samples u (n,) and v (m,).

  W1 = ∫ |F_u(x) − F_v(x)| dx, exact for step CDFs: the sum over the gaps between
  consecutive pooled sample values of the gap times the CDF difference there.
  """
  u = np.sort(np.asarray(u, np.float64).ravel())
  v = np.sort(np.asarray(v, np.float64).ravel())
  if not len(u) or not len(v):
    raise ValueError(f'wasserstein1 needs samples on both sides, got {len(u)} and {len(v)}')
  pooled = np.sort(np.concatenate([u, v]))
  cdf_u = np.searchsorted(u, pooled[:-1], side='right') / len(u)
  cdf_v = np.searchsorted(v, pooled[:-1], side='right') / len(v)
  return float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(pooled)))


def _check(tracks) -> np.ndarray:
  tracks = np.asarray(tracks, np.float64)
  if tracks.ndim != 4 or tracks.shape[-1] != 2:
    raise ValueError(f'tracks must be (N, T, K, 2) pixel positions, got {tracks.shape}')
  return tracks


def speeds(tracks) -> np.ndarray:
  """(N, T−1, K) px/frame: |p(t+1) − p(t)|."""
  return np.linalg.norm(np.diff(_check(tracks), axis=1), axis=-1)


def accelerations(tracks) -> np.ndarray:
  """(N, T−2, K) px/frame²: |p(t+1) − 2p(t) + p(t−1)|."""
  return np.linalg.norm(np.diff(_check(tracks), n=2, axis=1), axis=-1)


def pair_distances(tracks) -> np.ndarray:
  """(N, T, P) px: distance of every object pair a < b (P = K(K−1)/2; one for two balls)."""
  tracks = _check(tracks)
  a, b = np.triu_indices(tracks.shape[2], k=1)
  return np.linalg.norm(tracks[:, :, a] - tracks[:, :, b], axis=-1)


def overlap_rate(tracks, radius: float) -> float:
  """Fraction of frames in which some pair of objects is closer than 2·radius (px)."""
  distance = pair_distances(tracks)
  if not distance.shape[-1]:
    raise ValueError('overlap_rate needs at least two objects')
  return float(np.mean(np.any(distance < 2.0 * radius, axis=-1)))


def motion_statistics(fake, real, radius: float) -> dict[str, float]:
  """Generated vs real tracks (N, T, K, 2) px (counts and T may differ; K ≥ 2, T ≥ 3).

  Returns:
    speed_w1 (px/frame), acceleration_w1 (px/frame²), distance_w1 (px): W1 between
    the pooled per-frame distributions; overlap_rate (generated), overlap_rate_real
    and overlap_rate_diff (generated − real), fractions of frames.
  """
  fake, real = _check(fake), _check(real)
  result = {
      'speed_w1': wasserstein1(speeds(fake), speeds(real)),
      'acceleration_w1': wasserstein1(accelerations(fake), accelerations(real)),
      'distance_w1': wasserstein1(pair_distances(fake), pair_distances(real)),
      'overlap_rate': overlap_rate(fake, radius),
      'overlap_rate_real': overlap_rate(real, radius),
  }
  result['overlap_rate_diff'] = result['overlap_rate'] - result['overlap_rate_real']
  return result
