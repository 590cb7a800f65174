r"""A local browser editor for one generated scene.

  python -m relate_jax.edit.serve --workdir=DIR [--port=8765] [--seed=0]

then open http://127.0.0.1:8765/. The page shows the scene and a marker on each object's
centre; dragging a marker re-renders (one jitted call per frame: the pose that puts the
object under the pointer, the move, Γ and the render), "Snap" lets Γ adjust the other
objects (their markers follow), and buttons resample the selected object's appearance or
the background, add or remove objects, and download the scene as a recipe JSON that
`python -m relate_jax.edit --recipe=...` renders to the same image. Video models show the
clip (markers at θ(0)). Only the Python standard library serves it; the page needs no
network (no CDN).

HTTP API (JSON): GET /api/state; POST /api/{move,restyle,background,add,remove,scene}
with {"object", "x", "y", "snap", "seed"} as each needs; GET /api/latents (download).
"""

import base64
import http.server
import importlib.resources
import io
import json
import mimetypes
import threading
import time

import jax
import numpy as np
from absl import app
from absl import flags
from absl import logging
from PIL import Image

from relate_jax import editing
from relate_jax import pixels
from relate_jax.edit import recipe as recipe_lib

STATIC = importlib.resources.files('relate_jax.edit') / 'static'
RESAMPLE_SEED = 1_000_000  # Resampled codes draw from seeds counting up from here.


def png_data_url(image: np.ndarray) -> str:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode()


class Session:
  """The edited scene (one row) and the operations the page calls; thread-safe."""

  def __init__(self, editor: editing.Editor, seed: int = 0):
    self.editor = editor
    self.lock = threading.Lock()
    self.draws = RESAMPLE_SEED
    self.new_scene(seed)

  @property
  def scene(self) -> editing.Scene:
    return self._scene

  @scene.setter
  def scene(self, value: editing.Scene) -> None:
    # Host copies: jitted calls then see inputs of one kind (a jit output carries the
    # model's sharding, a fresh sample none), so a drag compiles once per K, not twice.
    self._scene = jax.tree.map(np.asarray, value)

  def new_scene(self, seed: int) -> None:
    self.seed = seed
    self.scene = self.editor.sample(1, seed=seed)
    self._render()

  def _render(self, result=None, start: float | None = None) -> None:
    """Renders self.scene, or takes `result` = (images, aux) of a drag started at `start`
    (perf_counter), and records the time of the jitted call in render_ms."""
    start = time.perf_counter() if start is None else start
    images, aux = result if result is not None else self.editor.render(self.scene)
    images = jax.block_until_ready(images)
    self.render_ms = (time.perf_counter() - start) * 1000.0
    self.images = pixels.to_uint8(np.asarray(images))[0]
    if self.editor.is_video:  # Markers at θ(0), the pose the edits act on.
      poses, scales = aux['start_poses'], aux['start_scales']
    else:
      poses, scales = aux['poses'], aux['scales']
    self.centres = np.asarray(editing.centres(poses, scales, self.editor.image_size))[0]

  def _draw(self) -> int:
    self.draws += 1
    return self.draws

  def _object(self, payload: dict) -> int:
    k = payload.get('object')
    if not isinstance(k, int) or not 0 <= k < self.scene.num_slots or \
        float(self.scene.latents.present[0, k]) < 0.5:
      raise ValueError(f'no object {k!r} in this scene')
    return k

  def handle(self, op: str, payload: dict) -> dict:
    with self.lock:
      ed = self.editor
      if op == 'move':
        start = time.perf_counter()
        self.scene, images, aux = ed.drag(self.scene, self._object(payload),
                                          [float(payload['x']), float(payload['y'])],
                                          snap=bool(payload.get('snap', False)))
        self._render((images, aux), start)
      elif op == 'restyle':
        self.scene = editing.restyle(self.scene, self._object(payload),
                                     ed.sample_appearance(self._draw()))
        self._render()
      elif op == 'background':
        self.scene = editing.set_background(self.scene, ed.sample_background(self._draw()))
        self._render()
      elif op == 'add':
        scene, index = ed.free_slot(self.scene)
        z = ed.sample_appearance(self._draw())
        pixel = [float(payload.get('x', ed.image_size / 2)),
                 float(payload.get('y', ed.image_size / 2))]
        pose = ed.pose_at_pixel(editing.add(scene, index, z, [0.0, 0.0]), index, pixel)[0]
        self.scene = editing.add(scene, index, z, pose)
        self._render()
      elif op == 'remove':
        self.scene = ed.remove(self.scene, self._object(payload))
        self._render()
      elif op == 'scene':
        self.new_scene(int(payload.get('seed', self.seed + 1)))
      elif op != 'state':
        raise ValueError(f'unknown operation {op!r}')
      return self.state()

  def state(self) -> dict:
    frames = self.images if self.editor.is_video else self.images[None]
    lat = self.scene.latents
    return {
        'frames': [png_data_url(f) for f in frames],
        'size': self.editor.image_size,
        'seed': self.seed,
        'step': self.editor.model.step,
        'video': self.editor.is_video,
        'render_ms': round(self.render_ms, 2),
        'objects': [{'slot': k, 'x': float(c[0]), 'y': float(c[1]),
                     'placed': bool(self.scene.placed[0, k])}
                    for k, c in enumerate(self.centres) if float(lat.present[0, k]) > 0.5],
        'slots': self.scene.num_slots,
        'max_slots': self.editor.max_slots,
    }

  def latents_recipe(self) -> dict:
    """The scene as a recipe that renders this image with `python -m relate_jax.edit`."""
    with self.lock:
      return {'format': recipe_lib.FORMAT, 'step': self.editor.model.step,
              'note': 'Saved by relate_jax.edit.serve.',
              'scenes': {'edited': {'latents': editing.scene_to_json(self.scene)}},
              'entries': [{'name': 'edited', 'scene': 'edited'}]}


