"""BallsInBowl: balls rolling in elliptical bowls (paper §4 and A6, Figure A2).

The paper's ablation and video dataset ("two distinctly coloured balls rolling in
an elliptical bowl of variable orientation and eccentricity", 2500 train and 500
test sequences) was never released; this module simulates and renders it.
Everything is vectorised NumPy over all sequences at once and deterministic from
a seed.

Coordinates. Positions are plain image coordinates: x to the right, y *down*,
both in [-1, 1] where the image spans [-1, 1] (pixel column j of an S-pixel image
has its centre at x = (2j + 1)/S - 1, the `align_corners=False` convention of
`affine_grid`). RELATE places an object centred in its canvas at image point
p = -t/s for pose t = (tx, ty) and scale s (REFERENCE.md §2.1: positive tx
moves an object left, positive ty moves it up), so the pose that puts an object
at position (x, y) is θ = (-x·s, -y·s); :func:`relate_poses` does this.
Time is measured in frames: velocities are in image units per frame.

Bowl. Sequence n has a bowl with orientation φ_n, semi-axes (a_n, b_n) and depth
h: in bowl coordinates (x', y') = R(-φ)(x, y), i.e. x' = x cos φ + y sin φ and
y' = -x sin φ + y cos φ, the surface is z = h((x'/a)² + (y'/b)²) and the rim is
the ellipse (x'/a)² + (y'/b)² = 1. Ball centres are confined to the ellipse with
semi-axes (a - r, b - r) (the rim minus the ball radius r; for the aspect ratios
used here the ball then stays at least 0.94 r from the true rim).

Physics (per ball, unit mass):
* Gravity: a point mass in the 2-D potential g·z(x, y), i.e. acceleration
  -g ∇z. This is the shallow-bowl limit of rolling on the surface (the 5/7
  factor of a rolling sphere is folded into g). It is conservative: the energy
  E = Σ_k ½|v_k|² + g z(p_k) can only fall, through friction.
* Rolling friction: velocity damping v ← v·exp(-γ dt).
* Ball-ball collisions, elastic with equal masses: when two balls overlap while
  approaching, both are moved back along their velocities to the moment of
  contact, their velocity components along the contact normal are exchanged and
  they move on for the rewound time, so they end exactly apart (|Δp| ≥ 2r);
  residual overlaps (a ball also pressed against the rim) are pushed apart.
* Rim: a ball centre outside its confining ellipse is scaled back onto it
  towards the bowl centre and, after the closing half-kick, its velocity is
  reflected off the ellipse normal if it points outwards.
* Integration: velocity Verlet (kick-drift-kick) with `substeps` steps per
  frame. Bounces (rim, ball-ball) step outside Verlet's energy balance by
  O(dt); as both are elastic, the speeds of the balls involved are rescaled (by
  well under 1%) to their energy before the substep, then friction applies. So
  the energy never rises: without friction it stays within ~1e-4 of its start
  (tests/test_balls_in_bowl.py checks both).

Each sequence's bowl and initial state are drawn from its own generator seeded
by (seed, index) (a few draws per sequence in Python); the simulation and the
rendering are vectorised NumPy over all sequences (rendering works on small
patches around the balls over a per-sequence background).
"""

import dataclasses
from typing import NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Physics:
  """Constants of the simulation (image units, time in frames)."""
  num_balls: int = 2  # K: balls per bowl (the paper's data has exactly two).
  radius: float = 0.1  # r: ball radius (6.4 px at 128 px).
  depth: float = 0.5  # h: bowl height at the rim, for the potential and the shading.
  gravity: float = 0.02  # g: small-oscillation period 2π a/sqrt(2gh) ≈ 36 frames at a = 0.8.
  damping: float = 0.01  # γ: rolling friction, fraction of speed lost per frame.
  substeps: int = 16  # Integration steps per frame.
  major_axis: tuple[float, float] = (0.7, 0.92)  # Range of the bowl's major semi-axis a.
  aspect: tuple[float, float] = (0.55, 1.0)  # Range of b/a (eccentricity).
  speed: tuple[float, float] = (0.2, 0.8)  # Initial speed range, in units of sqrt(2gh).
  start_fraction: float = 0.8  # Initial centres lie inside this fraction of the confining ellipse.


