"""Procedural CLEVR-like scenes: the embedded default dataset ('shapes').

A shaded ground plane seen obliquely from above with 2-5 objects (spheres,
cubes, cylinders; 8 colours; matte or shiny; two sizes) standing on it. Object
footprints never intersect: positions are drawn by rejection sampling with
radius-based spacing, so positions are correlated (the structure RELATE's Γ is
meant to learn). Objects cast soft shadows and are drawn back to front.

Rendering is vectorised NumPy over each object's bounding box, at 2x the
requested size, then 2x2 box-averaged (anti-aliasing). A scene is a pure
function of (seed, split, index) and does not depend on the resolution.

Geometry: world X right, Y up, Z towards the viewer; orthographic camera at
elevation ``ELEVATION`` with a mild perspective-like scale in depth. Image
coordinates are normalised to [-1, 1] (x right, y down), the convention of
``grid_sample``; the model's pose of an object centred at p is θ = −p (an
object placed with translation t appears at −t/s, REFERENCE.md §2.1).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

MIN_OBJECTS = 2
MAX_OBJECTS = 5
SHAPES = ('sphere', 'cube', 'cylinder')
# CLEVR's palette: gray, red, blue, green, brown, purple, cyan, yellow.
COLORS = np.array([[87, 87, 87], [173, 35, 35], [42, 75, 215], [29, 105, 20],
                   [129, 74, 25], [129, 38, 192], [41, 208, 208], [255, 238, 51]],
                  np.float32) / 255.0
SIZES = (0.13, 0.19)  # Object "radius" in world units (the image spans 2 units).
CUBE_SCALE = 0.8  # Cube half-side / radius (CLEVR shrinks cubes so they look alike in size).
CYLINDER_HEIGHT = 1.6  # Cylinder height / radius.
ELEVATION = np.deg2rad(40.0)
X_RANGE = 0.72  # Ground positions |X| <= X_RANGE ...
Z_RANGE = 0.95  # ... and |Z| <= Z_RANGE keep objects inside the frame.
SPACING = 0.04  # Extra gap between footprints.
DEPTH_SCALE = 0.18  # Size grows by 1 ± DEPTH_SCALE from far to near.
ABSENT_POSE = -2.0  # Pose of padding slots (the model's absent_pose).
SPLIT_IDS = {'train': 0, 'test': 1}

_SIN_E, _COS_E = np.sin(ELEVATION), np.cos(ELEVATION)
# Camera frame in world coordinates: right, up (on screen), towards the camera.
_CAM_RIGHT = np.array([1.0, 0.0, 0.0])
_CAM_UP = np.array([0.0, _COS_E, -_SIN_E])
_CAM_VIEW = np.array([0.0, _SIN_E, _COS_E])


@dataclasses.dataclass
class Scene:
  """One scene's parameters and ground truth (objects in drawing order, far to near).

  Attributes:
    ground: (3,) ground colour; light: (3,) unit world light direction;
    spot: (2,) normalised image position of the bright spot on the ground;
    shapes, colors: (n,) int indices into SHAPES / COLORS; shiny: (n,) bool;
    radii: (n,) world radius; yaws: (n,) cube rotation; positions: (n, 3) world
      (X, 0, Z) of the ground contact point.
  """

  ground: np.ndarray
  light: np.ndarray
  spot: np.ndarray
  shapes: np.ndarray
  colors: np.ndarray
  shiny: np.ndarray
  radii: np.ndarray
  yaws: np.ndarray
  positions: np.ndarray

  @property
  def num_objects(self) -> int:
    return len(self.shapes)

  def footprints(self) -> np.ndarray:
    """(n,) radius of each object's footprint on the ground (cubes: half diagonal)."""
    cube = self.shapes == SHAPES.index('cube')
    return np.where(cube, CUBE_SCALE * np.sqrt(2) * self.radii, self.radii)

  def image_centres(self) -> np.ndarray:
    """(n, 2) normalised image (x, y) of each object's 3-D centre, in [-1, 1]."""
    return np.array([_project((p[0], h / 2, p[2]), anchor=p)[:2]
                     for p, h in zip(self.positions, self.heights())]).reshape(-1, 2)

  def heights(self) -> np.ndarray:
    """(n,) world height of each object."""
    height = {'sphere': 2.0, 'cube': 2 * CUBE_SCALE, 'cylinder': CYLINDER_HEIGHT}
    return np.array([height[SHAPES[k]] for k in self.shapes]) * self.radii


