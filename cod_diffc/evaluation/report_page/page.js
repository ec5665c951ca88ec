"use strict";
// The comparison page of a cod-diffc evaluation: RD curves, a split viewer and grids, from the JSON in #data.
const data = JSON.parse(document.getElementById("data").textContent);
const ORIGINAL = "\u0000original";  // the original's entry in the method pickers; no method name holds a NUL
const COLORS = ["#0b57d0", "#d93025", "#188038", "#e37400", "#9334e6", "#12a4af", "#b06000", "#5f6368", "#c5221f",
  "#1e8e3e", "#f538a0", "#3c4043"];
const $ = (id) => document.getElementById(id);
const methods = Object.keys(data.points);
const state = { image: data.images[0], rate: data.targets[Math.floor(data.targets.length / 2)],
  a: methods[0], b: data.originals[data.images[0]] ? ORIGINAL : methods[1] || methods[0],
  split: 50, zoom: 1, panX: 0, panY: 0, width: 0, height: 0 };

// A run-relative file path as a URL (image names may hold "#", "%", spaces).
function url(path) { return path.split("/").map(encodeURIComponent).join("/"); }
function nameOf(method) { return method === ORIGINAL ? "original" : method; }
function fmt(value, digits) { return value === null || value === undefined ? "–" : value.toFixed(digits); }
function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

// The point of `method` on the current image nearest the chosen rate (in log bpp), or the original.
function pointOf(method, rate = state.rate) {
  if (method === ORIGINAL) return { png: data.originals[state.image], original: true };
  const rows = (data.points[method] || {})[state.image] || [];
  let best = null;
  for (const row of rows) {
    const distance = Math.abs(Math.log(row.bpp) - Math.log(rate));
    if (best === null || distance < best.distance) best = { ...row, distance };
  }
  return best;
}

function describe(method, point) {
  if (!point) return `${nameOf(method)}: no picture at this rate`;
  if (point.original) return "original";
  return `${method} · ${point.bytes} bytes · ${fmt(point.bpp, 4)} bpp · ${fmt(point.psnr, 2)} dB · MS-SSIM ${fmt(point.msssim, 4)}`;
}

function fillSelect(select, values, labels, chosen) {
  select.replaceChildren(...values.map((value, i) => element("option", { value }, labels[i])));
  select.value = String(chosen);
}

function setupControls() {
  fillSelect($("pick-image"), data.images, data.images, state.image);
  fillSelect($("pick-rate"), data.targets, data.targets.map((t) => String(t)), state.rate);
  const choices = [...methods, ...(Object.keys(data.originals).length ? [ORIGINAL] : [])];
  fillSelect($("pick-a"), choices, choices.map(nameOf), state.a);
  fillSelect($("pick-b"), choices, choices.map(nameOf), state.b);
  $("pick-image").addEventListener("change", (e) => { state.image = e.target.value; render(); });
  $("pick-rate").addEventListener("change", (e) => { state.rate = Number(e.target.value); render(); });
  $("pick-a").addEventListener("change", (e) => { state.a = e.target.value; render(); });
  $("pick-b").addEventListener("change", (e) => { state.b = e.target.value; render(); });
  $("zoom-in").addEventListener("click", () => zoomBy(2));
  $("zoom-out").addEventListener("click", () => zoomBy(0.5));
  $("zoom-reset").addEventListener("click", fit);
}

// --- the split viewer ------------------------------------------------------------------------------------------
// The scale at which the whole picture fits the section's width and three quarters of the window's height.
function fitScale() {
  if (!state.width) return 1;
  return Math.min($("viewer-section").clientWidth / state.width, (0.75 * window.innerHeight) / state.height);
}

function fit() { state.zoom = 1; state.panX = 0; state.panY = 0; layout(); }

function zoomBy(factor, atX = $("viewer").clientWidth / 2, atY = $("viewer").clientHeight / 2) {
  const before = state.zoom;
  state.zoom = Math.min(64, Math.max(1, state.zoom * factor));
  const ratio = state.zoom / before;
  state.panX = atX - (atX - state.panX) * ratio;
  state.panY = atY - (atY - state.panY) * ratio;
  layout();
}

function clampPan() {
  const viewer = $("viewer");
  const scale = fitScale() * state.zoom;
  state.panX = Math.min(0, Math.max(viewer.clientWidth - state.width * scale, state.panX));
  state.panY = Math.min(0, Math.max(viewer.clientHeight - state.height * scale, state.panY));
}

