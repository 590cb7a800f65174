"""The browser editor (relate_jax.edit.serve): its JSON API (fast) and the page end to end in
headless Chromium through Selenium (slow: `pytest -m slow tests/test_edit_browser.py`).

The browser test needs the `browser` extra (selenium) and Chromium with its driver (Debian:
`apt install chromium chromium-driver`); without them it is skipped with the reason. It
edits a seeded random-weight model of configs/test.py, or the checkpoint of
RELATE_EDITOR_WORKDIR; RELATE_EDITOR_SCREENSHOT=PATH saves the screenshot there too (the
README's picture), besides the test's tmp dir.
"""

import base64
import io
import json
import os
import shutil
import threading
import urllib.request

import jax
import numpy as np
import pytest
from PIL import Image

from relate_jax import api
from relate_jax import editing
from relate_jax import pixels
from relate_jax.edit import recipe as recipe_lib
from relate_jax.edit import serve

import configs.test as test_config


def load_model():
  workdir = os.environ.get('RELATE_EDITOR_WORKDIR')
  if workdir:
    return api.load(workdir)
  return api.untrained(test_config.get_config())


@pytest.fixture(scope='module')
def server():
  editor = editing.Editor(load_model())
  httpd = serve.make_server(editor, port=0, seed=2)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd, editor, f'http://127.0.0.1:{httpd.server_address[1]}'
  httpd.shutdown()
  httpd.server_close()


def post(url, path, body):
  request = urllib.request.Request(url + path, json.dumps(body).encode(),
                                   {'Content-Type': 'application/json'})
  try:
    with urllib.request.urlopen(request) as response:
      return response.status, json.load(response)
  except urllib.error.HTTPError as e:
    return e.code, json.load(e)


def get(url, path):
  with urllib.request.urlopen(url + path) as response:
    return json.load(response)


def decode(data_url):
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(',', 1)[1]))))


def recipe_image(editor, recipe, out):
  """The image `python -m relate_jax.edit --recipe=...` renders from a downloaded scene."""
  recipe_lib.check(recipe)
  recipe_lib.run(editor, recipe, out, log=lambda _: None)
  return np.asarray(Image.open(os.path.join(out, 'edited.png')))


def test_the_editor_api_edits_and_its_download_renders_the_same_scene(server, tmp_path):
  _, editor, url = server
  state = get(url, '/api/state')
  assert state['size'] == editor.image_size and state['objects']
  k = state['objects'][0]['slot']
  status, moved = post(url, '/api/move', {'object': k, 'x': 6.0, 'y': 9.0, 'snap': False})
  assert status == 200
  marker = next(o for o in moved['objects'] if o['slot'] == k)
  assert abs(marker['x'] - 6.0) < 0.6 and abs(marker['y'] - 9.0) < 0.6 and marker['placed']
  assert not np.array_equal(decode(moved['frames'][0]), decode(state['frames'][0]))
  for op, body in (('restyle', {'object': k}), ('background', {}), ('add', {'x': 20, 'y': 20})):
    status, state = post(url, '/api/' + op, body)
    assert status == 200, state
  assert len(state['objects']) == len(moved['objects']) + 1
  status, state = post(url, '/api/remove', {'object': k})
  assert status == 200 and k not in [o['slot'] for o in state['objects']]
  status, error = post(url, '/api/remove', {'object': k})
  assert status == 400 and f'no object {k}' in error['error']
  status, error = post(url, '/api/teleport', {})
  assert status == 400 and 'unknown operation' in error['error']
  image = recipe_image(editor, get(url, '/api/latents'), str(tmp_path))
  np.testing.assert_array_equal(image, decode(state['frames'][0]))


