"""Edit recipes: seeded (or explicit) scenes and lists of edits, rendered to files.

A recipe is a JSON object:

  {
    "step": 800,                  optional: checkpoint step (default: the newest)
    "zoom": 2,                    optional: nearest-neighbour upscaling of the outputs
    "fps": 8,                     optional: frames per second of GIF/MP4 outputs
    "frames": 16,                 optional, video model: frames per video
    "scenes": {                   named scenes, each sampled from a seed or given exactly
      "a": {"seed": 0},
      "two": {"seed": 4, "objects": 2},          only the first 2 slots present
      "crowd": {"seed": 1, "slots": 8},          K = 8 slots, beyond training (Fig. 6)
      "b": {"latents": {...}}                    editing.scene_to_json's dict
    },
    "entries": [                  each writes <name>.png (+ .gif/.mp4, see below)
      {"name": "parts", "scene": "a", "show": "components", "background": true},
      {"name": "gamma", "scene": ["a", "two"], "show": "gamma"},
      {"name": "snap", "scene": "a", "markers": true,
       "ops": [{"op": "move", "object": 0, "to_pixel": [32, 40], "snap": true}]},
      {"name": "slide", "scene": "a", "show": "interpolate", "frames": 12,
       "ops": [{"op": "move", "object": 1, "to": [0.5, -0.2]}]}
    ]
  }

`scene` is one name or a list (one grid row each). Ops, applied in order:
  {"op": "move", "object": k, "to": [θx, θy] | "to_pixel": [x, y], "snap": false}
  {"op": "restyle", "object": k, "seed": n | "appearance": [Nf numbers]}
  {"op": "background", "seed": n | "code": [Nb numbers]}
  {"op": "remove", "object": k}
  {"op": "add", "seed": n | "appearance": [...], "to": [θx, θy] | "to_pixel": [x, y],
   "placed": false, "slot": k}                  (default slot: the first free one, or K + 1)
`to` is a pose θ (the object is drawn centred at −θ/s in [−1, 1] coordinates, so +θx
moves it left); `to_pixel` is an image position (x right, y down) solved for θ.

`show` (columns of each row):
  "steps" (default)   the scene, then the scene after each op (cumulative; no ops: the
                      scene alone)
  "components"        after the ops: the scene, the background alone, each object alone
                      (over the background unless "background": false) (Fig. 4)
  "gamma"             after the ops: before Γ (θ = θ̂) and after Γ (Fig. 3)
  "interpolate"       "frames" scenes whose op parameters go linearly from their current
                      values (the object's final pose, its code, z0) to the given ones;
                      also <name>.gif of the frames (move, restyle, background only)
With the video model every cell is a video: <name>.gif and <name>.mp4 tile the videos,
<name>.png shows their first frames. "markers": true draws a cross on each object's centre.

Besides the images the run writes latents.json: this recipe with every scene given
exactly and every seed replaced by the code it drew, so the file alone re-renders the same
images (`--recipe=latents.json`), and under "rendered" the full state and final poses of
every image (output only; ignored when read).
"""

import dataclasses
import json
import os
from typing import Any

import jax.numpy as jnp
import numpy as np
from PIL import Image

from relate_jax import editing
from relate_jax import pixels
from relate_jax import video_io

FORMAT = 'relate_jax.edit/1'
SHOWS = ('steps', 'components', 'gamma', 'interpolate')
TOP_KEYS = {'format', 'step', 'zoom', 'fps', 'frames', 'scenes', 'entries', 'rendered', 'note'}
ENTRY_KEYS = {'name', 'scene', 'show', 'ops', 'background', 'frames', 'markers'}
OPS = {
    'move': ({'object'}, {'to', 'to_pixel', 'snap'}),
    'restyle': ({'object'}, {'seed', 'appearance'}),
    'background': (set(), {'seed', 'code'}),
    'remove': ({'object'}, set()),
    'add': (set(), {'seed', 'appearance', 'to', 'to_pixel', 'placed', 'slot'}),
}
ONE_OF = {'move': [('to', 'to_pixel')], 'restyle': [('seed', 'appearance')],
          'background': [('seed', 'code')], 'add': [('seed', 'appearance'), ('to', 'to_pixel')]}
INTERPOLABLE = ('move', 'restyle', 'background')


class RecipeError(ValueError):
  """A recipe mistake; the message names the entry."""


def _is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool)


