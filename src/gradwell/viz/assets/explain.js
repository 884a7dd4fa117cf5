// gradwell explain page: steps through the forward and backward pass of one graph.
// Everything it shows was computed in Python and is embedded as JSON; this script
// only replays the steps onto the SVG drawing and the panel.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("gw-data").textContent);
  const $ = (id) => document.getElementById(id);
  const views = new Map();
  let view = null;
  let timer = null;

  function setUp(spec) {
    const root = document.querySelector('.view[data-view="' + spec.id + '"]');
    const svg = root.querySelector("svg");
    const nodes = [], values = [], grads = [], base = [];
    for (let i = 0; i < spec.nodes; i++) {
      const g = $(spec.id + "-n" + i);
      nodes.push(g);
      values.push(g.querySelector("text.v"));
      grads.push(g.querySelector("text.g"));
      base.push(g.getAttribute("class"));
    }
    const edges = [], labels = [];
    for (let i = 0; i < spec.edges; i++) {
      edges.push($(spec.id + "-e" + i));
      labels.push($(spec.id + "-l" + i));
    }
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    const vb = svg.viewBox.baseVal;
    const full = { x: vb.x, y: vb.y, w: vb.width, h: vb.height };
    const shown = { cls: base.slice(), v: new Array(nodes.length).fill(""),
                    g: new Array(nodes.length).fill("") };
    const state = { spec, root, svg, nodes, values, grads, base, edges, labels, full, shown,
                    box: Object.assign({}, full), step: 0, lit: [] };
    state.nForward = spec.steps.filter((t) => t.phase === "forward").length;
    enablePanZoom(state);
    return state;
  }

  // ---- stepping ---------------------------------------------------------
  // The state after step k is replayed in memory from step 0; only the nodes whose
  // text or class differ from what is on screen are touched, so big graphs stay quick.
  function render() {
    const s = view, steps = s.spec.steps, k = s.step, n = s.nodes.length;
    const values = new Array(n).fill(""), grads = new Array(n).fill("");
    const known = new Array(n).fill(false), gstate = new Array(n).fill("");
    for (let t = 0; t <= k; t++) {
      for (const [i, field, text, cls] of steps[t].set) {
        if (field === "v") {
          values[i] = text;
          known[i] = true;
        } else {
          grads[i] = "\u2202 " + text;
          gstate[i] = cls;
        }
      }
    }
    const step = steps[k];
    for (let i = 0; i < n; i++) {
      let cls = s.base[i];
      if (known[i]) cls += " known";
      if (gstate[i]) cls += " " + gstate[i];
      if (i === step.node) cls += " current";
      if (cls !== s.shown.cls[i]) s.nodes[i].setAttribute("class", (s.shown.cls[i] = cls));
      if (values[i] !== s.shown.v[i]) s.values[i].textContent = s.shown.v[i] = values[i];
      if (grads[i] !== s.shown.g[i]) s.grads[i].textContent = s.shown.g[i] = grads[i];
    }
    for (const e of s.lit) {
      s.edges[e].setAttribute("class", "edge");
      if (s.labels[e]) s.labels[e].textContent = "";
    }
    s.lit = step.edges.slice();
    const dir = step.phase === "forward" ? "fwd" : "bwd";
    for (const e of step.edges) s.edges[e].setAttribute("class", "edge " + dir);
    for (const [e, text] of step.labels) {
      if (s.labels[e]) s.labels[e].textContent = text;
    }
    // raise the lit edges above the others so their colour is not hidden
    for (const e of step.edges) s.edges[e].parentNode.appendChild(s.edges[e]);
    showPanel(s, step, k);
    if (step.node !== null) keepVisible(s, step.node);
  }

  function showPanel(s, step, k) {
    const steps = s.spec.steps, nForward = s.nForward;
    const phase = $("phase");
    phase.textContent = step.phase;
    phase.className = "phase " + step.phase;
    $("stepno").textContent = step.phase === "forward"
      ? "step " + (k + 1) + " of " + nForward
      : "step " + (k - nForward + 1) + " of " + (steps.length - nForward);
    $("viewhint").textContent = s.spec.hint;
    $("title").textContent = step.title;
    const table = $("rows");
    table.replaceChildren();
    for (const [head, text] of step.rows) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      const td = document.createElement("td");
      th.textContent = head;
      td.textContent = text;
      tr.append(th, td);
      table.appendChild(tr);
    }
    $("c-done").textContent = String(step.done);
    $("c-products").textContent = String(s.spec.totals.products);
    $("c-sums").textContent = String(s.spec.totals.sums);
    $("c-paths").textContent = s.spec.totals.paths;
    $("c-factors").textContent = s.spec.totals.factors;
    $("scrub").max = String(steps.length - 1);
    $("scrub").value = String(k);
    $("first").disabled = $("prev").disabled = k === 0;
    $("next").disabled = $("last").disabled = k === steps.length - 1;
  }

  function go(k) {
    const n = view.spec.steps.length;
    view.step = Math.max(0, Math.min(n - 1, k));
    render();
  }

  function play() {
    if (timer !== null) return stop();
    if (view.step === view.spec.steps.length - 1) go(0);
    $("play").textContent = "\u23F8 Pause";
    $("play").setAttribute("aria-label", "pause");
    timer = setInterval(() => {
      if (view.step >= view.spec.steps.length - 1) return stop();
      go(view.step + 1);
    }, Number($("speed").value));
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    $("play").textContent = "\u25B6 Play";
    $("play").setAttribute("aria-label", "play");
  }

  function show(id) {
    stop();
    view = views.get(id);
    for (const tab of document.querySelectorAll(".tab")) {
      tab.setAttribute("aria-selected", String(tab.dataset.view === id));
    }
    for (const div of document.querySelectorAll(".view")) div.hidden = div.dataset.view !== id;
    if (!view.fitted) {
      fit(view, true);
      view.fitted = true;
    }
    render();
  }

  // ---- zoom and pan -----------------------------------------------------
  function applyBox(s) {
    const b = s.box;
    s.svg.setAttribute("viewBox", b.x + " " + b.y + " " + b.w + " " + b.h);
  }

  function toGraph(s, clientX, clientY) {
    const m = s.svg.getScreenCTM();
    if (!m) return { x: s.box.x + s.box.w / 2, y: s.box.y + s.box.h / 2 };
    const p = new DOMPoint(clientX, clientY).matrixTransform(m.inverse());
    return { x: p.x, y: p.y };
  }

  function zoom(s, factor, at) {
    const b = s.box;
    const w = Math.min(Math.max(b.w * factor, 40), s.full.w * 4);
    const f = w / b.w;
    b.x = at.x - (at.x - b.x) * f;
    b.y = at.y - (at.y - b.y) * f;
    b.w *= f;
    b.h *= f;
    applyBox(s);
  }

  // The whole graph, in the container's aspect ratio (so the viewBox is exactly what is
  // visible), never magnified beyond 1.5x; a graph too big to read whole starts at a
  // readable scale at its left end, where the forward pass begins.
  function fit(s, readable) {
    const cw = s.svg.clientWidth, ch = s.svg.clientHeight, f = s.full;
    if (!cw || !ch) {
      s.box = Object.assign({}, f);
    } else {
      let scale = Math.min(cw / f.w, ch / f.h, 1.5);
      const cx = f.x + f.w / 2, cy = f.y + f.h / 2;
      if (readable && scale < 0.6) scale = 0.75;
      const w = cw / scale, h = ch / scale;
      const x = readable && w < f.w ? f.x : cx - w / 2;
      s.box = { x: x, y: cy - h / 2, w: w, h: h };
    }
    applyBox(s);
  }

  function keepVisible(s, node) {
    const [cx, cy] = s.spec.pos[node];
    const b = s.box, pad = 20;
    if (cx < b.x + pad || cx > b.x + b.w - pad || cy < b.y + pad || cy > b.y + b.h - pad) {
      b.x = cx - b.w / 2;
      b.y = cy - b.h / 2;
      applyBox(s);
    }
  }

  function enablePanZoom(s) {
    s.svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      zoom(s, Math.pow(1.0015, ev.deltaY), toGraph(s, ev.clientX, ev.clientY));
    }, { passive: false });
    let drag = null;
    s.svg.addEventListener("pointerdown", (ev) => {
      drag = { p: toGraph(s, ev.clientX, ev.clientY) };
      s.svg.setPointerCapture(ev.pointerId);
      s.svg.classList.add("dragging");
    });
    s.svg.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      const p = toGraph(s, ev.clientX, ev.clientY);
      s.box.x -= p.x - drag.p.x;
      s.box.y -= p.y - drag.p.y;
      applyBox(s);
    });
    const end = () => { drag = null; s.svg.classList.remove("dragging"); };
    s.svg.addEventListener("pointerup", end);
    s.svg.addEventListener("pointercancel", end);
  }

  function centre(s) {
    return { x: s.box.x + s.box.w / 2, y: s.box.y + s.box.h / 2 };
  }

  // ---- wiring -----------------------------------------------------------
  for (const spec of data.views) views.set(spec.id, setUp(spec));
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => show(tab.dataset.view));
  }
  $("first").addEventListener("click", () => { stop(); go(0); });
  $("prev").addEventListener("click", () => { stop(); go(view.step - 1); });
  $("next").addEventListener("click", () => { stop(); go(view.step + 1); });
  $("last").addEventListener("click", () => { stop(); go(view.spec.steps.length - 1); });
  $("play").addEventListener("click", play);
  $("speed").addEventListener("change", () => { if (timer !== null) { stop(); play(); } });
  $("scrub").addEventListener("input", () => { stop(); go(Number($("scrub").value)); });
  $("zoom-in").addEventListener("click", () => zoom(view, 1 / 1.25, centre(view)));
  $("zoom-out").addEventListener("click", () => zoom(view, 1.25, centre(view)));
  $("zoom-fit").addEventListener("click", () => fit(view, false));
  window.addEventListener("resize", () => fit(view, false));
  document.addEventListener("keydown", (ev) => {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (ev.target instanceof HTMLSelectElement) return;
    const keys = {
      ArrowRight: () => { stop(); go(view.step + 1); },
      ArrowLeft: () => { stop(); go(view.step - 1); },
      Home: () => { stop(); go(0); },
      End: () => { stop(); go(view.spec.steps.length - 1); },
      " ": play,
      "+": () => zoom(view, 1 / 1.25, centre(view)),
      "=": () => zoom(view, 1 / 1.25, centre(view)),
      "-": () => zoom(view, 1.25, centre(view)),
      f: () => fit(view, false),
    };
    const action = keys[ev.key];
    if (action) {
      ev.preventDefault();
      action();
    }
  });
  show(data.views[0].id);
})();