# Colours (RGB in [0, 1]): balls in slot order, bowl interior, table outside it.
BALL_COLOURS = np.array([
    [0.86, 0.13, 0.10],  # red
    [0.10, 0.30, 0.90],  # blue
    [0.15, 0.70, 0.20],  # green
    [0.95, 0.75, 0.10],  # yellow
], np.float32)
BOWL_COLOUR = np.array([0.92, 0.90, 0.84], np.float32)
TABLE_COLOUR = np.array([0.28, 0.34, 0.32], np.float32)
RIM_COLOUR = np.array([0.15, 0.15, 0.17], np.float32)
# Light from the upper left, towards the camera (x right, y down, z up to the camera).
LIGHT = np.array([-0.45, -0.55, 0.70], np.float32) / np.linalg.norm([-0.45, -0.55, 0.70])


class Bowls(NamedTuple):
  """Per-sequence bowl parameters, each (N,) float64."""
  angle: np.ndarray  # φ: direction of the x' axis, radians from +x towards +y (image down).
  a: np.ndarray  # Semi-axis along x'.
  b: np.ndarray  # Semi-axis along y'.

  def take(self, index) -> 'Bowls':
    return Bowls(*(np.asarray(f)[index] for f in self))


class Sequences(NamedTuple):
  """Simulated sequences: states at every frame (frame 0 is the initial state)."""
  positions: np.ndarray  # (N, T, K, 2) image coordinates (x right, y down).
  velocities: np.ndarray  # (N, T, K, 2) image units per frame.
  bowls: Bowls  # Each field (N,).


def _to_bowl(xy, bowls):
  """(..., 2) image coordinates -> bowl coordinates (x', y'); bowls broadcast on axis 0."""
  shape = (-1,) + (1,) * (xy.ndim - 2)
  c, s = np.cos(bowls.angle).reshape(shape), np.sin(bowls.angle).reshape(shape)
  x, y = xy[..., 0], xy[..., 1]
  return c * x + s * y, -s * x + c * y


def _from_bowl(u, v, bowls):
  """Bowl-frame vector components (u, v) -> image-frame (..., 2)."""
  shape = (-1,) + (1,) * (u.ndim - 1)
  c, s = np.cos(bowls.angle).reshape(shape), np.sin(bowls.angle).reshape(shape)
  return np.stack([c * u - s * v, s * u + c * v], axis=-1)


def _axes(bowls, ndim, shrink=0.0):
  shape = (-1,) + (1,) * (ndim - 1)
  return (bowls.a - shrink).reshape(shape), (bowls.b - shrink).reshape(shape)


def height(positions, bowls, physics=Physics()):
  """Bowl surface z = h((x'/a)² + (y'/b)²) under `positions` (N, ..., 2) -> (N, ...)."""
  u, v = _to_bowl(positions, bowls)
  a, b = _axes(bowls, u.ndim)
  return physics.depth * ((u / a) ** 2 + (v / b) ** 2)


def rim_level(positions, bowls, physics=Physics()):
  """(x'/(a-r))² + (y'/(b-r))² of ball centres (N, ..., 2) -> (N, ...); ≤ 1 inside."""
  u, v = _to_bowl(positions, bowls)
  a, b = _axes(bowls, u.ndim, physics.radius)
  return (u / a) ** 2 + (v / b) ** 2


def energy(positions, velocities, bowls, physics=Physics()):
  """Total energy Σ_k ½|v_k|² + g z(p_k) per state: (N, ..., K, 2) -> (N, ...)."""
  kinetic = 0.5 * np.sum(velocities ** 2, axis=-1)
  potential = physics.gravity * height(positions, bowls, physics)
  return np.sum(kinetic + potential, axis=-1)


def _acceleration(p, bowls, physics):
  """-g ∇z at p (N, K, 2)."""
  u, v = _to_bowl(p, bowls)
  a, b = _axes(bowls, u.ndim)
  scale = -2.0 * physics.gravity * physics.depth
  return _from_bowl(scale * u / a ** 2, scale * v / b ** 2, bowls)