def _numbers(value, length: int | None, what: str) -> list:
  if (not isinstance(value, list) or not all(_is_number(v) for v in value)
      or (length is not None and len(value) != length)):
    size = f'{length} numbers' if length is not None else 'a list of numbers'
    raise RecipeError(f'{what} must be {size}, got {json.dumps(value)[:80]}')
  return value


def load(path: str) -> dict:
  """Reads and structurally checks a recipe file (before any model is loaded)."""
  try:
    with open(path) as f:
      recipe = json.load(f)
  except FileNotFoundError:
    raise RecipeError(f'recipe {path} not found') from None
  except json.JSONDecodeError as e:
    raise RecipeError(f'recipe {path} is not valid JSON: {e}') from None
  check(recipe)
  return recipe


def check(recipe: Any) -> None:
  """Structural checks: keys, types and references between entries and scenes."""
  if not isinstance(recipe, dict):
    raise RecipeError('a recipe is a JSON object with "scenes" and "entries"')
  unknown = set(recipe) - TOP_KEYS
  if unknown:
    raise RecipeError(f'unknown top-level keys {sorted(unknown)}; known: {sorted(TOP_KEYS)}')
  for key in ('step', 'zoom', 'frames'):
    if key in recipe and recipe[key] is not None and (not _is_int(recipe[key])
                                                     or recipe[key] < (0 if key == 'step' else 1)):
      raise RecipeError(f'"{key}" must be a positive integer, got {recipe[key]!r}')
  if 'fps' in recipe and not (_is_number(recipe['fps']) and recipe['fps'] > 0):
    raise RecipeError(f'"fps" must be a positive number, got {recipe["fps"]!r}')
  scenes = recipe.get('scenes')
  if not isinstance(scenes, dict) or not scenes:
    raise RecipeError('"scenes" must be an object of named scenes')
  for name, spec in scenes.items():
    where = f'scenes.{name}'
    if not isinstance(spec, dict):
      raise RecipeError(f'{where}: a scene is {{"seed": n}} or {{"latents": {{...}}}}')
    if 'latents' in spec:
      if set(spec) != {'latents'} or not isinstance(spec['latents'], dict):
        raise RecipeError(f'{where}: "latents" is an object and stands alone')
    else:
      unknown = set(spec) - {'seed', 'slots', 'objects'}
      if unknown or 'seed' not in spec:
        raise RecipeError(f'{where}: needs "seed" (and optionally "slots", "objects"), '
                          f'got keys {sorted(spec)}')
      for key in ('seed', 'slots', 'objects'):
        if key in spec and (not _is_int(spec[key]) or spec[key] < (0 if key == 'seed' else 1)):
          raise RecipeError(f'{where}: "{key}" must be a {"non-negative" if key == "seed" else "positive"} integer')
      if spec.get('objects', 0) > spec.get('slots', spec.get('objects', 0)) and 'slots' in spec:
        raise RecipeError(f'{where}: "objects" ({spec["objects"]}) exceeds "slots" '
                          f'({spec["slots"]})')
  entries = recipe.get('entries')
  if not isinstance(entries, list) or not entries:
    raise RecipeError('"entries" must be a non-empty list')
  names = set()
  for i, entry in enumerate(entries):
    label = _label(i, entry)
    try:
      _check_entry(entry, scenes, names)
    except RecipeError as e:
      raise RecipeError(f'{label}: {e}') from None


def _label(i: int, entry) -> str:
  name = entry.get('name') if isinstance(entry, dict) else None
  return f'entries[{i}]' + (f' ({name!r})' if isinstance(name, str) else '')


