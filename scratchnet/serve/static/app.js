// The drawing page of `python -m scratchnet.serve`: a canvas for mouse, touch and pen; every stroke is sent
// to /api/predict as a PNG and the answer (top classes, the 28x28 input, feature maps) is drawn beside it.
"use strict";

const STROKE = 1 / 14;      // the default stroke width, as a fraction of the pad's side
const SENT_SIDE = 280;      // drawings are sent at this size whatever the screen, so every screen reads alike
const THROTTLE_MS = 120;    // while drawing, at most one prediction request per this many milliseconds
const TOP_K = 5;

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");

// ------------------------------------------------------------------------------------------ state
// Strokes are kept in pad-relative coordinates (0..1), so the pad can be redrawn at any pixel density and
// Undo is "drop the last stroke and redraw".
const strokes = [];
let current = null;          // the stroke being drawn, and the pointer drawing it
let brush = 1;
let model = null;            // the /api/model answer
let lastImage = null;        // the last image read (a drawing or a photo): what "Wrong? It is" saves
// "The latest request wins": every request gets a number; an answer older than what is shown is dropped.
let requests = 0;
let shown = 0;
let busy = false;            // one drawing request in flight at a time; the newest drawing goes next
let wanted = false;
let lastSent = 0;
let throttleTimer = null;

// ------------------------------------------------------------------------------------------ drawing
function fitToScreen() {
  const ratio = window.devicePixelRatio || 1;
  const side = Math.max(1, Math.round(pad.getBoundingClientRect().width * ratio));
  if (pad.width !== side || pad.height !== side) {
    pad.width = side;
    pad.height = side;
  }
  redraw();
}

// The whole pad is repainted from the strokes on every change: a few hundred points cost nothing, and the
// picture is then always exactly what Undo or a resize will paint again.
function redraw() {
  paint(ctx, pad.width);
}

function paint(context, side) {
  context.fillStyle = "#fff";  // opaque white paper: the PNG has no transparency to guess about
  context.fillRect(0, 0, side, side);
  for (const stroke of strokes) drawStroke(stroke, context, side);
}

function drawStroke(stroke, context, side) {
  const points = stroke.points;
  context.strokeStyle = context.fillStyle = "#000";
  context.lineWidth = stroke.width * side;
  context.lineCap = context.lineJoin = "round";
  context.beginPath();
  if (points.length === 1) {  // a tap: a dot
    context.arc(points[0][0] * side, points[0][1] * side, context.lineWidth / 2, 0, 2 * Math.PI);
    context.fill();
    return;
  }
  context.moveTo(points[0][0] * side, points[0][1] * side);
  for (const [x, y] of points.slice(1)) context.lineTo(x * side, y * side);
  context.stroke();
}

// The drawing as a PNG blob, encoded at once: toBlob may wait for the browser to be idle, which is not
// "live" (a 280x280 PNG encodes in a millisecond or two).
function drawingAsPNG() {
  const canvas = Object.assign(document.createElement("canvas"), { width: SENT_SIDE, height: SENT_SIDE });
  paint(canvas.getContext("2d"), SENT_SIDE);
  const base64 = canvas.toDataURL("image/png").split(",")[1];
  return new Blob([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], { type: "image/png" });
}

function pointOf(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  if (current || (event.pointerType === "mouse" && event.button !== 0)) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  current = { pointer: event.pointerId, width: STROKE * brush, points: [pointOf(event)] };
  strokes.push(current);
  redraw();
  predictSoon();
});

pad.addEventListener("pointermove", (event) => {
  if (!current || event.pointerId !== current.pointer) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const each of events.length ? events : [event]) current.points.push(pointOf(each));
  redraw();
  predictSoon();
});

