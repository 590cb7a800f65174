"""Scene editing in RELATE's latent space (paper §4.2: Figs. 3-6).

A `Scene` is a batch of B scenes with K object slots: the `Latents` (z0, z_k, θ̂, presence)
and what edits fixed about the final poses:

  placed (B, K) bool     placed by a move: the final pose is its initial pose, θ_k = θ̂_k
  frozen (B, K) bool     final pose held at `held` (B, K, 2) (a verbatim move froze it)

Final poses (θ(0) for the video model, whose velocity rollout then runs from them):

  θ_Γ = Γ(z, θ̂, m, z0)            every present object is a partner at its θ̂, placed ones too
  θ_k = held_k if frozen_k, else θ̂_k if placed_k, else θ_Γ,k;   absent slots at absent_pose

Edits are pure functions of a Scene (vectorised over B and K, no Python loop over objects):

* move verbatim (`snap=False`): θ_k = p and every other object keeps its current final pose
  (all are frozen at the poses of the current render; Γ is not re-run). Only object k's
  pixels change: the footprint of its old and new windows, widened by G's receptive field.
* move with snap (`snap=True`): object k is pinned at p: θ̂_k = p and θ_k = p (placed).
  Γ re-runs on the others, in which object k is a partner at its new position: its
  per-object code in Γ is o_k = [z_k, p, 0, 0] with partner weight m_k = 1, so every
  other object j receives f([o_j, o_k]) in h_j; Γ's own correction of object k is
  discarded. A snap also releases the objects a verbatim move froze: everything that was
  not placed by a move is again Γ's correction of its sampled θ̂.
* restyle / set_background: replace z_k or z0 (Γ and the scale MLP see the new code).
* remove / add: presence off (θ̂ parked at absent_pose) or on with a code and a pose; `add`
  appends a slot when every slot is taken: Γ, Ψf and G are defined for any K, so a K
  beyond model.num_objects renders with the same weights (one compile per K), except with
  model.fixed_objects, whose learned constants exist per training slot.
* interpolate: the float fields of two scenes with equal flags, over frames.

`Editor` binds a loaded model (relate_jax.api.Relate): Γ, the scales, one jitted render
per call (also the component renders of Fig. 4 and the before/after-Γ pair of Fig. 3).
"""

import json
import os

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from relate_jax import config as config_lib
from relate_jax import pixels
from relate_jax import steps
from relate_jax.models.generator import corrected_poses, object_scales
from relate_jax.models.latents import Latents
from relate_jax.models.video import object_codes

Array = jax.Array

POSE_ITERATIONS = 8  # Fixed-point steps of `Editor.pose_at_pixel` (s depends on θ).


@flax.struct.dataclass
class Scene:
  """B edited scenes (see the module docstring). latents: Latents with K slots;
  placed, frozen: (B, K) bool; held: (B, K, 2) final poses of frozen slots."""
  latents: Latents
  placed: Array
  frozen: Array
  held: Array

  @property
  def num_slots(self) -> int:
    return self.latents.appearance.shape[1]

  @property
  def batch_size(self) -> int:
    return self.latents.appearance.shape[0]


def scene(latents: Latents) -> Scene:
  """The unedited Scene of sampled latents: nothing placed or frozen."""
  b, k = latents.present.shape
  return Scene(latents=latents, placed=jnp.zeros((b, k), bool),
               frozen=jnp.zeros((b, k), bool), held=jnp.zeros((b, k, 2), jnp.float32))


def _slots(k: int, index) -> Array:
  """(B or 1, K) one-hot bool of slot `index` (int or (B,) ints)."""
  return jnp.arange(k)[None, :] == jnp.reshape(jnp.asarray(index), (-1, 1))


def final_poses(config: ml_collections.ConfigDict, scene_: Scene, corrected: Array) -> Array:
  """θ (B, K, 2) from Γ's output θ_Γ = `corrected` and the scene's flags."""
  lat = scene_.latents
  theta = jnp.where(scene_.placed[..., None], lat.poses, corrected)
  theta = jnp.where(scene_.frozen[..., None], scene_.held, theta)
  return jnp.where(lat.present[..., None] > 0, theta, config.absent_pose)