def _confine(p, bowls, physics):
  """Scales centres outside the confining ellipse back onto it.

  Returns:
    p (N, K, 2) and the mask (N, K) of balls that were outside.
  """
  level = rim_level(p, bowls, physics)
  outside = level > 1.0
  p = np.where(outside[..., None], p / np.sqrt(np.maximum(level, 1.0))[..., None], p)
  return p, outside


def _reflect(p, v, hit, bowls, physics):
  """Reflects the velocities of balls `hit` (N, K) on the rim off its normal if outgoing."""
  u, w = _to_bowl(p, bowls)
  a, b = _axes(bowls, u.ndim, physics.radius)
  normal = _from_bowl(u / a ** 2, w / b ** 2, bowls)
  normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12
  outward = np.sum(v * normal, axis=-1, keepdims=True)
  return np.where(hit[..., None] & (outward > 0), v - 2.0 * outward * normal, v)


def _collide(p, v, physics):
  """Elastic equal-mass collisions between every pair of balls (N, K, 2).

  Returns:
    p, v (N, K, 2) and {(i, j): (N,) mask of the sequences where i and j collided}.
  """
  two_r = 2.0 * physics.radius
  p, v = p.copy(), v.copy()
  hits = {}
  for i in range(physics.num_balls):
    for j in range(i + 1, physics.num_balls):
      dp, dv = p[:, i] - p[:, j], v[:, i] - v[:, j]
      dist2 = np.sum(dp ** 2, -1)
      closing = np.sum(dp * dv, -1)
      hit = (dist2 < two_r ** 2) & (closing < 0)
      hits[i, j] = hit
      if not hit.any():
        continue
      # Rewind time τ ≥ 0 to contact: |dp - dv τ| = 2r.
      speed2 = np.maximum(np.sum(dv ** 2, -1), 1e-20)
      disc = closing ** 2 - speed2 * (dist2 - two_r ** 2)
      tau = np.where(hit, (closing + np.sqrt(np.maximum(disc, 0.0))) / speed2, 0.0)[:, None]
      pi, pj = p[:, i] - v[:, i] * tau, p[:, j] - v[:, j] * tau
      normal = pi - pj
      normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12
      exchange = np.sum(dv * normal, -1, keepdims=True) * normal
      vi, vj = v[:, i] - exchange, v[:, j] + exchange
      mask = hit[:, None]
      v[:, i], v[:, j] = np.where(mask, vi, v[:, i]), np.where(mask, vj, v[:, j])
      p[:, i] = np.where(mask, pi + vi * tau, p[:, i])
      p[:, j] = np.where(mask, pj + vj * tau, p[:, j])
  return p, v, hits


def _ball_energy(p, v, bowls, physics):
  """Kinetic and potential energy of each ball (N, K) each."""
  return 0.5 * np.sum(v ** 2, -1), physics.gravity * height(p, bowls, physics)


def _restore_energy(v, potential, start, groups):
  """Rescales the speeds of balls that bounced to their energy before the substep.

  A bounce (off the rim, or of a pair of balls off each other) moves balls
  outside Verlet's kick-drift-kick balance: the rim projection lowers z and a
  collision moves the pair on from the contact point, an O(dt) energy error.
  Both bounces are elastic, so the speeds of the balls involved are scaled (by a
  factor within about a percent of 1) until their energy matches again;
  friction is applied afterwards.

  Args:
    v: (N, K, 2) velocities after the substep.
    potential: (N, K) g·z after the substep.
    start: (N, K) energy of each ball before the substep.
    groups: [(ball indices, (N,) mask)]: balls whose summed energy is restored
      where mask holds; later groups override earlier ones.
  """
  v = v.copy()
  for balls, mask in groups:
    if not mask.any():
      continue
    balls = list(balls)
    before = start[:, balls].sum(1)
    kinetic = 0.5 * np.sum(v[:, balls] ** 2, axis=(1, 2))
    factor = np.sqrt(np.maximum(before - potential[:, balls].sum(1), 0.0)
                     / np.maximum(kinetic, 1e-20))
    v[:, balls] *= np.where(mask, factor, 1.0)[:, None, None]
  return v


