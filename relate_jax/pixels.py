"""Pixel conventions between uint8 images and the model's float range.

Kept free of the data pipeline's dependencies (grain, TFDS) so the training step and the
benchmarks import it alone.
"""

import numpy as np


def to_model_range(images_uint8, pixel_range: str):
  """uint8 images -> float32 model input: 'tanh' [-1, 1], 'reference' [-0.5, 0.5].

  Works on NumPy and JAX arrays (uses the array's own operators).
  """
  if pixel_range == 'tanh':
    return images_uint8.astype('float32') / 127.5 - 1.0
  if pixel_range == 'reference':
    return (images_uint8.astype('float32') - 127.5) / 255.0
  raise ValueError(f"pixel_range must be 'tanh' or 'reference', got {pixel_range!r}")


def to_uint8(images) -> np.ndarray:
  """Generator output in [-1, 1] to uint8 pixels (rounded, clipped)."""
  return np.clip(np.rint((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)