def _check_entry(entry, scenes: dict, names: set) -> None:
  if not isinstance(entry, dict):
    raise RecipeError('an entry is an object with "name" and "scene"')
  unknown = set(entry) - ENTRY_KEYS
  if unknown:
    raise RecipeError(f'unknown keys {sorted(unknown)}; known: {sorted(ENTRY_KEYS)}')
  name = entry.get('name')
  if not isinstance(name, str) or not name or os.sep in name or name.startswith('.'):
    raise RecipeError('"name" must be a file-name-like string')
  if name in names or name == 'latents':
    raise RecipeError(f'name {name!r} is used twice (or reserved)')
  names.add(name)
  rows = entry.get('scene')
  rows = [rows] if isinstance(rows, str) else rows
  if not isinstance(rows, list) or not rows or not all(isinstance(r, str) for r in rows):
    raise RecipeError('"scene" must be a scene name or a list of names')
  for row in rows:
    if row not in scenes:
      raise RecipeError(f'unknown scene {row!r}; the recipe defines {sorted(scenes)}')
  show = entry.get('show', 'steps')
  if show not in SHOWS:
    raise RecipeError(f'unknown show {show!r}; one of {SHOWS}')
  if 'background' in entry and (show != 'components' or not isinstance(entry['background'], bool)):
    raise RecipeError('"background" (true/false) belongs to show "components"')
  if 'frames' in entry and (show != 'interpolate' or not _is_int(entry['frames'])
                            or entry['frames'] < 2):
    raise RecipeError('"frames" (an integer >= 2) belongs to show "interpolate"')
  if 'markers' in entry and not isinstance(entry['markers'], bool):
    raise RecipeError('"markers" must be true or false')
  ops = entry.get('ops', [])
  if not isinstance(ops, list) or (show == 'interpolate' and not ops):
    raise RecipeError(f'"ops" must be a{" non-empty" if show == "interpolate" else ""} list')
  for j, op in enumerate(ops):
    try:
      _check_op(op, show)
    except RecipeError as e:
      kind = op.get('op') if isinstance(op, dict) else None
      raise RecipeError(f'ops[{j}]' + (f' ({kind})' if isinstance(kind, str) else '')
                        + f': {e}') from None


def _check_op(op, show: str) -> None:
  if not isinstance(op, dict) or 'op' not in op:
    raise RecipeError('an op is an object with "op"')
  kind = op['op']
  if kind not in OPS:
    raise RecipeError(f'unknown edit {kind!r}; known: {sorted(OPS)}')
  required, optional = OPS[kind]
  keys = set(op) - {'op'}
  if keys - required - optional or required - keys:
    raise RecipeError(f'takes {sorted(required)} and optionally {sorted(optional)}, got '
                      f'{sorted(keys)}')
  for group in ONE_OF.get(kind, []):
    if sum(k in op for k in group) != 1:
      raise RecipeError(f'needs exactly one of {list(group)}')
  if 'object' in op and (not _is_int(op['object']) or op['object'] < 0):
    raise RecipeError(f'"object" must be a slot index >= 0, got {op["object"]!r}')
  for key in ('seed', 'slot'):
    if key in op and (not _is_int(op[key]) or op[key] < 0):
      raise RecipeError(f'"{key}" must be an integer >= 0, got {op[key]!r}')
  for key in ('to', 'to_pixel'):
    if key in op:
      _numbers(op[key], 2, f'"{key}"')
  for key in ('snap', 'placed'):
    if key in op and not isinstance(op[key], bool):
      raise RecipeError(f'"{key}" must be true or false')
  if show == 'interpolate' and kind not in INTERPOLABLE:
    raise RecipeError(f'{kind!r} cannot be interpolated (only {list(INTERPOLABLE)})')


@dataclasses.dataclass
class Rendered:
  """One entry's output: uint8 cells (R, C, [F,] H, W, 3) and, for markers, each cell's
  object centres (R, C, [F,] K, 2) in pixels and presence (R, C, K) (K padded to the
  largest with absent slots)."""
  cells: np.ndarray
  centres: np.ndarray | None
  present: np.ndarray | None