def _depth_scale(z):
  return 1.0 + DEPTH_SCALE * z / Z_RANGE


def _project(point, anchor=None) -> tuple[float, float, float]:
  """World point -> (x, y, depth): normalised image coords (y down), depth to camera.

  Offsets from `anchor` (the object's ground point) are scaled by the depth
  scale of the anchor, so an object keeps its shape and grows towards the camera.
  Plain floats: this runs a few dozen times per image.
  """
  px, py, pz = (float(v) for v in point)
  bx, by, bz = (px, py, pz) if anchor is None else (float(v) for v in anchor)
  g = _depth_scale(bz)
  ox, oy, oz = px - bx, py - by, pz - bz
  x = bx * g + g * ox
  y = -(by * _COS_E - bz * _SIN_E) - g * (oy * _COS_E - oz * _SIN_E)
  return x, y, py * _SIN_E + pz * _COS_E


def sample_scene(rng: np.random.Generator) -> Scene:
  """Draws a scene; positions by rejection sampling so footprints keep apart."""
  n = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
  shapes = rng.integers(0, len(SHAPES), n)
  radii = np.asarray(SIZES)[rng.integers(0, len(SIZES), n)]
  foot = np.where(shapes == SHAPES.index('cube'), CUBE_SCALE * np.sqrt(2) * radii, radii)
  # Candidates for every slot in one draw; a slot takes its first candidate far enough
  # from all placed objects (64 are plenty for 5 objects; if none fits, the scene keeps
  # the objects placed so far).
  cand = rng.uniform([-X_RANGE, -Z_RANGE], [X_RANGE, Z_RANGE], (n, 64, 2))
  placed = np.zeros((0, 2))
  for i in range(n):
    d = cand[i, :, None, :] - placed[None]
    ok = np.all(d[..., 0] ** 2 + d[..., 1] ** 2 >= (foot[i] + foot[:i] + SPACING) ** 2, axis=1)
    if not ok.any():
      n = i
      break
    placed = np.concatenate([placed, cand[i, np.argmax(ok)][None]])
  positions = np.stack([placed[:, 0], np.zeros(n), placed[:, 1]], -1)
  shapes, radii = shapes[:n], radii[:n]
  order = np.argsort(positions[:, 2], kind='stable')  # Far (small Z) first.
  light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(0.9, 1.4), rng.uniform(0.2, 0.8)])
  tint = rng.uniform(0.95, 1.05, 3)
  return Scene(
      ground=np.clip(rng.uniform(0.5, 0.62) * tint, 0, 1).astype(np.float32),
      light=light / np.linalg.norm(light),
      spot=np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.4, 0.5)]),
      shapes=shapes[order], colors=rng.integers(0, len(COLORS), n)[order],
      shiny=(rng.random(n) < 0.4)[order], radii=radii[order],
      yaws=rng.uniform(0, np.pi / 2, n)[order], positions=positions[order])


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
  """The generator of scene `index` of `split` (independent of the resolution)."""
  return np.random.default_rng([seed, SPLIT_IDS[split], index])


@functools.lru_cache(maxsize=8)
def _pixel_coords(size: int) -> np.ndarray:
  """(size,) float32 normalised coordinates of pixel centres in [-1, 1]."""
  coords = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(2.0 / size) - 1.0
  coords.setflags(write=False)
  return coords