function layout() {
  const viewer = $("viewer");
  if (state.width) {
    viewer.parentElement.style.width = viewer.style.width = `${Math.floor(state.width * fitScale())}px`;
    viewer.style.height = `${Math.floor(state.height * fitScale())}px`;
  }
  clampPan();
  const scale = fitScale() * state.zoom;
  for (const img of [$("view-a"), $("view-b")]) {
    img.style.transform = `translate(${state.panX}px, ${state.panY}px) scale(${scale})`;
  }
  $("layer-a").style.clipPath = `inset(0 ${100 - state.split}% 0 0)`;
  $("divider").style.left = `${state.split}%`;
  $("divider").setAttribute("aria-valuenow", String(Math.round(state.split)));
  $("zoom-level").textContent = state.zoom === 1 ? "fit" : `${Math.round(scale * 100)} %`;
}

function showSide(img, method, point) {
  if (point && point.png) {
    img.src = url(point.png);
    img.alt = point.original ? `original ${state.image}` : `${method} on ${state.image} at ${fmt(point.bpp, 4)} bpp`;
  } else {
    img.removeAttribute("src");
    img.alt = `${method}: no picture kept at this rate`;
  }
}

function label(node, method, point) {
  node.replaceChildren(document.createTextNode(describe(method, point)));
  if (point && !point.original) {
    for (const [name, path] of [["PNG", point.png], ["stream", point.stream]]) {
      if (!path) continue;
      node.append(" · ", element("a", { href: url(path), download: "" }, name));
    }
  }
}

function setupViewer() {
  const viewer = $("viewer");
  const divider = $("divider");
  $("view-a").addEventListener("load", (e) => {
    state.width = e.target.naturalWidth;
    state.height = e.target.naturalHeight;
    layout();
  });
  let drag = null;
  viewer.addEventListener("pointerdown", (e) => {
    drag = { divider: e.target === divider, x: e.clientX, y: e.clientY, panX: state.panX, panY: state.panY };
    viewer.setPointerCapture(e.pointerId);
    if (!drag.divider) viewer.classList.add("panning");
  });
  viewer.addEventListener("pointermove", (e) => {
    if (!drag) return;
    if (drag.divider) {
      const box = viewer.getBoundingClientRect();
      state.split = Math.min(100, Math.max(0, ((e.clientX - box.left) / box.width) * 100));
    } else {
      state.panX = drag.panX + e.clientX - drag.x;
      state.panY = drag.panY + e.clientY - drag.y;
    }
    layout();
  });
  const endDrag = () => { drag = null; viewer.classList.remove("panning"); };
  viewer.addEventListener("pointerup", endDrag);
  viewer.addEventListener("pointercancel", endDrag);
  viewer.addEventListener("wheel", (e) => {
    e.preventDefault();
    const box = viewer.getBoundingClientRect();
    zoomBy(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - box.left, e.clientY - box.top);
  }, { passive: false });
  viewer.addEventListener("keydown", onKey);  // the divider's keys reach it too: it sits inside the viewer
  window.addEventListener("resize", layout);
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;  // the browser's own shortcuts (zoom, select all) stay its own
  const step = 40;
  const actions = {
    ArrowLeft: () => (e.shiftKey ? (state.panX += step) : (state.split = Math.max(0, state.split - 5))),
    ArrowRight: () => (e.shiftKey ? (state.panX -= step) : (state.split = Math.min(100, state.split + 5))),
    ArrowUp: () => (state.panY += step),
    ArrowDown: () => (state.panY -= step),
    a: () => (state.split = 100),
    b: () => (state.split = 0),
    " ": () => { [state.a, state.b] = [state.b, state.a]; render(); },
    "+": () => zoomBy(2),
    "=": () => zoomBy(2),
    "-": () => zoomBy(0.5),
    0: fit,
  };
  const action = actions[e.key.length === 1 ? e.key.toLowerCase() : e.key];
  if (!action || ((e.key === "ArrowUp" || e.key === "ArrowDown") && !e.shiftKey)) return;  // the page scrolls
  e.preventDefault();
  action();
  layout();
}

// --- grids -----------------------------------------------------------------------------------------------------
function tile(method, point) {
  const figure = element("figure");
  const img = element("img", { loading: "lazy" });
  showSide(img, method, point);
  figure.append(img, element("figcaption", {}, describe(method, point)));
  return figure;
}

function renderGrids() {
  $("grid-methods-title").textContent = `Every method on ${state.image} nearest ${state.rate} bpp`;
  $("grid-methods").replaceChildren(...methods.map((method) => tile(method, pointOf(method))));
  const method = state.a === ORIGINAL ? methods[0] : state.a;
  $("grid-rates-title").textContent = `Every rate of ${method} on ${state.image}`;
  const rows = ((data.points[method] || {})[state.image] || []).slice().sort((p, q) => p.bpp - q.bpp);
  $("grid-rates").replaceChildren(...rows.map((point) => tile(method, point)));
}

