"""Writing generated videos: H.264 MP4 (PyAV), animated GIF (PIL), TensorBoard, overlays.

Frames are uint8 (F, H, W, 3). MP4s are encoded from the RGB frames directly with libx264
(yuv420p, CRF `MP4_CRF`), never from a palette-quantised GIF; GIFs are for quick viewing
only (a GIF has a 256-colour palette per frame). FVD reads the uint8 arrays of
`videos.npz`, not either file.
"""

import io

import numpy as np
from PIL import Image

MP4_CRF = 12  # x264 constant rate factor: visually lossless at these sizes.


def write_mp4(path: str, frames: np.ndarray, fps: float = 10.0) -> None:
  """Encodes uint8 frames (F, H, W, 3) as H.264 into `path` (H and W even)."""
  import av  # pylint: disable=g-import-not-at-top  (PyAV: only the export needs it)
  frames = np.asarray(frames, np.uint8)
  _, h, w, _ = frames.shape
  if h % 2 or w % 2:
    raise ValueError(f'H.264 in yuv420p needs even frame sizes, got {h}x{w}')
  with av.open(path, 'w') as container:
    stream = container.add_stream('libx264', rate=_rate(fps))
    stream.width, stream.height, stream.pix_fmt = w, h, 'yuv420p'
    stream.options = {'crf': str(MP4_CRF)}
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def _rate(fps: float):
  from fractions import Fraction  # pylint: disable=g-import-not-at-top
  return Fraction(fps).limit_denominator(1000)


def gif_bytes(frames: np.ndarray, fps: float = 10.0) -> bytes:
  """An animated, looping GIF of uint8 frames (F, H, W, 3)."""
  images = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
  buffer = io.BytesIO()
  images[0].save(buffer, format='GIF', save_all=True, append_images=images[1:],
                 duration=int(round(1000 / fps)), loop=0)
  return buffer.getvalue()


def write_gif(path: str, frames: np.ndarray, fps: float = 10.0) -> None:
  with open(path, 'wb') as f:
    f.write(gif_bytes(frames, fps))


def add_tensorboard_gif(writer, tag: str, frames: np.ndarray, step: int,
                        fps: float = 4.0) -> None:
  """Writes frames (F, H, W, 3) as an animated image summary (TensorBoard's image tab
  plays GIFs; tensorboardX's add_video would need moviepy)."""
  from tensorboardX.proto.summary_pb2 import Summary  # pylint: disable=g-import-not-at-top
  _, h, w, c = np.shape(frames)
  image = Summary.Image(height=h, width=w, colorspace=c,
                        encoded_image_string=gif_bytes(frames, fps))
  writer._get_file_writer().add_summary(  # pylint: disable=protected-access
      Summary(value=[Summary.Value(tag=tag, image=image)]), step)


def draw_crosses(frames: np.ndarray, centres: np.ndarray, present: np.ndarray | None = None,
                 size: int = 3, colours=None) -> np.ndarray:
  """Frames (..., H, W, 3) with a cross at each object's pixel centre (..., K, 2) (x, y).

  The paper's Fig. 7 overlay of the model's pose estimates. Objects outside the frame or
  with present = 0 ((K,) or broadcastable) are not drawn. Returns a copy.
  """
  frames = np.array(frames, np.uint8, copy=True)
  h, w = frames.shape[-3:-1]
  colours = np.asarray(colours if colours is not None else
                       [(255, 255, 255), (255, 64, 64), (64, 160, 255), (255, 220, 0),
                        (64, 255, 64), (255, 64, 255)], np.uint8)
  centres = np.rint(np.asarray(centres)).astype(int)
  lead = frames.shape[:-3]
  k = centres.shape[-2]
  centres = np.broadcast_to(centres, lead + (k, 2)).reshape(-1, k, 2)
  shown = np.ones((k,), bool) if present is None else np.asarray(present) > 0.5
  shown = np.broadcast_to(shown, lead + (k,)).reshape(-1, k)
  flat = frames.reshape((-1, h, w, 3))
  for i in range(flat.shape[0]):
    for j in range(k):
      x, y = centres[i, j]
      if not shown[i, j] or not (0 <= x < w and 0 <= y < h):
        continue
      colour = colours[j % len(colours)]
      flat[i, y, max(x - size, 0):min(x + size + 1, w)] = colour
      flat[i, max(y - size, 0):min(y + size + 1, h), x] = colour
  return flat.reshape(frames.shape)