def move(scene_: Scene, index, to: Array, current: Array, snap: bool) -> Scene:
  """Object `index` moved to pose p = `to` ((2,) or (B, 2)).

  current: the final poses θ (B, K, 2) of `scene_` (what a verbatim move freezes).
  """
  one = _slots(scene_.num_slots, index)
  to = jnp.broadcast_to(jnp.asarray(to, jnp.float32), (scene_.batch_size, 2))
  lat = scene_.latents
  poses = jnp.where(one[..., None], to[:, None], lat.poses)
  moved = scene_.replace(latents=lat.replace(poses=poses), placed=scene_.placed | one)
  if snap:
    return moved.replace(frozen=jnp.zeros_like(scene_.frozen))
  return moved.replace(frozen=jnp.ones_like(scene_.frozen),
                       held=jnp.where(one[..., None], to[:, None], current))


def restyle(scene_: Scene, index, appearance: Array) -> Scene:
  """z_index := appearance ((Nf,) or (B, Nf))."""
  lat = scene_.latents
  z = jnp.broadcast_to(jnp.asarray(appearance, jnp.float32), lat.appearance[:, 0].shape)
  one = _slots(scene_.num_slots, index)[..., None]
  return scene_.replace(latents=lat.replace(
      appearance=jnp.where(one, z[:, None], lat.appearance)))


def set_background(scene_: Scene, background: Array) -> Scene:
  """z0 := background ((Nb,) or (B, Nb))."""
  lat = scene_.latents
  z0 = jnp.broadcast_to(jnp.asarray(background, jnp.float32), lat.background.shape)
  return scene_.replace(latents=lat.replace(background=z0))


def remove(config: ml_collections.ConfigDict, scene_: Scene, index) -> Scene:
  """Object `index` absent: presence 0, θ̂ at absent_pose, no longer placed or frozen."""
  one = _slots(scene_.num_slots, index)
  lat = scene_.latents
  return scene_.replace(
      latents=lat.replace(present=jnp.where(one, 0.0, lat.present),
                          poses=jnp.where(one[..., None], config.absent_pose, lat.poses)),
      placed=scene_.placed & ~one, frozen=scene_.frozen & ~one,
      held=jnp.where(one[..., None], 0.0, scene_.held))


def add(scene_: Scene, index, appearance: Array, pose: Array, placed: bool = False) -> Scene:
  """Object `index` present with code z = `appearance` and initial pose θ̂ = `pose`.

  placed=False: Γ corrects its pose like a sampled object's; True: θ = θ̂ (pinned).
  """
  one = _slots(scene_.num_slots, index)
  lat = scene_.latents
  pose = jnp.broadcast_to(jnp.asarray(pose, jnp.float32), (scene_.batch_size, 2))
  added = restyle(scene_, index, appearance)
  return added.replace(
      latents=added.latents.replace(present=jnp.where(one, 1.0, lat.present),
                                    poses=jnp.where(one[..., None], pose[:, None], lat.poses)),
      placed=jnp.where(one, placed, scene_.placed), frozen=scene_.frozen & ~one,
      held=jnp.where(one[..., None], 0.0, scene_.held))


def add_slots(config: ml_collections.ConfigDict, scene_: Scene, count: int = 1) -> Scene:
  """`count` more (absent) slots: K → K + count."""
  def pad(x, value=0):
    return jnp.pad(x, [(0, 0), (0, count)] + [(0, 0)] * (x.ndim - 2), constant_values=value)
  lat = scene_.latents
  return Scene(latents=lat.replace(appearance=pad(lat.appearance),
                                   poses=pad(lat.poses, config.absent_pose),
                                   present=pad(lat.present)),
               placed=pad(scene_.placed), frozen=pad(scene_.frozen), held=pad(scene_.held))