def _separate(p, physics):
  """Pushes overlapping balls apart symmetrically along their centre line."""
  two_r = 2.0 * physics.radius
  p = p.copy()
  for i in range(physics.num_balls):
    for j in range(i + 1, physics.num_balls):
      dp = p[:, i] - p[:, j]
      dist = np.linalg.norm(dp, axis=-1, keepdims=True)
      push = np.maximum(two_r - dist, 0.0) * 0.5 * dp / np.maximum(dist, 1e-12)
      p[:, i] += push
      p[:, j] -= push
  return p


def simulate(positions, velocities, bowls, num_frames, physics=Physics()):
  """Rolls balls from an initial state for `num_frames` frames.

  Args:
    positions: (N, K, 2) initial centres, inside the confining ellipse, apart.
    velocities: (N, K, 2) initial velocities (image units per frame).
    bowls: per-sequence bowl parameters, fields (N,).
    num_frames: T, frames recorded including the initial state.
    physics: simulation constants.

  Returns:
    (positions, velocities), each (N, T, K, 2) float32.
  """
  p = np.asarray(positions, np.float64)
  v = np.asarray(velocities, np.float64)
  dt = 1.0 / physics.substeps
  decay = np.exp(-physics.damping * dt)
  out_p, out_v = [p], [v]
  acc = _acceleration(p, bowls, physics)
  for _ in range(num_frames - 1):
    for _ in range(physics.substeps):
      start = sum(_ball_energy(p, v, bowls, physics))
      v = v + 0.5 * dt * acc
      p = p + dt * v
      p, hit = _confine(p, bowls, physics)
      p, v, collided = _collide(p, v, physics)
      # A ball pushed off another may leave the bowl and vice versa: alternate.
      for _ in range(3):
        p = _separate(p, physics)
        p, outside = _confine(p, bowls, physics)
        hit |= outside
      acc = _acceleration(p, bowls, physics)
      v = v + 0.5 * dt * acc
      # Bouncing off the rim after the closing half-kick keeps Verlet's energy balance.
      v = _reflect(p, v, hit, bowls, physics)
      groups = [((k,), hit[:, k]) for k in range(physics.num_balls)] + list(collided.items())
      if any(mask.any() for _, mask in groups):
        v = _restore_energy(v, physics.gravity * height(p, bowls, physics), start, groups)
      v = v * decay
    out_p.append(p)
    out_v.append(v)
  return (np.stack(out_p, 1).astype(np.float32), np.stack(out_v, 1).astype(np.float32))


def sample_start(rng: np.random.Generator, physics=Physics()):
  """Draws one sequence's bowl and initial state.

  The bowl: orientation φ ~ U[0, π), major semi-axis a ~ U[major_axis], b = a·U[aspect].
  Ball centres are uniform in `start_fraction` of the confining ellipse, redrawn
  until no two are closer than 2.1 r; speeds are U[speed]·sqrt(2gh), headings uniform.

  Returns:
    (angle, a, b) floats, positions (K, 2) and velocities (K, 2).
  """
  angle = rng.uniform(0.0, np.pi)
  a = rng.uniform(*physics.major_axis)
  b = a * rng.uniform(*physics.aspect)
  bowl = Bowls(np.array([angle]), np.array([a]), np.array([b]))
  k = physics.num_balls
  positions = np.zeros((k, 2))
  for i in range(k):
    for _ in range(1000):
      rho = np.sqrt(rng.uniform()) * physics.start_fraction
      phi = rng.uniform(0.0, 2 * np.pi)
      p = _from_bowl(np.array([rho * np.cos(phi) * (a - physics.radius)]),
                     np.array([rho * np.sin(phi) * (b - physics.radius)]), bowl)[0]
      if np.all(np.linalg.norm(positions[:i] - p, axis=-1) >= 2.1 * physics.radius):
        break
    else:
      raise RuntimeError('could not place the balls apart; lower num_balls or radius')
    positions[i] = p
  speed = rng.uniform(*physics.speed, k) * np.sqrt(2 * physics.gravity * physics.depth)
  heading = rng.uniform(0.0, 2 * np.pi, k)
  velocities = np.stack([np.cos(heading), np.sin(heading)], -1) * speed[:, None]
  return (angle, a, b), positions, velocities