def chrome():
  webdriver = pytest.importorskip('selenium.webdriver', reason='pip install relate-jax[browser]')
  binary = shutil.which('chromium') or shutil.which('chromium-browser')
  driver = shutil.which('chromedriver')
  if not binary or not driver:
    pytest.skip('needs Chromium and chromedriver (apt install chromium chromium-driver)')
  options = webdriver.ChromeOptions()
  options.binary_location = binary
  for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--window-size=900,720'):
    options.add_argument(arg)
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.slow
def test_the_page_drags_snaps_edits_and_downloads_in_headless_chromium(server, tmp_path):
  from selenium.webdriver.common.action_chains import ActionChains  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top
  _, editor, url = server
  post(url, '/api/scene', {'seed': 2})
  browser = chrome()
  try:
    browser.get(url + '/')
    wait = WebDriverWait(browser, 30)
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, '.marker'))
    state = lambda: browser.execute_script('return window.relateEditor.state()')
    markers = lambda: browser.find_elements(By.CSS_SELECTOR, '.marker')
    count = len(markers())
    assert count == len(state()['objects'])
    first = state()['frames'][0]
    stage = browser.find_element(By.ID, 'stage')
    scale = stage.size['width'] / editor.image_size

    def drag(marker, dx, dy, steps_=8):
      chain = ActionChains(browser).click_and_hold(marker)
      for _ in range(steps_):
        chain.move_by_offset(dx / steps_, dy / steps_).pause(0.05)
      chain.release().perform()
      wait.until(lambda b: b.execute_script(
          'return !document.querySelector(".marker.dragging")'))

    # A verbatim drag: the object's marker ends under the pointer, the others stay.
    before = {o['slot']: (o['x'], o['y']) for o in state()['objects']}
    middle = (editor.image_size - 1) / 2
    slot = min(before, key=lambda k: abs(before[k][0] - middle) + abs(before[k][1] - middle))
    marker = browser.find_element(By.CSS_SELECTOR, f'.marker[data-slot="{slot}"]')
    dx, dy = np.where(np.asarray(before[slot]) < middle, 1, -1) * [6, 4]  # Inwards.
    drag(marker, dx * scale, dy * scale)
    wait.until(lambda b: state()['frames'][0] != first
               and not b.execute_script('return document.getElementById("error").textContent'))
    wait.until(lambda b: len(b.execute_script('return window.relateEditor.timings')) >= 2)
    after = {o['slot']: (o['x'], o['y']) for o in state()['objects']}
    assert abs(after[slot][0] - before[slot][0] - dx) < 1.5
    assert abs(after[slot][1] - before[slot][1] - dy) < 1.5
    for other in set(before) - {slot}:
      assert after[other] == pytest.approx(before[other], abs=1e-3)
    # With snap, Γ re-runs on the others (their markers follow its correction).
    browser.find_element(By.ID, 'snap').click()
    drag(marker, -dx * scale, -dy * scale)
    wait.until(lambda b: len(b.execute_script('return window.relateEditor.timings')) >= 4)
    assert next(o for o in state()['objects'] if o['slot'] == slot)['placed']
    # Buttons: the selected object's appearance, removal, an added object, the background.
    shown = state()['frames'][0]
    browser.find_element(By.ID, 'restyle').click()
    wait.until(lambda b: state()['frames'][0] != shown)
    browser.find_element(By.ID, 'add').click()
    wait.until(lambda b: len(markers()) == count + 1)
    shown = state()['frames'][0]
    browser.find_element(By.ID, 'background').click()
    wait.until(lambda b: state()['frames'][0] != shown)
    browser.find_element(By.ID, 'remove').click()
    wait.until(lambda b: len(markers()) == count)
    assert not browser.find_element(By.ID, 'error').text
    timings = browser.execute_script('return window.relateEditor.timings')
    status = browser.find_element(By.ID, 'status').text
    print(f'drag round trips (ms): {np.round(timings, 1).tolist()}; status: {status}')
    # The page's download link serves the scene it shows.
    recipe = browser.execute_script(
        'const r = await fetch(document.getElementById("download").href);'
        'return await r.json();')
    image = recipe_image(editor, recipe, str(tmp_path / 'download'))
    np.testing.assert_array_equal(image, decode(state()['frames'][0]))
    path = str(tmp_path / 'editor.png')
    browser.save_screenshot(path)
    assert Image.open(path).size[0] >= 800
    if os.environ.get('RELATE_EDITOR_SCREENSHOT'):
      shutil.copy(path, os.environ['RELATE_EDITOR_SCREENSHOT'])
  finally:
    browser.quit()


def test_pixels_helper_is_what_the_page_shows(server):
  """The page's frame is the editor's render of the session's scene (uint8 PNG)."""
  httpd, editor, url = server
  state = get(url, '/api/state')
  images, _ = editor.render(httpd.RequestHandlerClass.session.scene)
  np.testing.assert_array_equal(decode(state['frames'][0]),
                                pixels.to_uint8(np.asarray(jax.device_get(images)))[0])