def interpolate(start: Scene, end: Scene, frames: int) -> Scene:
  """`frames` scenes from `start` to `end` (t = 0 … 1): z0, z_k, θ̂ and the held poses are
  interpolated linearly, the flags must agree. Rows are frame-major: (frames·B) scenes."""
  for name in ('present', 'select'):
    if not np.array_equal(np.asarray(getattr(start.latents, name)),
                          np.asarray(getattr(end.latents, name))):
      raise ValueError(f'cannot interpolate scenes whose {name} differ')
  for name in ('placed', 'frozen'):
    if not np.array_equal(np.asarray(getattr(start, name)), np.asarray(getattr(end, name))):
      raise ValueError(f'cannot interpolate scenes whose {name} flags differ')
  t = jnp.linspace(0.0, 1.0, frames)

  def lerp(a, b):  # Equal values stay bitwise equal: a + t·0 = a.
    a, b = jnp.asarray(a), jnp.asarray(b)
    if jnp.issubdtype(a.dtype, jnp.floating):
      out = a + t.reshape((-1,) + (1,) * a.ndim) * (b - a)
    else:
      out = jnp.broadcast_to(a, (frames,) + a.shape)
    return out.reshape((-1,) + a.shape[1:])

  return jax.tree.map(lerp, start, end)


def concatenate(scenes: list[Scene]) -> Scene:
  """One batch of several Scenes with equal K."""
  return jax.tree.map(lambda *xs: jnp.concatenate(xs), *scenes)


def component_compositions(num_slots: int, with_background: bool = True) -> np.ndarray:
  """Compositions (1, 1 + K, K + 1) of Fig. 4: the background alone, then object k alone
  (over the background when `with_background`), for k = 0 … K − 1."""
  objects = np.eye(num_slots, dtype=bool)
  frames = np.concatenate([np.zeros((1, num_slots), bool), objects])
  background = np.ones((1 + num_slots, 1), bool)
  background[1:] = with_background
  return np.concatenate([frames, background], 1)[None]


class _Correction(nn.Module):
  """Γ (or the stack chain) under the generator's parameter names: θ_Γ (B, K, 2)."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, latents: Latents) -> Array:
    c = self.config
    z = jnp.ones_like(latents.appearance) if c.fixed_objects else latents.appearance
    return corrected_poses(c, z, latents.poses, latents.present, latents.background)


class _Scales(nn.Module):
  """The scale MLP sc under the generator's name: s (B, K) of poses θ (B, K, 2)."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, latents: Latents, poses: Array) -> Array:
    c = self.config
    z = jnp.ones_like(latents.appearance) if c.fixed_objects else latents.appearance
    if c.name == config_lib.VIDEO:
      z = object_codes(z)
    return object_scales(c, latents.background, z, poses)


def centres(poses: Array, scales: Array, image_size: int) -> Array:
  """Rendered centres (x right, y down) in pixels (..., 2) of poses θ (..., 2) and scales s
  (...): −θ/s in normalised coordinates (relate_metrics.pose_to_pixels, traceable)."""
  return (-poses / scales[..., None] + 1.0) * image_size / 2.0 - 0.5