class Runner:
  """Runs a checked recipe on an `editing.Editor`."""

  def __init__(self, editor: editing.Editor, recipe: dict):
    self.editor = editor
    self.recipe = recipe
    self.frames = recipe.get('frames')
    self.scenes: dict[str, editing.Scene] = {}
    self.resolved = {'format': FORMAT, 'step': editor.model.step,
                     'zoom': recipe.get('zoom', 1), 'fps': recipe.get('fps', 8),
                     'scenes': {}, 'entries': [], 'rendered': {}}
    if self.frames is not None:
      self.resolved['frames'] = self.frames
    for name, spec in recipe['scenes'].items():
      try:
        self.scenes[name] = self._scene(spec)
      except ValueError as e:
        raise RecipeError(f'scenes.{name}: {e}') from None
      self.resolved['scenes'][name] = {'latents': editing.scene_to_json(self.scenes[name])}

  def _scene(self, spec: dict) -> editing.Scene:
    if 'latents' in spec:
      out = editing.scene_from_json(self.editor.config, spec['latents'])
      self.editor.check_slots(out.num_slots)
      return out
    return self.editor.sample(1, seed=spec['seed'], slots=spec.get('slots'),
                              objects=spec.get('objects'))

  # Ops --------------------------------------------------------------------------------

  def apply(self, scene: editing.Scene, op: dict, t: float | None = None):
    """(scene after `op`, the op with its seed replaced by the code it drew). With t (an
    interpolation), the op's parameter is lerped from its current value by t."""
    ed, m = self.editor, self.editor.config
    kind = op['op']
    resolved = dict(op)
    k = op.get('object')
    if k is not None:
      if k >= scene.num_slots:
        raise RecipeError(f'object {k} out of range: the scene has {scene.num_slots} slots '
                          f'(0 … {scene.num_slots - 1})')
      if float(scene.latents.present[0, k]) < 0.5:
        raise RecipeError(f'object {k} is absent in this scene')
    if 'seed' in op:
      code = ed.sample_background(op['seed']) if kind == 'background' else \
          ed.sample_appearance(op['seed'])
      del resolved['seed']
      resolved['code' if kind == 'background' else 'appearance'] = [float(v) for v in code]
    if 'appearance' in resolved:
      _numbers(resolved['appearance'], m.obj_dim, '"appearance"')
    if 'code' in resolved:
      _numbers(resolved['code'], m.bg_dim, '"code"')

    def lerp(current, value):
      value = jnp.asarray(value, jnp.float32)
      return value if t is None else current + t * (value - current)

    if kind == 'move':
      if 'to_pixel' in op:
        centre = jnp.asarray(ed.centres(scene)[0, k])
        to = ed.pose_at_pixel(scene, k, lerp(centre, op['to_pixel']))[0]
      else:
        to = lerp(ed.poses(scene)[0][0, k], op['to'])
      return ed.move(scene, k, to, snap=op.get('snap', False)), resolved
    if kind == 'restyle':
      z = lerp(scene.latents.appearance[0, k], resolved['appearance'])
      return editing.restyle(scene, k, z), resolved
    if kind == 'background':
      return editing.set_background(scene, lerp(scene.latents.background[0],
                                                resolved['code'])), resolved
    if kind == 'remove':
      return ed.remove(scene, k), resolved
    slot = op.get('slot')
    if slot is not None and slot >= scene.num_slots:
      raise RecipeError(f'slot {slot} out of range: the scene has {scene.num_slots} slots '
                        '(leave "slot" out to add one)')
    try:
      scene, index = (scene, slot) if slot is not None else ed.free_slot(scene)
    except ValueError as e:
      raise RecipeError(str(e)) from None
    z, placed = resolved['appearance'], op.get('placed', False)
    pose = op.get('to')
    if pose is None:  # θ̂ at which the new object, drawn at θ = θ̂, is centred on the pixel.
      pose = ed.pose_at_pixel(editing.add(scene, index, z, [0.0, 0.0]), index,
                              op['to_pixel'])[0]
    return editing.add(scene, index, z, pose, placed), resolved

  # Entries ------------------------------------------------------------------------------

  def run_entry(self, entry: dict) -> Rendered:
    show = entry.get('show', 'steps')
    rows = entry['scene'] if isinstance(entry['scene'], list) else [entry['scene']]
    ops = entry.get('ops', [])
    out_ops, scenes = None, []
    for row in rows:
      scene = self.scenes[row]
      resolved, columns = [], [scene]
      if show == 'interpolate':
        columns = self._interpolate(scene, ops, entry.get('frames', 8), resolved)
      else:
        for j, op in enumerate(ops):
          try:
            scene, done = self.apply(scene, op)
          except RecipeError as e:
            raise RecipeError(f'ops[{j}] ({op["op"]}) on scene {row!r}: {e}') from None
          resolved.append(done)
          columns.append(scene)
        if show != 'steps':
          columns = [scene]
      out_ops = resolved if out_ops is None else out_ops  # Seeds draw the same code per row.
      scenes.append(columns)
    self.resolved['entries'].append(dict(entry, ops=out_ops) if 'ops' in entry else dict(entry))
    return self._render(entry, show, scenes)

  def _interpolate(self, scene, ops, frames: int, resolved: list) -> list:
    columns = []
    for t in np.linspace(0.0, 1.0, frames):
      current = scene
      for j, op in enumerate(ops):
        try:
          current, done = self.apply(current, op, float(t))
        except RecipeError as e:
          raise RecipeError(f'ops[{j}] ({op["op"]}): {e}') from None
        if t == 0.0:
          resolved.append(done)
      columns.append(current)
    return columns

  def _render(self, entry: dict, show: str, scenes: list) -> Rendered:
    ed = self.editor
    cells, centres, present = [], [], []
    for columns in scenes:
      row_cells, row_centres = [], []
      for scene in columns:
        if show == 'components':
          row_cells.extend(ed.components(scene, entry.get('background', True), self.frames)[0])
        elif show == 'gamma':
          row_cells.extend(ed.gamma_pair(scene, self.frames)[0])
        else:
          images, aux = ed.render(scene, frames=self.frames)
          row_cells.append(pixels.to_uint8(np.asarray(images))[0])
          row_centres.append(np.asarray(editing.centres(aux['poses'], aux['scales'],
                                                        ed.image_size))[0])
      cells.append(row_cells)
      centres.append(row_centres)
      present.append([np.asarray(s.latents.present[0]) for s in columns])
    width = max(len(r) for r in cells)
    blank = np.full_like(cells[0][0], 255)
    grid = np.stack([np.stack(r + [blank] * (width - len(r))) for r in cells])
    self.resolved['rendered'][entry['name']] = [
        [dict(editing.scene_to_json(s), final_poses=np.asarray(ed.poses(s)[0][0]).tolist())
         for s in columns] for columns in scenes]
    if not entry.get('markers', False) or show not in ('steps', 'interpolate'):
      return Rendered(grid, None, None)
    k = max(p.shape[-1] for r in present for p in r)  # An "add" may have grown K.
    pad = lambda a, axis: np.pad(a, [(0, k - a.shape[axis]) if i == axis % a.ndim else (0, 0)
                                     for i in range(a.ndim)])
    return Rendered(grid, np.stack([np.stack([pad(c, -2) for c in r]) for r in centres]),
                    np.stack([np.stack([pad(p, -1) for p in r]) for r in present]))