def simulate_sequences(seed: int, num_sequences: int, num_frames: int,
                       physics=Physics(), first: int = 0) -> Sequences:
  """Simulates sequences first, ..., first + N - 1 of the data set drawn from `seed`.

  Sequence i is a pure function of (seed, i, num_frames, physics): its random
  draws come from its own generator seeded by (seed, i), so a small build is a
  prefix of the full one.
  """
  starts = [sample_start(np.random.Generator(np.random.PCG64([seed, first + i])), physics)
            for i in range(num_sequences)]
  bowls = Bowls(*(np.array(f) for f in zip(*(s[0] for s in starts))))
  positions = np.stack([s[1] for s in starts])
  velocities = np.stack([s[2] for s in starts])
  positions, velocities = simulate(positions, velocities, bowls, num_frames, physics)
  return Sequences(positions, velocities, bowls)


def relate_poses(positions, scale=1.0):
  """RELATE pose θ = (tx, ty) that places an object at image `positions` (..., 2).

  affine_grid shows a canvas-centred object at p = -t/s (REFERENCE.md §2.1).
  """
  return -np.asarray(positions) * scale


def _pixel_centres(size):
  return (2.0 * np.arange(size) + 1.0) / size - 1.0


def render_backgrounds(bowls: Bowls, size: int, physics=Physics()) -> np.ndarray:
  """Empty bowls seen from above: (N,) bowls -> (N, S, S, 3) float32 in [0, 1].

  The interior is Lambert-shaded from its surface normal (-∂z/∂x, -∂z/∂y, 1) and
  darkened towards the bottom, the rim is a dark anti-aliased line, the table
  outside has its own colour.
  """
  bowls = Bowls(*(np.asarray(f, np.float32) for f in bowls))
  c = _pixel_centres(size).astype(np.float32)
  grid = np.stack(np.meshgrid(c, c, indexing='xy'), -1)[None]  # (1, S, S, 2): x, y.
  u, v = _to_bowl(grid, bowls)  # (N, S, S)
  a, b = _axes(bowls, 3)
  level = (u / a) ** 2 + (v / b) ** 2
  grad = _from_bowl(2 * physics.depth * u / a ** 2, 2 * physics.depth * v / b ** 2, bowls)
  normal = np.concatenate([-grad, np.ones_like(grad[..., :1])], -1)
  normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
  lambert = np.clip(normal @ LIGHT, 0.0, 1.0)[..., None]
  depth = np.clip(1.0 - level, 0.0, 1.0)[..., None]
  interior = BOWL_COLOUR * (0.35 + 0.75 * lambert) * (1.0 - 0.25 * depth)
  # Signed distance to the rim ≈ (sqrt(level) - 1) / |∇ sqrt(level)|, in pixels.
  root = np.sqrt(level) + 1e-9
  dq = _from_bowl(u / a ** 2 / root, v / b ** 2 / root, bowls)
  dist = (root - 1.0) / (np.linalg.norm(dq, axis=-1) + 1e-9) * size / 2.0
  inside = np.clip(0.5 - dist, 0.0, 1.0)[..., None]
  image = inside * interior + (1.0 - inside) * TABLE_COLOUR
  line = np.clip(1.6 - np.abs(dist), 0.0, 1.0)[..., None]
  image = line * RIM_COLOUR + (1.0 - line) * image
  return np.clip(image, 0.0, 1.0).astype(np.float32)