class _Canvas:
  """Float32 RGB canvas of R x R pixels with normalised pixel-centre coordinates."""

  def __init__(self, size: int):
    self.size = size
    self.image = np.empty((size, size, 3), np.float32)
    self.px = 2.0 / size  # One pixel in normalised units.
    self.coords = _pixel_coords(size)

  def window(self, x0, x1, y0, y1):
    """Pixel slices plus x (1, w) and y (h, 1) coordinates covering a box, or None."""
    to_px = lambda v: min(max(int(math.floor((v + 1.0) / self.px)), 0), self.size)
    c0, c1 = to_px(x0), min(to_px(x1) + 1, self.size)
    r0, r1 = to_px(y0), min(to_px(y1) + 1, self.size)
    if c0 >= c1 or r0 >= r1:
      return None
    return (slice(r0, r1), slice(c0, c1)), self.coords[None, c0:c1], self.coords[r0:r1, None]

  def paint(self, sl, coverage, colour):
    """Blends `colour` ((h, w, 3) or (3,)) over the canvas with alpha `coverage` (h, w)."""
    a = coverage[..., None]
    region = self.image[sl]
    region += a * (colour - region)


def _coverage(signed_distance, px):
  """Anti-aliased coverage of the region where signed_distance <= 0."""
  return np.clip(0.5 - signed_distance * np.float32(1.0 / px), 0.0, 1.0)


def _shade(base, normal_dot_light, normal_dot_half, shiny):
  """Ambient + Lambertian, plus a specular lobe (sharp and strong if shiny).

  Arrays (h, w) give (h, w, 3); floats give (3,).
  """
  diffuse = np.maximum(normal_dot_light, 0.0)
  half = np.maximum(normal_dot_half, 0.0)
  if shiny:
    ambient, gain, spec = 0.25, 0.55, half ** 60 * 0.9
  else:
    ambient, gain, spec = 0.3, 0.75, half ** 8 * 0.08
  if np.ndim(diffuse):
    diffuse, spec = diffuse[..., None], spec[..., None]
  return np.clip(base * (ambient + gain * diffuse) + spec, 0.0, 1.0).astype(np.float32)


def _draw_ground(canvas: _Canvas, scene: Scene):
  c = canvas.coords
  sx, sy = (float(v) for v in scene.spot)
  # Darker far away (top), brighter near the camera, plus a soft (separable) light spot.
  gradient = 0.78 + 0.1 * (c + 1)
  spot_x = np.exp(-(c - sx) ** 2 * 2.0)
  spot_y = np.exp(-((c - sy) * 1.4) ** 2 * 2.0)
  shade = gradient[:, None] + 0.22 * spot_y[:, None] * spot_x[None, :]
  canvas.image[:] = shade[..., None] * scene.ground


def _draw_shadows(canvas: _Canvas, scene: Scene, heights: np.ndarray):
  """Soft elliptical shadows cast away from the light, darkening the ground."""
  lx, ly, lz = (float(v) for v in scene.light)
  for pos, foot, h in zip(scene.positions, scene.footprints(), heights):
    # Centre: the ground point hit by the light ray through the object's top, averaged
    # with the contact point; spread grows with the distance.
    reach = 0.6 * float(h) / max(ly, 0.3)
    centre = (float(pos[0]) - lx * reach, 0.0, float(pos[2]) - lz * reach)
    cx, cy, _ = _project(centre)
    g = _depth_scale(centre[2])
    ax = g * (float(foot) + 0.35 * reach)
    ay = ax * _SIN_E
    # Beyond 1.8 semi-axes the falloff darkens by < 1%.
    win = canvas.window(cx - 1.8 * ax, cx + 1.8 * ax, cy - 1.8 * ay, cy + 1.8 * ay)
    if win is None:
      continue
    sl, xs, ys = win
    falloff = np.exp(-1.5 * ((xs - cx) / ax) ** 2) * np.exp(-1.5 * ((ys - cy) / ay) ** 2)
    canvas.image[sl] *= (1.0 - 0.55 * falloff)[..., None]


