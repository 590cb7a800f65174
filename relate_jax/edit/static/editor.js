// relate-jax scene editor: talks to relate_jax.edit.serve's JSON API. No dependencies.
'use strict';

const $ = (id) => document.getElementById(id);
let state = null;          // Last /api/state answer.
let selected = null;       // Selected slot.
let frame = 0;             // Shown video frame.
let pending = null;        // Latest drag target not yet sent (one request in flight).
let inFlight = false;
let lastRoundTrip = null;  // ms of the last request, measured here.
const timings = [];        // Round trips of drag requests (ms), read by the browser test.

async function call(path, body) {
  const start = performance.now();
  const response = await fetch(path, body === undefined ? {} : {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  const data = await response.json();
  lastRoundTrip = performance.now() - start;
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function show(data) {
  state = data;
  $('error').textContent = '';
  frame = Math.min(frame, data.frames.length - 1);
  $('scene').src = data.frames[data.video && $('play').checked ? frame : 0];
  $('play-label').hidden = !data.video;
  const layer = $('markers');
  const present = new Set(data.objects.map((o) => o.slot));
  if (!present.has(selected)) selected = null;
  for (const el of [...layer.children]) {
    if (!present.has(Number(el.dataset.slot))) el.remove();
  }
  for (const o of data.objects) {
    let el = layer.querySelector(`[data-slot="${o.slot}"]`);
    if (!el) {
      el = document.createElement('div');
      el.className = 'marker';
      el.dataset.slot = o.slot;
      el.textContent = o.slot;
      el.addEventListener('pointerdown', startDrag);
      layer.appendChild(el);
    }
    if (!el.classList.contains('dragging')) {
      el.style.left = `${(100 * (o.x + 0.5)) / data.size}%`;
      el.style.top = `${(100 * (o.y + 0.5)) / data.size}%`;
    }
    el.classList.toggle('placed', o.placed);
    el.classList.toggle('selected', o.slot === selected);
  }
  $('selected').textContent = selected === null ? 'none' : `#${selected}`;
  $('restyle').disabled = $('remove').disabled = selected === null;
  const full = data.max_slots !== null && data.objects.length >= data.max_slots;
  $('add').disabled = full;
  $('status').textContent = `step ${data.step} · seed ${data.seed} · ${data.objects.length} ` +
      `objects in ${data.slots} slots · render ${data.render_ms.toFixed(1)} ms` +
      (lastRoundTrip === null ? '' : ` · round trip ${lastRoundTrip.toFixed(1)} ms`);
}

function fail(error) { $('error').textContent = String(error.message || error); }

async function run(path, body) {
  try { show(await call(path, body)); } catch (e) { fail(e); }
}

function select(slot) {
  selected = slot;
  if (state) show(state);
}

// Dragging: the marker follows the pointer; the server gets the newest position whenever
// the previous request has come back (no queue builds up).
function imagePixel(event) {
  const box = $('stage').getBoundingClientRect();
  const clamp = (v) => Math.min(Math.max(v, 0), 1);
  return [clamp((event.clientX - box.left) / box.width) * state.size - 0.5,
          clamp((event.clientY - box.top) / box.height) * state.size - 0.5];
}

async function flush() {
  if (inFlight || pending === null) return;
  const body = pending;
  pending = null;
  inFlight = true;
  try {
    const start = performance.now();
    const data = await call('/api/move', body);
    timings.push(performance.now() - start);
    show(data);
  } catch (e) { fail(e); }
  inFlight = false;
  flush();
}

function startDrag(event) {
  const el = event.currentTarget;
  const slot = Number(el.dataset.slot);
  select(slot);
  el.setPointerCapture(event.pointerId);
  el.classList.add('dragging');
  let moved = false;
  const move = (e) => {
    moved = true;
    const [x, y] = imagePixel(e);
    el.style.left = `${(100 * (x + 0.5)) / state.size}%`;
    el.style.top = `${(100 * (y + 0.5)) / state.size}%`;
    pending = {object: slot, x, y, snap: $('snap').checked};
    flush();
  };
  const end = (e) => {
    if (moved) move(e);  // A click only selects.
    el.classList.remove('dragging');
    el.removeEventListener('pointermove', move);
    el.removeEventListener('pointerup', end);
    el.removeEventListener('pointercancel', end);
  };
  el.addEventListener('pointermove', move);
  el.addEventListener('pointerup', end);
  el.addEventListener('pointercancel', end);
  event.preventDefault();
}

$('restyle').addEventListener('click', () => run('/api/restyle', {object: selected}));
$('remove').addEventListener('click', () => run('/api/remove', {object: selected}));
$('add').addEventListener('click', () => run('/api/add', {}));
$('background').addEventListener('click', () => run('/api/background', {}));
$('new-scene').addEventListener('click', () => run('/api/scene', {seed: state.seed + 1}));

setInterval(() => {  // Video models: play the clip.
  if (!state || !state.video || !$('play').checked) return;
  frame = (frame + 1) % state.frames.length;
  $('scene').src = state.frames[frame];
}, 125);

window.relateEditor = {timings, state: () => state, select};
run('/api/state');