class Editor:
  """Edits and renders Scenes of a loaded model (relate_jax.api.Relate).

  Every render is one jitted call (Γ, placement, composition, G), compiled once per
  (batch size, K, compositions, frames).
  """

  def __init__(self, model):
    self.model = model
    self.config = model.config.model
    self.image_size = model.config.data.image_size
    frozen = ml_collections.FrozenConfigDict(model.config.model)
    self._correction = _Correction(frozen)
    self._scales = _Scales(frozen)
    self.is_video = self.config.name == config_lib.VIDEO
    self.traces = 0  # Times the render was traced (one compile each).
    self._render = jax.jit(self._render_impl, static_argnames=('frames',))
    self._poses = jax.jit(self._poses_impl)
    self._drag = jax.jit(self._drag_impl, static_argnames=('snap', 'frames'))
    self._pose_at_jit = jax.jit(self._pose_at)

  # Model pieces (traced) -------------------------------------------------------------

  def _final(self, params, scene_: Scene) -> Array:
    corrected = self._correction.apply({'params': params}, scene_.latents)
    return final_poses(self.config, scene_, corrected)

  def _poses_impl(self, params, scene_):
    theta = self._final(params, scene_)
    return theta, self._scales.apply({'params': params}, scene_.latents, theta)

  def _render_impl(self, params, scene_, compositions, frames):
    self.traces += 1
    theta = self._final(params, scene_)
    kwargs = steps.generator_kwargs(self.model.config, train=False, frames=frames)
    images, aux = self.model.generator.apply(
        {'params': params}, scene_.latents, render_single=False, poses=theta,
        compositions=compositions, **kwargs)
    aux['start_scales'] = self._scales.apply({'params': params}, scene_.latents, theta)
    return images, aux

  def _pose_at(self, params, scene_: Scene, index, pixel) -> Array:
    b, k = scene_.latents.present.shape
    p = (jnp.broadcast_to(jnp.asarray(pixel, jnp.float32), (b, 2)) + 0.5) * 2.0 \
        / self.image_size - 1.0
    one = _slots(k, index)[..., None]
    theta = self._final(params, scene_)

    def step(_, pose):  # θ_k ← −p·s(z0, z_k, θ_k): the centre −θ/s lands on p.
      poses = jnp.where(one, pose[:, None], theta)
      s = self._scales.apply({'params': params}, scene_.latents, poses)
      return -p * jnp.sum(jnp.where(one[..., 0], s, 0.0), 1)[:, None]

    return jax.lax.fori_loop(0, POSE_ITERATIONS, step, -p), theta

  def _drag_impl(self, params, scene_, index, pixel, snap, frames):
    target, theta = self._pose_at(params, scene_, index, pixel)
    moved = move(scene_, index, target, theta, snap)
    return (moved,) + self._render_impl(params, moved, None, frames)

  # Public API ----------------------------------------------------------------------

  @property
  def max_slots(self) -> int | None:
    """Most slots the weights can render: None (any K) unless model.fixed_objects."""
    if not self.config.fixed_objects:
      return None
    return int(self.model.params['object_constant'].shape[0])

  def check_slots(self, num_slots: int) -> None:
    limit = self.max_slots
    if limit is not None and num_slots > limit:
      raise ValueError(
          f'this model has one learned object constant per slot (model.fixed_objects, the '
          f'BallsInBowl setting) for {limit} slots: it cannot render {num_slots} objects')

  def sample(self, num: int, seed: int = 0, slots: int | None = None,
             objects: int | None = None) -> Scene:
    """`num` scenes sampled as the model samples (evaluation mode), seeded.

    slots: K (default model.num_objects; more is out of distribution, Fig. 6).
    objects: keep only the first `objects` slots present.
    """
    slots = slots or self.config.num_objects
    self.check_slots(slots)
    if slots == self.config.num_objects:
      latents = self.model.sample_latents(num, seed=seed)
    else:
      from relate_jax import models  # pylint: disable=g-import-not-at-top
      m = ml_collections.ConfigDict(self.config.to_dict())
      m.num_objects, m.min_objects = slots, min(m.min_objects, slots)
      key = jax.random.fold_in(self._key(seed, 'slots'), slots)
      latents = models.sample_latents(key, m, num, train=False)
    if objects is not None:
      keep = jnp.arange(slots)[None, :] < objects
      latents = latents.replace(present=latents.present * keep,
                                poses=jnp.where(keep[..., None], latents.poses,
                                                self.config.absent_pose),
                                select=jnp.minimum(latents.select, objects - 1))
    return scene(latents)

  def _key(self, seed: int, purpose: str) -> Array:
    base = jax.random.fold_in(steps.stream_keys(self.model.config.seed)['eval'], seed)
    return jax.random.fold_in(base, sum(map(ord, purpose)))

  def sample_appearance(self, seed: int) -> np.ndarray:
    """z ~ U[−1, 1]^Nf from `seed` (the prior of z_k)."""
    return np.asarray(jax.random.uniform(self._key(seed, 'appearance'), (self.config.obj_dim,),
                                         minval=-1.0, maxval=1.0))

  def sample_background(self, seed: int) -> np.ndarray:
    """z0 ~ U[−r, r]^Nb from `seed`, r = model.eval_bg_range (the evaluation prior)."""
    r = self.config.eval_bg_range
    return np.asarray(jax.random.uniform(self._key(seed, 'background'), (self.config.bg_dim,),
                                         minval=-r, maxval=r))

  def poses(self, scene_: Scene) -> tuple[Array, Array]:
    """Final poses θ (B, K, 2) (θ(0) for video) and their scales s (B, K)."""
    return self._poses(self.model.params, scene_)

  def centres(self, scene_: Scene) -> np.ndarray:
    """Rendered centre of each object in pixels (B, K, 2) (video: at θ(0))."""
    theta, s = self.poses(scene_)
    return np.asarray(centres(theta, s, self.image_size))

  def render(self, scene_: Scene, compositions=None, frames: int | None = None):
    """Images (B, S, S, 3) in [-1, 1] (video: (B, F, S, S, 3)) and the aux dict ('poses',
    'scales', 'start_scales' s at θ / θ(0), and with `compositions` (see
    generator.composition_masks) 'compositions')."""
    self.check_slots(scene_.num_slots)
    if compositions is not None:
      compositions = jnp.broadcast_to(jnp.asarray(compositions, bool),
                                      (scene_.batch_size,) + np.shape(compositions)[1:])
    return self._render(self.model.params, scene_, compositions,
                        self._frames(frames))

  def _frames(self, frames):
    return (frames or self.config.sample_frames) if self.is_video else None

  def move(self, scene_: Scene, index, to, snap: bool = False) -> Scene:
    """Object `index` to pose θ = `to` (see the module docstring for snap)."""
    current = None if snap else self.poses(scene_)[0]
    return move(scene_, index, to, current, snap)

  def pose_at_pixel(self, scene_: Scene, index, pixel) -> Array:
    """The pose θ (B, 2) at which object `index` is rendered centred on `pixel` (x, y):
    θ = −p·s(θ) solved by POSE_ITERATIONS fixed-point steps (exact without scale
    augmentation, where s = 1)."""
    return self._pose_at_jit(self.model.params, scene_, jnp.asarray(index),
                             jnp.asarray(pixel, jnp.float32))[0]

  def drag(self, scene_: Scene, index, pixel, snap: bool = False, frames: int | None = None):
    """One jitted call: move object `index` so that it is centred on `pixel`, and render.
    Returns (scene, images, aux)."""
    return self._drag(self.model.params, scene_, jnp.asarray(index), jnp.asarray(pixel,
                      jnp.float32), snap=snap, frames=self._frames(frames))

  def remove(self, scene_: Scene, index) -> Scene:
    return remove(self.config, scene_, index)

  def free_slot(self, scene_: Scene) -> tuple[Scene, np.ndarray]:
    """(scene, index (B,)): the first absent slot of each row; when a row has none, every
    row gets a new slot K + 1 first."""
    free = np.asarray(scene_.latents.present) < 0.5
    if not free.any(axis=1).all():
      self.check_slots(scene_.num_slots + 1)
      scene_ = add_slots(self.config, scene_)
      free = np.asarray(scene_.latents.present) < 0.5
    return scene_, free.argmax(axis=1)

  def add(self, scene_: Scene, appearance, pose, index=None, placed: bool = False) -> Scene:
    """Adds an object in slot `index` (default: `free_slot`)."""
    if index is None:
      scene_, index = self.free_slot(scene_)
    return add(scene_, index, appearance, pose, placed)

  def before_gamma(self, scene_: Scene) -> Scene:
    """The scene without Γ's correction (Fig. 3, left): every final pose is θ̂ (placed and
    frozen objects keep theirs)."""
    return scene_.replace(placed=jnp.ones_like(scene_.placed))

  def components(self, scene_: Scene, with_background: bool = True,
                 frames: int | None = None) -> np.ndarray:
    """Fig. 4 in one call: uint8 (B, 2 + K, ...) = [scene, background alone, object 0 …
    K − 1 alone (over the background when `with_background`)]; video: (B, 2 + K, F, ...)."""
    images, aux = self.render(scene_, component_compositions(scene_.num_slots,
                                                             with_background), frames)
    both = jnp.concatenate([images[:, None], aux['compositions']], 1)
    return pixels.to_uint8(np.asarray(both))

  def gamma_pair(self, scene_: Scene, frames: int | None = None) -> np.ndarray:
    """Fig. 3 in one call: uint8 (B, 2, ...) = [before Γ (θ = θ̂), after Γ]."""
    b = scene_.batch_size
    images, _ = self.render(concatenate([self.before_gamma(scene_), scene_]), frames=frames)
    images = pixels.to_uint8(np.asarray(images))
    return np.stack([images[:b], images[b:]], 1)