function endStroke(event) {
  if (!current || event.pointerId !== current.pointer) return;
  current = null;
  predictNow();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("contextmenu", (event) => event.preventDefault());

function clearPad() {
  strokes.length = 0;
  current = null;
  redraw();
  forget();
}

function undo() {
  if (current) return;
  strokes.pop();
  redraw();
  if (strokes.length) predictNow(); else forget();
}

// ------------------------------------------------------------------------------------------ asking
function predictSoon() {
  const wait = THROTTLE_MS - (performance.now() - lastSent);
  if (wait <= 0) predictNow();
  else if (!throttleTimer) throttleTimer = setTimeout(predictNow, wait);
}

function predictNow() {
  clearTimeout(throttleTimer);
  throttleTimer = null;
  wanted = true;
  sendDrawing();
}

function sendDrawing() {
  if (busy || !wanted) return;
  wanted = false;
  if (!strokes.length) return;  // a blank pad sends nothing
  busy = true;
  lastSent = performance.now();
  read(drawingAsPNG(), ++requests, "drawing").finally(() => {
    busy = false;
    if (wanted) {  // the strokes drawn meanwhile: sent as soon as the throttle allows
      wanted = false;
      predictSoon();
    }
  });
}

async function read(blob, number, source) {
  const features = model && model.feature_layer ? "?features=1" : "";
  const started = performance.now();
  let answer;
  try {
    const response = await fetch("/api/predict" + features, {
      method: "POST", body: blob, headers: { "Content-Type": blob.type || "application/octet-stream" },
    });
    answer = await response.json();
    if (number < shown) return;
    shown = number;
    if (!response.ok) return showError(answer.error || `the server answered ${response.status}`);
  } catch (error) {
    if (number >= shown) showError(`no answer from the server (${error.message})`);
    return;
  }
  lastImage = blob;
  showAnswer(answer, source, performance.now() - started);
}

function forget() {
  shown = ++requests;  // answers to anything sent before this are stale now
  lastImage = null;
  $("prediction").textContent = "Draw something.";
  $("prediction").classList.remove("error");
  $("bars").replaceChildren();
  const input = $("input").getContext("2d");
  input.clearRect(0, 0, 28, 28);
  $("features").replaceChildren();
  $("features-figure").hidden = true;
}

// ------------------------------------------------------------------------------------------ showing
function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

function showAnswer(answer, source, roundTrip) {
  const line = $("prediction");
  line.classList.remove("error");
  const what = source === "drawing" ? "" : ` (${source})`;
  line.replaceChildren("It reads ", Object.assign(document.createElement("strong"), { textContent: answer.label }),
    ` ${percent(answer.probability)}${what}`);
  showBars(answer.top.slice(0, TOP_K));
  showInput(answer.input);
  showFeatures(answer.features);
  const t = answer.timing_ms;
  $("timing").textContent = `server ${t.total.toFixed(1)} ms (preparing ${t.prepare.toFixed(1)}, ` +
    `model ${t.model.toFixed(1)}) · round trip ${roundTrip.toFixed(1)} ms`;
}

function showBars(top) {
  const rows = top.map(({ label, probability }) => {
    const row = document.createElement("li");
    const name = Object.assign(document.createElement("span"), { className: "bar-label", textContent: label });
    const bar = Object.assign(document.createElement("span"), { className: "bar" });
    bar.setAttribute("aria-hidden", "true");
    const fill = Object.assign(document.createElement("span"), { className: "bar-fill" });
    fill.style.width = percent(probability);
    bar.append(fill);
    const value = Object.assign(document.createElement("span"), {
      className: "bar-value", textContent: percent(probability),
    });
    row.append(name, bar, value);
    return row;
  });
  $("bars").replaceChildren(...rows);
}

function grayImage(values, height, width, low, high) {
  const image = new ImageData(width, height);
  const span = high - low || 1;
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      const v = Math.round(255 * Math.min(1, Math.max(0, (values[r][c] - low) / span)));
      const i = 4 * (r * width + c);
      image.data[i] = image.data[i + 1] = image.data[i + 2] = v;
      image.data[i + 3] = 255;
    }
  }
  return image;
}

function showInput(input) {
  $("input").getContext("2d").putImageData(grayImage(input, 28, 28, 0, 1), 0, 0);
}