def _light_cam(scene: Scene) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Light and half vectors in camera coordinates (right, up, towards camera)."""
  light = np.stack([_CAM_RIGHT, _CAM_UP, _CAM_VIEW]) @ scene.light
  half = light + np.array([0.0, 0.0, 1.0])
  half /= np.linalg.norm(half)
  return tuple(map(float, light)), tuple(map(float, half))


def _dot(a, b) -> float:
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _draw_sphere(canvas, scene, i, light, half):
  x, _, z = (float(v) for v in scene.positions[i])
  r = float(scene.radii[i])
  cx, cy, _ = _project((x, r, z), anchor=(x, 0.0, z))
  rr = r * _depth_scale(z)
  win = canvas.window(cx - rr, cx + rr, cy - rr, cy + rr)
  if win is None:
    return
  sl, xs, ys = win
  dx, dy = (xs - cx) * (1 / rr), (ys - cy) * (-1 / rr)
  rho2 = dx * dx + dy * dy
  nz = np.sqrt(np.maximum(1 - rho2, 0))
  ndl = dx * light[0] + dy * light[1] + nz * light[2]
  ndh = dx * half[0] + dy * half[1] + nz * half[2]
  colour = _shade(COLORS[scene.colors[i]], ndl, ndh, scene.shiny[i])
  canvas.paint(sl, _coverage((np.sqrt(rho2) - 1) * rr, canvas.px), colour)


def _convex_sd(xs, ys, poly):
  """Signed distance (max over edges; exact near edges) to a convex polygon, < 0 inside.

  xs (1, w), ys (h, 1); poly: list of (x, y) vertices. Returns (h, w).
  """
  # Shoelace: positive for counter-clockwise vertices (in x-right, y-down coordinates).
  area = sum(poly[k - 1][0] * poly[k][1] - poly[k][0] * poly[k - 1][1] for k in range(len(poly)))
  sign = 1.0 if area > 0 else -1.0
  sd = None
  for k in range(len(poly)):
    (x0, y0), (x1, y1) = poly[k - 1], poly[k]
    ex, ey = x1 - x0, y1 - y0
    norm = sign / (math.hypot(ex, ey) + 1e-12)
    d = (xs - x0) * (ey * norm) - (ys - y0) * (ex * norm)
    sd = d if sd is None else np.maximum(sd, d)
  return sd


def _draw_cube(canvas, scene, i, light, half):
  x, _, z = (float(v) for v in scene.positions[i])
  a = CUBE_SCALE * float(scene.radii[i])
  yaw = float(scene.yaws[i])
  c, s = math.cos(yaw), math.sin(yaw)
  axes = ((c, 0.0, -s), (0.0, 1.0, 0.0), (s, 0.0, c))
  centre = (x, a, z)
  for k, axis in enumerate(axes):
    u, v = (ax for j, ax in enumerate(axes) if j != k)
    for sign in (1.0, -1.0):
      normal = tuple(sign * t for t in axis)
      if _dot(normal, _CAM_VIEW) <= 1e-6:
        continue  # Back face.
      poly = []
      for su, sv in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
        corner = [centre[d] + a * (normal[d] + su * u[d] + sv * v[d]) for d in range(3)]
        poly.append(_project(corner, anchor=(x, 0.0, z))[:2])
      xs_, ys_ = zip(*poly)
      win = canvas.window(min(xs_), max(xs_), min(ys_), max(ys_))
      if win is None:
        continue
      sl, xs, ys = win
      n_cam = (normal[0], _dot(normal, _CAM_UP), _dot(normal, _CAM_VIEW))
      colour = _shade(COLORS[scene.colors[i]], _dot(n_cam, light), _dot(n_cam, half),
                      scene.shiny[i])
      canvas.paint(sl, _coverage(_convex_sd(xs, ys, poly), canvas.px), colour)


def _draw_cylinder(canvas, scene, i, light, half):
  x, _, z = (float(v) for v in scene.positions[i])
  r = float(scene.radii[i])
  h = CYLINDER_HEIGHT * r
  g = _depth_scale(z)
  bx, by, _ = _project((x, 0.0, z))
  tx, ty, _ = _project((x, h, z), anchor=(x, 0.0, z))
  rx, ry = g * r, g * r * _SIN_E  # Screen semi-axes of the circular caps.
  win = canvas.window(bx - rx, bx + rx, ty - ry, by + ry)
  if win is None:
    return
  sl, xs, ys = win
  base = COLORS[scene.colors[i]]
  # Side: |x| <= rx between the cap centres, closed by the lower half of the bottom ellipse.
  u = np.clip((xs - bx) * (1 / rx), -1.0, 1.0)  # (1, w)
  nz = np.sqrt(1 - u * u)
  bottom = nz * ry + by
  side_sd = np.maximum(np.maximum(np.abs(xs - bx) - rx, ty - ys), ys - bottom)
  # Side normals are horizontal, (u, 0, nz) in world: in camera coordinates
  # (u, -nz·sin e, nz·cos e). They vary along x only, so shade one row.
  n_up, n_view = -nz * _SIN_E, nz * _COS_E
  ndl = u * light[0] + n_up * light[1] + n_view * light[2]
  ndh = u * half[0] + n_up * half[1] + n_view * half[2]
  canvas.paint(sl, _coverage(side_sd, canvas.px), _shade(base, ndl, ndh, scene.shiny[i]))
  top_sd = (np.sqrt(((xs - tx) * (1 / rx)) ** 2 + ((ys - ty) * (1 / ry)) ** 2) - 1) * ry
  n_top = (0.0, _COS_E, _SIN_E)
  colour = _shade(base, _dot(n_top, light), _dot(n_top, half), scene.shiny[i])
  canvas.paint(sl, _coverage(top_sd, canvas.px), colour)


_DRAW = {'sphere': _draw_sphere, 'cube': _draw_cube, 'cylinder': _draw_cylinder}


def render(scene: Scene, image_size: int, supersample: int = 2) -> np.ndarray:
  """Renders `scene` to a uint8 (S, S, 3) image (supersampled, box-filtered)."""
  canvas = _Canvas(image_size * supersample)
  _draw_ground(canvas, scene)
  _draw_shadows(canvas, scene, scene.heights())
  light, half = _light_cam(scene)
  for i in range(scene.num_objects):
    _DRAW[SHAPES[scene.shapes[i]]](canvas, scene, i, light, half)
  img = canvas.image
  if supersample > 1:  # Box filter as strided adds (faster than a reduce over tiny axes).
    img = sum(img[k::supersample] for k in range(supersample))
    img = sum(img[:, k::supersample] for k in range(supersample))
  return np.clip(img * (255.0 / supersample ** 2) + 0.5, 0, 255).astype(np.uint8)


def annotations(scene: Scene) -> dict[str, np.ndarray]:
  """Ground truth padded to MAX_OBJECTS slots, objects in drawing order.

  Returns:
    num_objects: int32 scalar.
    poses: (MAX_OBJECTS, 2) float32, θ = −(x, y) of each object's centre in
      normalised image coordinates (the model's pose convention); absent slots
      hold ABSENT_POSE.
    shapes, colors: (MAX_OBJECTS,) int32 indices into SHAPES / COLORS, −1 absent.
    sizes: (MAX_OBJECTS,) float32 world radius, 0 absent.
  """
  n = scene.num_objects
  poses = np.full((MAX_OBJECTS, 2), ABSENT_POSE, np.float32)
  poses[:n] = -scene.image_centres()
  pad = lambda v, fill, dtype: np.concatenate(
      [np.asarray(v, dtype), np.full(MAX_OBJECTS - n, fill, dtype)])
  return {
      'num_objects': np.int32(n),
      'poses': poses,
      'shapes': pad(scene.shapes, -1, np.int32),
      'colors': pad(scene.colors, -1, np.int32),
      'sizes': pad(scene.radii, 0.0, np.float32),
  }


def generate(seed: int, split: str, index: int, image_size: int):
  """(uint8 (S, S, 3) image, annotations dict) of scene `index` of `split`."""
  scene = sample_scene(scene_rng(seed, split, index))
  return render(scene, image_size), annotations(scene)