class Handler(http.server.BaseHTTPRequestHandler):
  """Static page files and the JSON API of one Session."""
  session: Session = None

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    logging.debug('%s %s', self.address_string(), format % args)

  def _send(self, status: int, body: bytes, content_type: str, extra=()) -> None:
    self.send_response(status)
    self.send_header('Content-Type', content_type)
    self.send_header('Content-Length', str(len(body)))
    self.send_header('Cache-Control', 'no-store')
    for key, value in extra:
      self.send_header(key, value)
    self.end_headers()
    self.wfile.write(body)

  def _json(self, data, status: int = 200, extra=()) -> None:
    self._send(status, json.dumps(data).encode(), 'application/json', extra)

  def do_GET(self):  # pylint: disable=invalid-name
    path = self.path.split('?')[0]
    if path == '/api/state':
      return self._json(self.session.handle('state', {}))
    if path == '/api/latents':
      return self._json(self.session.latents_recipe(), extra=[
          ('Content-Disposition', 'attachment; filename="scene_latents.json"')])
    name = 'index.html' if path == '/' else path.removeprefix('/static/')
    resource = STATIC / name
    if '/' in name or not resource.is_file():
      return self._send(404, b'not found', 'text/plain')
    kind = mimetypes.guess_type(name)[0] or 'application/octet-stream'
    return self._send(200, resource.read_bytes(), kind)

  def do_POST(self):  # pylint: disable=invalid-name
    path = self.path.split('?')[0]
    if not path.startswith('/api/'):
      return self._send(404, b'not found', 'text/plain')
    try:
      length = int(self.headers.get('Content-Length', 0))
      payload = json.loads(self.rfile.read(length) or b'{}')
      return self._json(self.session.handle(path.removeprefix('/api/'), payload))
    except (ValueError, KeyError, TypeError) as e:
      return self._json({'error': str(e)}, status=400)


def make_server(editor: editing.Editor, host: str = '127.0.0.1', port: int = 8765,
                seed: int = 0) -> http.server.ThreadingHTTPServer:
  """A server for `editor` (port 0: any free port); compiles before it returns."""
  session = Session(editor, seed)
  k = session.scene.num_slots
  for snap in (False, True):  # Compile the drag before the first request.
    editor.drag(session.scene, 0, [0.0, 0.0], snap=snap)
  logging.info('compiled the renders for K = %d', k)
  handler = type('BoundHandler', (Handler,), {'session': session})
  return http.server.ThreadingHTTPServer((host, port), handler)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from relate_jax import api  # pylint: disable=g-import-not-at-top
  try:
    model = api.load(flags.FLAGS.workdir)
  except FileNotFoundError as e:
    raise app.UsageError(str(e)) from None
  server = make_server(editing.Editor(model), flags.FLAGS.host, flags.FLAGS.port,
                       flags.FLAGS.seed)
  host, port = server.server_address[:2]
  print(f'relate_jax editor on http://{host}:{port}/ (step {model.step}); Ctrl-C stops it',
        flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()


if __name__ == '__main__':
  flags.DEFINE_string('workdir', None, 'Training workdir with checkpoints.')
  flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on (local only by default).')
  flags.DEFINE_integer('port', 8765, 'Port (0: any free port).')
  flags.DEFINE_integer('seed', 0, 'Seed of the first scene.')
  flags.mark_flags_as_required(['workdir'])
  app.run(main)
