"""Helpers shared by the builders that read published raw data sets.

CLEVR, CLEVR5(-vbg), ShapeStacks and RealTraffic all read image files from
``config.data.data_dir`` (the TFDS manual dir). They share three needs: find
the data set's root (data_dir itself or a named folder inside it), fail with
one message naming the expected layout, the path tried and where the data is
published, and decode an image so that a broken file is reported by name.
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

from PIL import Image

from relate_jax.data import common


def missing_data(dataset: str, reason: str, tried: Sequence[str], layout: str,
                 published: str) -> common.MissingDataError:
  """The error for absent or mislaid raw data (same wording as `common`).

  Args:
    dataset: human name, e.g. 'ShapeStacks'.
    reason: what is wrong, e.g. 'missing recordings/'.
    tried: the directories (or files) looked at.
    layout: the expected tree under config.data.data_dir.
    published: where the data set can be downloaded.
  """
  return common.MissingDataError(
      f'{dataset}: raw data not found ({reason}).\n'
      f'  paths tried: {", ".join(tried)}\n'
      f'  expected layout under config.data.data_dir:\n'
      + ''.join(f'    {line}\n' for line in layout.strip('\n').splitlines())
      + f'  published at: {published}\n'
      f'  download it there and pass --config.data.data_dir=DIR.')


def locate_root(data_dir: str, folders: Sequence[str], required: Sequence[str],
                dataset: str, layout: str, published: str) -> str:
  """The directory holding `required`: data_dir itself or data_dir/<folder>.

  Users point data_dir either at the unpacked data set or at the folder they
  unpacked it into, so both are accepted.

  Raises:
    MissingDataError: no candidate holds every path in `required`.
  """
  candidates = [data_dir] + [os.path.join(data_dir, f) for f in folders]
  for root in candidates:
    if all(os.path.exists(os.path.join(root, r)) for r in required):
      return root
  missing = [r for r in required if not os.path.exists(os.path.join(data_dir, r))]
  raise missing_data(dataset, 'missing ' + ', '.join(missing), candidates, layout,
                     published)


def natural_key(name: str) -> tuple:
  """Sort key ordering embedded numbers by value: 'f2' < 'f10'."""
  return tuple(int(t) if t.isdigit() else t for t in re.split(r'(\d+)', name))


def load_square(read: Callable[[], bytes] | str, name: str, image_size: int) -> Image.Image:
  """Decodes one image and resizes it as the reference does (RGB, LANCZOS, S x S).

  Args:
    read: a file path, or a function returning the encoded bytes (zip members).
    name: how to call the file in an error message.
    image_size: S.

  Raises:
    ValueError: the file cannot be read or decoded; the message names it.
  """
  try:
    if isinstance(read, str):
      with open(read, 'rb') as f:
        data = f.read()
    else:
      data = read()
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      return common.resize_square(image, image_size)
  except (OSError, SyntaxError, ValueError) as e:  # PIL reports bad data as any of these.
    raise ValueError(f'cannot read image {name}: {e}') from e


def encoded_square(read: Callable[[], bytes] | str, name: str, image_size: int) -> bytes:
  """PNG bytes of :func:`load_square`'s image, ready for `common.image_feature`."""
  return common.encode_png(load_square(read, name, image_size))


def map_ordered(fn: Callable, items: Iterable, num_threads: int | None = None,
                window: int = 256) -> Iterator:
  """fn over items in threads, results in input order, at most `window` in flight.

  PIL releases the GIL while decoding, resizing and encoding, so threads give
  a near-linear speed-up when preparing tens of thousands of images.
  """
  num_threads = num_threads or os.cpu_count() or 1
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    pending = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) >= window:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()