# Scene <-> JSON ---------------------------------------------------------------------

LATENT_FIELDS = ('background', 'appearance', 'poses', 'present', 'select', 'start')
SCENE_FIELDS = ('placed', 'frozen', 'held')


def scene_to_json(scene_: Scene, row: int = 0) -> dict:
  """Row `row` of a Scene as plain JSON lists (float32 values round-trip exactly)."""
  out = {}
  for name in LATENT_FIELDS:
    value = getattr(scene_.latents, name)
    if value is not None:
      out[name] = np.asarray(value)[row].tolist()
  for name in SCENE_FIELDS:
    out[name] = np.asarray(getattr(scene_, name))[row].tolist()
  return out


def scene_from_json(config: ml_collections.ConfigDict, data: dict) -> Scene:
  """A one-row Scene from `scene_to_json`'s dict; checks every shape against the model."""
  unknown = set(data) - set(LATENT_FIELDS) - set(SCENE_FIELDS)
  if unknown:
    raise ValueError(f'unknown latent fields {sorted(unknown)}; known: '
                     f'{list(LATENT_FIELDS + SCENE_FIELDS)}')
  missing = {'background', 'appearance', 'poses', 'present'} - set(data)
  if missing:
    raise ValueError(f'missing latent fields {sorted(missing)}')
  video = config.name == config_lib.VIDEO

  def array(name, dtype, shape):
    value = np.asarray(data[name], dtype)
    if value.shape != shape:
      raise ValueError(f'{name} has shape {value.shape}, expected {shape}')
    return value[None]

  try:
    present = np.asarray(data['present'], np.float32)
    if present.ndim != 1 or not np.isin(present, (0.0, 1.0)).all():
      raise ValueError(f'present must be a list of 0/1 values, got {data["present"]}')
    k = len(present)
    start = data.get('start', config.sample_start if video else None)
    latents = Latents(
        background=array('background', np.float32, (config.bg_dim,)),
        appearance=array('appearance', np.float32, (k, config.obj_dim)),
        poses=array('poses', np.float32, (k, 2)), present=present[None],
        select=np.asarray([data.get('select', int(np.argmax(present)))], np.int32),
        start=None if not video else np.asarray([start], np.int32))
    placed = array('placed', bool, (k,)) if 'placed' in data else np.zeros((1, k), bool)
    frozen = array('frozen', bool, (k,)) if 'frozen' in data else np.zeros((1, k), bool)
    held = array('held', np.float32, (k, 2)) if 'held' in data else np.zeros((1, k, 2),
                                                                           np.float32)
  except (TypeError, ValueError) as e:
    raise ValueError(str(e)) from None
  return jax.tree.map(jnp.asarray, Scene(latents=latents, placed=placed, frozen=frozen,
                                         held=held))