// --- RD curves and BD table ------------------------------------------------------------------------------------
function chart(container, key, unit) {
  const width = 520, height = 320, left = 48, right = 12, top = 10, bottom = 36;
  const curves = data.curves.filter((c) => c.bpp.length);
  const xs = curves.flatMap((c) => c.bpp).filter((x) => x > 0);
  const ys = curves.flatMap((c) => c[key]).filter((y) => y !== null && Number.isFinite(y));
  if (!xs.length || !ys.length) { container.textContent = "no curves"; return; }
  const [x0, x1] = [Math.log10(Math.min(...xs)), Math.log10(Math.max(...xs))];
  const pad = (Math.max(...ys) - Math.min(...ys)) * 0.05 || 1;
  const [y0, y1] = [Math.min(...ys) - pad, Math.max(...ys) + pad];
  const sx = (x) => left + ((Math.log10(x) - x0) / (x1 - x0 || 1)) * (width - left - right);
  const sy = (y) => top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${unit} against bpp for ${curves.length} methods`);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  for (let decade = Math.floor(x0); decade <= Math.ceil(x1); decade++) {
    for (const m of [1, 2, 5]) {
      const x = m * 10 ** decade;
      if (Math.log10(x) < x0 - 1e-9 || Math.log10(x) > x1 + 1e-9) continue;
      add("line", { x1: sx(x), x2: sx(x), y1: top, y2: height - bottom, stroke: "#e5e7eb" });
      add("text", { x: sx(x), y: height - bottom + 14, "text-anchor": "middle" }, String(+x.toPrecision(2)));
    }
  }
  const yStep = Math.max(0.5, Math.round((y1 - y0) / 6));
  for (let y = Math.ceil(y0 / yStep) * yStep; y <= y1; y += yStep) {
    add("line", { x1: left, x2: width - right, y1: sy(y), y2: sy(y), stroke: "#e5e7eb" });
    add("text", { x: left - 6, y: sy(y) + 4, "text-anchor": "end" }, String(+y.toFixed(1)));
  }
  add("text", { x: (left + width) / 2, y: height - 4, "text-anchor": "middle" }, "bpp (log scale)");
  add("text", { x: 12, y: (top + height - bottom) / 2, transform: `rotate(-90 12 ${(top + height - bottom) / 2})`,
    "text-anchor": "middle" }, unit);
  curves.forEach((curve, i) => {
    const color = COLORS[i % COLORS.length];
    const order = curve.bpp.map((x, j) => [x, curve[key][j]]).filter(([x, y]) => x > 0 && y !== null)
      .sort((p, q) => p[0] - q[0]);
    add("polyline", { points: order.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), fill: "none", stroke: color,
      "stroke-width": 1.8 });
    for (const [x, y] of order) {
      add("circle", { cx: sx(x), cy: sy(y), r: 2.8, fill: color }).append(
        Object.assign(document.createElementNS(NS, "title"), { textContent: `${curve.name}: ${fmt(x, 4)} bpp, ${fmt(y, 2)}` }));
    }
  });
  container.replaceChildren(svg);
}

function renderCurves() {
  chart($("chart-psnr"), "psnr", "PSNR [dB]");
  chart($("chart-msssim"), "msssim", "MS-SSIM [dB]");
  $("legend").replaceChildren(...data.curves.map((curve, i) => {
    const span = element("span", { title: curve.description }, curve.name);
    span.style.setProperty("--swatch", COLORS[i % COLORS.length]);
    return span;
  }));
  const table = $("bd-table");
  const head = element("tr");
  for (const name of ["method", `BD-rate against ${data.anchor}`, "BD-PSNR"]) head.append(element("th", {}, name));
  table.replaceChildren(head, ...data.bd.map((row) => {
    const tr = element("tr");
    tr.append(element("td", {}, row.method),
      element("td", {}, row.bd_rate === null ? "–" : `${row.bd_rate >= 0 ? "+" : ""}${fmt(row.bd_rate, 2)} %`),
      element("td", {}, row.bd_psnr === null ? "–" : `${row.bd_psnr >= 0 ? "+" : ""}${fmt(row.bd_psnr, 2)} dB`));
    return tr;
  }));
  const run = data.run || {};
  $("run-info").textContent = ["command", "version", "commit", "date", "hardware"]
    .filter((key) => run[key]).map((key) => `${key}: ${run[key]}`).join(" · ");
}

function render() {
  for (const [id, value] of [["pick-image", state.image], ["pick-rate", state.rate], ["pick-a", state.a],
    ["pick-b", state.b]]) $(id).value = String(value);
  const pointA = pointOf(state.a), pointB = pointOf(state.b);
  showSide($("view-a"), state.a, pointA);
  showSide($("view-b"), state.b, pointB);
  label($("label-a"), state.a, pointA);
  label($("label-b"), state.b, pointB);
  $("viewer").setAttribute("aria-label", `${describe(state.a, pointA)} (left) against ${describe(state.b, pointB)} (right)`);
  renderGrids();
  layout();
}

setupControls();
setupViewer();
renderCurves();
render();