function showFeatures(features) {
  const figure = $("features-figure");
  if (!features) {
    figure.hidden = true;
    return;
  }
  const [height, width, count] = features.shape;
  let low = Infinity;
  let high = -Infinity;  // one scale for all maps, so a filter that barely fires looks dark
  for (const map of features.maps) for (const row of map) for (const v of row) {
    low = Math.min(low, v);
    high = Math.max(high, v);
  }
  const canvases = features.maps.map((map, index) => {
    const canvas = Object.assign(document.createElement("canvas"), { width, height });
    canvas.title = `filter ${index}`;
    canvas.getContext("2d").putImageData(grayImage(map, height, width, low, high), 0, 0);
    return canvas;
  });
  $("features").replaceChildren(...canvases);
  $("features-caption").textContent =
    `${count} feature maps of the first convolution (${features.layer}), ${height}×${width} each`;
  figure.hidden = false;
}

function showError(message) {
  const line = $("prediction");
  line.textContent = message;
  line.classList.add("error");
}

function status(message) {
  $("status").textContent = message;
}

function showModel(info) {
  model = info;
  const classes = info.classes;
  const shownClasses = classes.length <= 12 ? classes.join(" ") : `${classes.slice(0, 12).join(" ")} …`;
  $("model-info").textContent = `${info.name}, ${info.parameters.toLocaleString()} parameters, ` +
    `${classes.length} classes: ${shownClasses}`;
  $("class-list").replaceChildren(...classes.map((c) => Object.assign(document.createElement("option"), { value: c })));
  $("folder").textContent = info.corrections.folder;
}

// ------------------------------------------------------------------------------------------ buttons
async function postJSON(url, options) {
  const response = await fetch(url, { method: "POST", ...options });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
  return answer;
}

async function saveCorrection() {
  const label = $("correct-label").value.trim();
  const out = $("correct-status");
  if (!model) return;
  if (!lastImage) {
    out.textContent = "Draw (or upload) something first.";
    return;
  }
  if (!model.classes.includes(label)) {
    out.textContent = `"${label}" is not one of the model's classes.`;
    return;
  }
  try {
    const answer = await postJSON(`/api/correct?label=${encodeURIComponent(label)}`, {
      body: lastImage, headers: { "Content-Type": lastImage.type || "application/octet-stream" },
    });
    out.textContent = `Saved ${answer.saved} (${answer.count} of "${label}", ${answer.total} in all).`;
  } catch (error) {
    out.textContent = `Not saved: ${error.message}`;
  }
}

async function reloadModel() {
  status("Reloading the model…");
  try {
    showModel({ ...(await postJSON("/api/reload")), corrections: model.corrections });
    status(`Reloaded ${model.name} from ${model.path}.`);
    if (strokes.length) predictNow();
  } catch (error) {
    status(`Reload failed: ${error.message}`);
  }
}

function uploadPhoto(file) {
  if (!file) return;
  const number = ++requests;
  read(file, number, `photo ${file.name}`);
}

$("clear").addEventListener("click", clearPad);
$("undo").addEventListener("click", undo);
$("upload").addEventListener("click", () => $("file").click());
$("file").addEventListener("change", (event) => {
  uploadPhoto(event.target.files[0]);
  event.target.value = "";  // the same file chosen again is a new upload
});
$("brush").addEventListener("input", (event) => {
  brush = Number(event.target.value);
  $("brush-value").textContent = `${brush}×`;
});
$("correct").addEventListener("click", saveCorrection);
$("correct-label").addEventListener("keydown", (event) => {
  if (event.key === "Enter") saveCorrection();
});
$("reload").addEventListener("click", reloadModel);

document.addEventListener("keydown", (event) => {
  const typing = event.target instanceof HTMLInputElement && event.target.type !== "range";
  if (event.key === "Escape" && !typing) {
    event.preventDefault();
    clearPad();
  } else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z" && !typing) {
    event.preventDefault();
    undo();
  }
});

new ResizeObserver(fitToScreen).observe(pad);
window.matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`).addEventListener("change", fitToScreen);

fetch("/api/model")
  .then((response) => response.json())
  .then((info) => {
    showModel(info);
    document.body.dataset.ready = "true";
  })
  .catch((error) => status(`Could not ask the server about its model: ${error.message}`));