# Grids for relate_jax.evaluate ----------------------------------------------------------

def tile(images: np.ndarray, pad: int = 2, value: int = 255) -> np.ndarray:
  """uint8 (R, C, ..., H, W, 3) → one grid (..., R·(H+pad)−pad, C·(W+pad)−pad, 3)."""
  images = np.asarray(images)
  r, c = images.shape[:2]
  h, w = images.shape[-3:-1]
  lead = images.shape[2:-3]
  out = np.full(lead + (r * (h + pad) - pad, c * (w + pad) - pad, 3), value, np.uint8)
  for i in range(r):
    for j in range(c):
      out[..., i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w, :] = \
          images[i, j]
  return out


def write_grids(model, out_dir: str, num: int = 4, seed: int = 0) -> dict[str, str]:
  """Writes the per-component grid (Fig. 4: rows = scenes; columns = scene, background,
  object 1 … K over the background) and the Γ before/after grid (Fig. 3) of `num` seeded
  scenes into `out_dir` (PNG; GIF of the frames for the video model). Returns the paths."""
  from relate_jax import video_io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  editor = Editor(model)
  scenes = editor.sample(num, seed=seed)
  os.makedirs(out_dir, exist_ok=True)
  paths = {}
  for name, images in (('components', editor.components(scenes)),
                       ('gamma', editor.gamma_pair(scenes))):
    grid = tile(images)  # Video: (F, H, W, 3), one grid per frame.
    path = os.path.join(out_dir, f'{name}_{model.step:08d}')
    if editor.is_video:
      video_io.write_gif(path + '.gif', grid)
      paths[name] = path + '.gif'
    else:
      Image.fromarray(grid).save(path + '.png')
      paths[name] = path + '.png'
  with open(os.path.join(out_dir, f'latents_{model.step:08d}.json'), 'w') as f:
    json.dump([scene_to_json(scenes, i) for i in range(num)], f)
  return paths