def _ball_layers(centres, size, physics):
  """Shadow and ball patches around each centre.

  Args:
    centres: (M, 2) image coordinates.

  Returns:
    rows (M, P, 1) and cols (M, 1, P) pixel indices of a P x P patch, then, each
    (M, P, P): shadow opacity, Lambert term and Blinn highlight of the sphere's
    normal, and the ball's anti-aliased coverage.
  """
  pixel = 2.0 / size
  shadow_offset = np.array([0.35, 0.45]) * physics.radius
  half = int(np.ceil((physics.radius * 1.25 + np.abs(shadow_offset).max()) / pixel)) + 2
  patch = 2 * half
  origin = np.floor((centres + 1.0) / pixel).astype(np.int64) - half + 1
  origin = np.clip(origin, 0, size - patch)
  idx = origin[:, None, :] + np.arange(patch)[None, :, None]  # (M, P, 2)
  xs = (2.0 * idx[..., 0] + 1.0) / size - 1.0  # (M, P)
  ys = (2.0 * idx[..., 1] + 1.0) / size - 1.0
  dx = xs[:, None, :] - centres[:, 0, None, None]  # (M, P, P) over (row, col)
  dy = ys[:, :, None] - centres[:, 1, None, None]
  dx, dy = (d.astype(np.float32) for d in np.broadcast_arrays(dx, dy))
  r = physics.radius
  dist = np.sqrt(dx ** 2 + dy ** 2)
  coverage = np.clip((r - dist) / pixel + 0.5, 0.0, 1.0)
  sdist = np.sqrt((dx - shadow_offset[0]) ** 2 + (dy - shadow_offset[1]) ** 2)
  shadow = 0.45 * np.clip((1.15 * r - sdist) / (0.4 * r), 0.0, 1.0)
  nz = np.sqrt(np.clip(1.0 - (dist / r) ** 2, 0.0, 1.0))
  normal = np.stack([dx / r, dy / r, nz], -1)
  diffuse = np.clip(normal @ LIGHT, 0.0, 1.0)
  half_vector = LIGHT + np.array([0.0, 0.0, 1.0], np.float32)
  half_vector /= np.linalg.norm(half_vector)
  specular = np.clip(normal @ half_vector, 0.0, 1.0) ** 40
  rows = idx[:, :, 1][:, :, None]
  cols = idx[:, :, 0][:, None, :]
  return rows, cols, shadow, diffuse, specular, coverage


def render_frames(positions, bowls: Bowls, size: int = 128, physics=Physics(),
                  backgrounds=None) -> np.ndarray:
  """Renders every frame of every sequence from above.

  Args:
    positions: (N, T, K, 2) ball centres in image coordinates.
    bowls: bowl parameters, fields (N,).
    size: S, output side in pixels.
    physics: gives the ball radius and bowl depth.
    backgrounds: optional (N, S, S, 3) float output of :func:`render_backgrounds`.

  Returns:
    (N, T, S, S, 3) uint8 frames.
  """
  positions = np.asarray(positions, np.float64)
  n, t, k, _ = positions.shape
  if backgrounds is None:
    backgrounds = render_backgrounds(bowls, size, physics)
  backgrounds = _to_uint8(backgrounds)
  # Frames stay uint8; only the patches around the balls are blended in float.
  frames = np.broadcast_to(backgrounds[:, None], (n, t, size, size, 3)).reshape(-1, 3).copy()
  flat = positions.reshape(n * t, k, 2)
  first_pixel = (np.arange(n * t) * size * size)[:, None, None]
  layers = []
  for i in range(k):
    rows, cols, *rest = _ball_layers(flat[:, i], size, physics)
    layers.append((first_pixel + rows * size + cols, *rest))  # (M, P, P) flat pixel indices.
  # All shadows first, so that no shadow falls on a ball.
  for index, shadow, *_ in layers:
    region = frames[index].astype(np.float32)
    frames[index] = _to_uint8(region * (1.0 - shadow[..., None]) / 255.0)
  for i, (index, _, diffuse, specular, coverage) in enumerate(layers):
    colour = BALL_COLOURS[i % len(BALL_COLOURS)]
    shaded = colour * (0.3 + 0.8 * diffuse[..., None]) + 0.7 * specular[..., None]
    alpha = coverage[..., None]
    region = frames[index].astype(np.float32) / 255.0
    frames[index] = _to_uint8(alpha * np.clip(shaded, 0.0, 1.0) + (1.0 - alpha) * region)
  return frames.reshape(n, t, size, size, 3)


def _to_uint8(image):
  return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_preview(path: str, seed: int = 0, sequences=(1, 2, 4), stride: int = 4,
                 num_frames: int = 32, size: int = 128, physics=Physics()) -> None:
  """Writes a PNG strip: one row per sequence, every `stride`-th frame left to right."""
  from relate_jax.data import common  # TFDS import only when a preview is asked for.
  data = simulate_sequences(seed, max(sequences) + 1, num_frames, physics)
  index = np.asarray(sequences)
  frames = render_frames(data.positions[index, ::stride], data.bowls.take(index), size, physics)
  common.save_png(path, common.make_grid(frames, pad=2, pad_value=255))


if __name__ == '__main__':
  import sys
  save_preview(sys.argv[1] if len(sys.argv) > 1 else 'docs/balls_in_bowl.png')
