"""RELATE's own metrics (paper appendix; no code in the reference).

* Disentanglement score (Table A1): render a scene, switch each present object off in turn
  (present_k = 0 and θ_k parked at the absent pose, the other final poses θ unchanged), find the pixel of largest image change, and measure
  its distance to the object's rendered position; the score is the median distance (px).
* Position-head error: mean pixel distance between the discriminator's position prediction
  on real images and the ground-truth object position.

Geometry (REFERENCE.md §2.1): placement samples the object canvas at s·p + t for output
coordinate p (align_corners=False), so an object centred in its canvas appears at
p = −t/s in normalised coordinates [−1, 1]; pixel = (p + 1)·S/2 − 0.5 (x = column,
y = row).
"""

from typing import Callable

import numpy as np


def pose_to_pixels(poses, image_size: int, scales=None) -> np.ndarray:
  """θ = (t_x, t_y) (..., 2) [and scale s (...)] → rendered centre (x, y) in pixels (..., 2)."""
  poses = np.asarray(poses, np.float64)
  s = 1.0 if scales is None else np.asarray(scales, np.float64)[..., None]
  p = -poses / s
  return (p + 1.0) * image_size / 2.0 - 0.5


def pixels_to_pose(pixels, image_size: int) -> np.ndarray:
  """Inverse of pose_to_pixels at s = 1: pixel centre (x, y) → θ."""
  p = (np.asarray(pixels, np.float64) + 0.5) * 2.0 / image_size - 1.0
  return -p


RenderFn = Callable[..., tuple[np.ndarray, dict]]


def disentanglement_distances(render_fn: RenderFn, latents, absent_pose: float | None,
                              image_size: int | None = None,
                              num_objects: int | None = None) -> np.ndarray:
  """Distance (px) from each present object's rendered position to its max-change pixel.

  Args:
    render_fn: render_fn(latents, poses=None) -> (images (B, S, S, C), aux) with
      aux['poses'] the final θ (B, K, 2) and optionally aux['scales'] s (B, K); called
      with poses=θ it must render exactly those poses (Relate.render does).
    latents: Latents with `present` (B, K) in {0, 1} (a flax struct dataclass: `.replace`).
    absent_pose: where a switched-off object is parked (config.model.absent_pose). Given
      explicit poses, RelateGenerator still draws a slot with present = 0 unless
      model.hide_absent is set; the reference removes objects by parking them at
      (−2, −2), out of the frame, so the toggled slot's θ is set to this value too.
      None: the renderer honours `present` alone.
    image_size: S (default: the rendered size).
    num_objects: keep only scenes with exactly this many present objects (paper: 5).

  Returns:
    (M,) distances over every (scene, present object) pair kept.
  """
  images, aux = render_fn(latents)
  images = np.asarray(images, np.float64)
  poses = np.asarray(aux['poses'])
  scales = aux.get('scales')
  size = image_size or images.shape[1]
  present = np.asarray(latents.present) > 0.5
  keep = np.ones(len(present), bool)
  if num_objects is not None:
    keep = present.sum(axis=1) == num_objects
  centres = pose_to_pixels(poses, size, None if scales is None else np.asarray(scales))
  distances = []
  for k in range(present.shape[1]):
    rows = keep & present[:, k]
    if not rows.any():
      continue
    toggled = np.array(latents.present, copy=True)
    toggled[:, k] = 0
    parked = np.array(poses, copy=True)
    if absent_pose is not None:
      parked[:, k] = absent_pose
    without, _ = render_fn(latents.replace(present=toggled), poses=parked)
    change = np.abs(images - np.asarray(without, np.float64)).sum(axis=-1)  # (B, S, S)
    flat = change.reshape(len(change), -1).argmax(axis=1)
    y, x = np.unravel_index(flat, change.shape[1:])
    # Image rows/columns → pixels in the render's own size, then to the scoring size S.
    factor = size / change.shape[1]
    peak = np.stack([x, y], axis=-1) * factor + (factor - 1) / 2
    d = np.linalg.norm(peak - centres[:, k], axis=-1)
    distances.append(d[rows])
  return np.concatenate(distances) if distances else np.zeros((0,))


def disentanglement_score(render_fn: RenderFn, latents, absent_pose: float | None,
                          image_size: int | None = None, num_objects: int | None = 5) -> float:
  """Median of disentanglement_distances (paper Table A1; lower is better)."""
  d = disentanglement_distances(render_fn, latents, absent_pose, image_size, num_objects)
  if not len(d):
    raise ValueError(f'no scene with {num_objects} present objects to score')
  return float(np.median(d))


def position_error(predicted_poses, true_poses, image_size: int) -> dict[str, float]:
  """Pixel error of D's position head: predictions and targets are θ (B, 2) (s = 1).

  The head regresses θ of the rendered object (REFERENCE.md §4); both sides are
  converted to pixel centres with pose_to_pixels.
  """
  pred = pose_to_pixels(predicted_poses, image_size)
  true = pose_to_pixels(true_poses, image_size)
  d = np.linalg.norm(pred - true, axis=-1)
  return {'mean': float(d.mean()), 'median': float(np.median(d)), 'num': int(len(d))}