def zoom(images: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour upscaling of (..., H, W, 3)."""
  if factor == 1:
    return images
  return np.repeat(np.repeat(images, factor, -3), factor, -2)


def write(rendered: Rendered, out: str, name: str, video: bool, show: str, factor: int,
          fps: float) -> list[str]:
  """Writes one entry's files; returns their paths."""
  cells = zoom(rendered.cells, factor)
  if rendered.centres is not None:
    c = rendered.centres * factor + (factor - 1) / 2.0
    present = rendered.present
    if video:  # (R, C, F, K, 2): one cross per frame; presence per cell.
      present = present[:, :, None]
    cells = video_io.draw_crosses(cells, c, present)
  paths = []
  base = os.path.join(out, name)
  if video:  # cells (R, C, F, H, W, 3)
    grid = editing.tile(cells)  # (F, H', W', 3)
    video_io.write_gif(base + '.gif', grid, fps)
    video_io.write_mp4(base + '.mp4', grid, fps)
    Image.fromarray(grid[0]).save(base + '.png')
    return [base + '.gif', base + '.mp4', base + '.png']
  Image.fromarray(editing.tile(cells)).save(base + '.png')
  paths.append(base + '.png')
  if show == 'interpolate':  # One animation: rows side by side, frames over time.
    frames = np.moveaxis(cells, 1, 0)[:, :, None]  # (C, R, 1, H, W, 3)
    video_io.write_gif(base + '.gif', np.stack([editing.tile(f) for f in frames]), fps)
    paths.append(base + '.gif')
  return paths


def run(editor: editing.Editor, recipe: dict, out: str, log=print) -> list[str]:
  """Renders every entry of a checked recipe into `out`; writes latents.json last."""
  os.makedirs(out, exist_ok=True)
  runner = Runner(editor, recipe)
  paths = []
  for i, entry in enumerate(recipe['entries']):
    try:
      rendered = runner.run_entry(entry)
    except RecipeError as e:
      raise RecipeError(f'{_label(i, entry)}: {e}') from None
    written = write(rendered, out, entry['name'], editor.is_video,
                    entry.get('show', 'steps'), recipe.get('zoom', 1), recipe.get('fps', 8))
    log(f'{entry["name"]}: {", ".join(os.path.basename(p) for p in written)}')
    paths.extend(written)
  path = os.path.join(out, 'latents.json')
  with open(path, 'w') as f:
    json.dump(runner.resolved, f)
  paths.append(path)
  return paths
