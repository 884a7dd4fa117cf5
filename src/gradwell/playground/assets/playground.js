// gradwell playground: the page. Training runs in gradwell on the server; this script
// sends the settings and commands over a WebSocket and draws the frames it receives.
(function () {
  "use strict";

  const K = JSON.parse(document.getElementById("gw-data").textContent);
  const $ = (id) => document.getElementById(id);
  const FEATURES = ["x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2"];
  const FEATURE_LABELS = { x1: "X\u2081", x2: "X\u2082", x1sq: "X\u2081\u00b2", x2sq: "X\u2082\u00b2",
    x1x2: "X\u2081X\u2082", sinx1: "sin(X\u2081)", sinx2: "sin(X\u2082)" };
  // How each setting is written in the URL's #fragment.
  const LIST_NUM = ["layers", "dropout"], LIST_STR = ["features"];
  const BOOL = ["batchnorm", "show_test", "discretize"];
  const STR = ["dataset", "activation", "regularization", "init", "optimizer", "loss",
    "blowup_column", "scaling", "colour_by", "custom_task"];
  // Controls whose value is one setting (element id = setting name), and how to read them.
  const NUMERIC = ["lr", "reg_rate", "clip", "classes", "train_ratio", "noise", "batch_size",
    "blowup_scale", "blowup_offset"];
  const SIMPLE = ["lr", "activation", "regularization", "reg_rate", "optimizer", "init", "loss",
    "clip", "classes", "train_ratio", "noise", "batch_size", "blowup_column", "blowup_scale",
    "blowup_offset", "scaling", "colour_by", "batchnorm", "show_test", "discretize"];
  const CLASS_COLOURS = [[245, 147, 34], [8, 119, 189], [46, 125, 50], [198, 40, 40],
    [123, 31, 162], [0, 131, 143]];
  const WHITE = [232, 234, 235];

  let ws = null, session = null, config = null, setup = null, frame = null;
  let playing = false, losses = { train: [], test: [] }, hidden = [], shownFindings = "";
  const initial = parseHash();
  hidden = initial.hide;

  // ---- the URL ------------------------------------------------------------------
  function parseHash() {
    const settings = {};
    let hide = [];
    const text = location.hash.replace(/^#/, "");
    for (const part of text ? text.split("&") : []) {
      const eq = part.indexOf("=");
      if (eq < 0) continue;
      const key = part.slice(0, eq), value = decodeURIComponent(part.slice(eq + 1));
      if (key === "hide") hide = value ? value.split(",") : [];
      else if (LIST_NUM.includes(key)) settings[key] = value === "" ? [] : value.split(",").map(Number);
      else if (LIST_STR.includes(key)) settings[key] = value === "" ? [] : value.split(",");
      else if (BOOL.includes(key)) settings[key] = value === "true";
      else if (STR.includes(key)) settings[key] = value;
      else settings[key] = Number(value);
    }
    return { settings, hide };
  }

  function fragment(c) {
    const parts = Object.entries(c).map(([k, v]) =>
      k + "=" + encodeURIComponent(Array.isArray(v) ? v.join(",") : String(v)));
    if (hidden.length) parts.push("hide=" + hidden.join(","));
    return parts.join("&");
  }

  function writeUrl() {
    const hash = "#" + fragment(config);
    history.replaceState(null, "", location.pathname + location.search + hash);
    $("share-url").value = location.origin + location.pathname + hash;
  }

  // ---- the socket ----------------------------------------------------------------
  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(scheme + "//" + location.host + "/ws?token=" + encodeURIComponent(K.token));
    ws.onmessage = (e) => receive(JSON.parse(e.data));
    ws.onclose = () => say("The connection to the server closed: is `gradwell playground` still running? Reload the page.");
  }

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  function change(settings) {
    send({ type: "config", config: settings });
  }

  function receive(m) {
    if (m.type === "hello") {
      session = m.session;
      change(initial.settings);
    } else if (m.type === "setup") {
      setup = m;
      config = m.config;
      losses = { train: [], test: [] };
      shownFindings = "";
      $("epoch").textContent = "0"; // a new run: its first frame follows
      buildNetwork();
      showControls();
      writeUrl();
      $("remedy-note").textContent = "";
    } else if (m.type === "config") {
      config = m.config;
      showControls();
      writeUrl();
      if (frame) drawOutput();
    } else if (m.type === "state") {
      playing = m.playing;
      showPlay();
    } else if (m.type === "frame") {
      frame = m;
      if (m.stopped) { playing = false; say(m.stopped); }
      draw();
    } else if (m.type === "remedy") {
      $("remedy-note").textContent = m.ok
        ? "Applied: " + Object.entries(m.changes).map(([k, [a, b]]) => k + " " + a + " \u2192 " + b).join(", ") + "; training restarted."
        : "No remedy of this finding applies to the playground (" + m.skipped.join("; ") + ").";
    } else if (m.type === "error") {
      say(m.message);
      if (!setup) change({});
    }
  }

  function say(text) {
    $("message").textContent = text;
  }

  // ---- controls ------------------------------------------------------------------
  function options(select, values, label) {
    select.replaceChildren(...values.map((v) => {
      const o = document.createElement("option");
      o.value = String(v);
      o.textContent = label ? label(v) : String(v);
      return o;
    }));
  }

  function setUpControls() {
    options($("lr"), K.learningRates);
    options($("reg_rate"), K.regRates);
    options($("classes"), [2, 3, 4, 5, 6].slice(0, K.maxClasses - 1));
    options($("dropout"), [0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9]);
    options($("blowup_column"), ["none", ...FEATURES], (v) => v === "none" ? "none" : FEATURE_LABELS[v]);
    for (const id of SIMPLE) {
      const el = $(id);
      const read = () => el.type === "checkbox" ? el.checked
        : NUMERIC.includes(id) ? Number(el.value) : el.value;
      el.addEventListener("change", () => change({ [id]: read() }));
      if (el.type === "range") el.addEventListener("input", () => { $(id + "-v").textContent = el.value; });
    }
    $("problem").addEventListener("change", (e) =>
      change({ dataset: e.target.value === "regression" ? "plane" : "circle" }));
    $("dropout").addEventListener("change", (e) =>
      change({ dropout: config.layers.map(() => Number(e.target.value)) }));
    for (const b of document.querySelectorAll("[data-dataset]")) {
      b.addEventListener("click", () => change({ dataset: b.dataset.dataset }));
    }
    for (const b of document.querySelectorAll("[data-preset]")) {
      b.title = "the doctor should find: " + K.presets[b.dataset.preset].join(" or ").replace(/_/g, " ");
      b.addEventListener("click", () => { send({ type: "preset", name: b.dataset.preset }); });
    }
    $("add-layer").addEventListener("click", () => {
      if (config.layers.length < K.maxLayers) change({ layers: [...config.layers, 2] });
    });
    $("remove-layer").addEventListener("click", () => {
      if (config.layers.length > 0) change({ layers: config.layers.slice(0, -1) });
    });
    $("play").addEventListener("click", togglePlay);
    $("step").addEventListener("click", () => { playing = false; showPlay(); send({ type: "step" }); });
    $("reset").addEventListener("click", () => send({ type: "reset" }));
    $("regenerate").addEventListener("click", () => send({ type: "regenerate" }));
    $("share-link").addEventListener("click", () => {
      $("share-url").select();
      if (navigator.clipboard) navigator.clipboard.writeText($("share-url").value).catch(() => {});
    });
    $("export-python").addEventListener("click", () => download("/api/export/python", "playground.py"));
    $("export-checkpoint").addEventListener("click", () =>
      download("/api/export/checkpoint", "playground.safetensors"));
    $("upload").addEventListener("change", upload);
    $("output-heatmap").addEventListener("click", clickPlane);
    $("explain-close").addEventListener("click", () => { $("explain").hidden = true; });
    document.addEventListener("keydown", (e) => {
      if (e.key === " " && e.target === document.body) { e.preventDefault(); togglePlay(); }
    });
    $("vanishing-ratio").textContent = String(K.thresholds.vanishing_ratio);
    $("explode-growth").textContent = String(K.thresholds.explode_growth);
    const names = [...new Set([...document.querySelectorAll("[data-control]")].map((el) => el.dataset.control))];
    $("hide-list").replaceChildren(...names.map((name) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = hidden.includes(name);
      box.addEventListener("change", () => {
        hidden = box.checked ? [...hidden, name] : hidden.filter((n) => n !== name);
        showHidden();
        if (config) writeUrl();
      });
      label.append(box, name);
      return label;
    }));
    showHidden();
  }

  // Classroom mode: the controls named in the URL's "hide" are not shown.
  function showHidden() {
    for (const el of document.querySelectorAll("[data-control]")) {
      el.toggleAttribute("data-hidden", hidden.includes(el.dataset.control));
    }
    document.body.classList.toggle("classroom", hidden.length > 0);
  }

  function togglePlay() {
    playing = !playing;
    send({ type: playing ? "play" : "pause" });
    showPlay();
  }

  function showPlay() {
    $("play").textContent = playing ? "\u275A\u275A" : "\u25B6";
    $("play").classList.toggle("playing", playing);
    $("play").setAttribute("aria-label", playing ? "pause" : "play");
  }

  function showControls() {
    const c = config;
    for (const id of SIMPLE) {
      const el = $(id);
      if (el.type === "checkbox") el.checked = c[id];
      else el.value = String(c[id]);
      if (el.type === "range") $(id + "-v").textContent = String(c[id]);
    }
    $("problem").value = setup.problem;
    const rates = new Set(c.dropout);
    $("dropout").value = rates.size === 1 ? String(c.dropout[0]) : "";
    for (const b of document.querySelectorAll("[data-dataset]")) {
      b.classList.toggle("selected", b.dataset.dataset === c.dataset);
    }
    $("loss").disabled = setup.problem === "regression";
    $("layer-count").textContent = c.layers.length + " hidden layer" + (c.layers.length === 1 ? "" : "s");
    $("ranges").replaceChildren(...setup.features.map((f, j) => {
      const d = document.createElement("div");
      const [lo, hi] = setup.feature_range[j];
      d.textContent = FEATURE_LABELS[f] + " fed to the network in [" + fmt(lo) + ", " + fmt(hi) + "]";
      return d;
    }));
    showPlay();
  }

  async function download(path, name) {
    const response = await fetch(path + "?session=" + encodeURIComponent(session),
      { headers: { "X-Gradwell-Token": K.token } });
    if (!response.ok) { say(await response.text()); return; }
    const url = URL.createObjectURL(await response.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function upload(e) {
    const file = e.target.files[0];
    if (!file) return;
    const response = await fetch("/api/upload?session=" + encodeURIComponent(session), {
      method: "POST", headers: { "X-Gradwell-Token": K.token, "Content-Type": "text/csv" }, body: file,
    });
    say(response.ok ? "" : await response.text());
    e.target.value = "";
  }

  async function clickPlane(e) {
    const rect = e.target.getBoundingClientRect();
    const x1 = ((e.clientX - rect.left) / rect.width) * 12 - 6;
    const x2 = 6 - ((e.clientY - rect.top) / rect.height) * 12;
    const mode = $("click-mode").value;
    if (mode !== "explain") {
      send({ type: "add_point", x1: round(x1), x2: round(x2), label: Number(mode) });
      return;
    }
    if (playing) togglePlay();
    const query = "?session=" + encodeURIComponent(session) + "&x1=" + round(x1) + "&x2=" + round(x2);
    const response = await fetch("/api/explain" + query, { headers: { "X-Gradwell-Token": K.token } });
    if (!response.ok) { say(await response.text()); return; }
    $("explain-frame").srcdoc = await response.text();
    $("explain").hidden = false;
  }

  // ---- the network -----------------------------------------------------------------
  function unitBox(cls, title) {
    const d = document.createElement("div");
    d.className = "unit " + cls;
    d.title = title;
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = setup.grid;
    d.appendChild(canvas);
    return d;
  }

  function buildNetwork() {
    const columns = $("columns");
    columns.replaceChildren();
    $("links").replaceChildren(); // drawn anew once the columns are laid out
    const feat = document.createElement("div");
    feat.className = "layer";
    feat.innerHTML = '<div class="title">Features</div>';
    for (const f of FEATURES) {
      const on = setup.features.includes(f);
      const box = unitBox("feature" + (on ? "" : " off"), FEATURE_LABELS[f] + (on ? " (on: click to remove)" : " (off: click to add)"));
      box.setAttribute("data-testid", "feature-" + f);
      box.dataset.feature = f;
      box.addEventListener("click", () => {
        const next = on ? config.features.filter((x) => x !== f) : [...config.features, f];
        if (next.length) change({ features: next });
      });
      heat(box.querySelector("canvas"), decode(setup.feature_thumbs[f]));
      const name = document.createElement("div");
      name.className = "feature-name";
      name.textContent = FEATURE_LABELS[f];
      feat.append(box, name);
    }
    columns.appendChild(feat);
    config.layers.forEach((units, l) => {
      const col = document.createElement("div");
      col.className = "layer";
      const title = document.createElement("div");
      title.className = "title";
      title.textContent = units + " neuron" + (units === 1 ? "" : "s");
      const buttons = document.createElement("div");
      buttons.className = "units-buttons";
      for (const [text, delta] of [["+", 1], ["\u2212", -1]]) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = text;
        b.setAttribute("data-testid", (delta > 0 ? "add-neuron-" : "remove-neuron-") + l);
        b.addEventListener("click", () => {
          const next = config.layers.slice();
          next[l] = Math.max(1, Math.min(K.maxNeurons, next[l] + delta));
          change({ layers: next });
        });
        buttons.appendChild(b);
      }
      const drop = document.createElement("select");
      drop.title = "dropout rate of this layer";
      drop.setAttribute("data-testid", "dropout-" + l);
      options(drop, [0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9], (v) => "drop " + v);
      drop.value = String(config.dropout[l]);
      drop.addEventListener("change", () => {
        const next = config.dropout.slice();
        next[l] = Number(drop.value);
        change({ dropout: next });
      });
      col.append(title, buttons);
      for (let j = 0; j < units; j++) {
        const box = unitBox("neuron", "layer " + (l + 1) + ", neuron " + (j + 1));
        box.dataset.layer = String(l);
        box.dataset.unit = String(j);
        addBias(box, l, j);
        box.addEventListener("mouseenter", () => showBig(box, l, j));
        box.addEventListener("mouseleave", () => { $("big").hidden = true; });
        col.appendChild(box);
      }
      col.appendChild(drop);
      columns.appendChild(col);
    });
    const out = document.createElement("div");
    out.className = "layer";
    out.innerHTML = '<div class="title">Output</div>';
    const nOut = setup.problem === "regression" ? 1 : setup.classes;
    for (let j = 0; j < nOut; j++) {
      const box = document.createElement("div");
      box.className = "unit output";
      box.title = setup.problem === "regression" ? "the prediction" : "logit of class " + j;
      box.dataset.layer = String(config.layers.length);
      box.dataset.unit = String(j);
      addBias(box, config.layers.length, j);
      out.appendChild(box);
    }
    columns.appendChild(out);
    requestAnimationFrame(buildLinks);
  }

  function addBias(box, layer, unit) {
    const b = document.createElement("div");
    b.className = "bias";
    b.addEventListener("mouseenter", () => showCard(b, layer, unit, null, false));
    b.addEventListener("click", (e) => { e.stopPropagation(); showCard(b, layer, unit, null, true); });
    box.appendChild(b);
  }

  function centre(el, box) {
    const r = el.getBoundingClientRect();
    return [r.left + r.width / 2 - box.left, r.top + r.height / 2 - box.top, r.left - box.left, r.right - box.left];
  }

  function buildLinks() {
    const svg = $("links");
    svg.replaceChildren();
    if (!setup) return;
    const box = $("net").getBoundingClientRect();
    const columns = [...$("columns").children];
    const units = columns.map((col) => [...col.querySelectorAll(".unit")]);
    units[0] = units[0].filter((u) => setup.features.includes(u.dataset.feature));
    for (let l = 0; l + 1 < units.length; l++) {
      units[l + 1].forEach((to, j) => {
        units[l].forEach((from, i) => {
          const [, y1, , x1] = centre(from, box);
          const [, y2, x2] = centre(to, box);
          const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
          const mid = (x1 + x2) / 2;
          path.setAttribute("d", "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 + " " + x2 + "," + y2);
          path.dataset.layer = String(l);
          path.dataset.to = String(j);
          path.dataset.from = String(i);
          path.addEventListener("mouseenter", () => showCard(path, l, j, i, false));
          path.addEventListener("mouseleave", hideCardSoon);
          path.addEventListener("click", () => showCard(path, l, j, i, true));
          svg.appendChild(path);
        });
      });
    }
    if (frame) drawLinks();
  }

  let cardTimer = null;
  function hideCardSoon() {
    clearTimeout(cardTimer);
    cardTimer = setTimeout(() => { if (!$("card").querySelector("input")) $("card").hidden = true; }, 600);
  }

  function showCard(el, layer, to, from, edit) {
    const link = frame && frame.links[layer];
    if (!link) return;
    clearTimeout(cardTimer);
    const isBias = from === null;
    const value = isBias ? link.b[to] : link.w[to][from];
    const card = $("card");
    const rows = [(isBias ? "Bias " : "Weight ") + fmt(value)];
    const g = isBias ? link.bgrad : link.grad;
    if (g) rows.push("\u2202L/\u2202" + (isBias ? "b " : "w ") + fmt(isBias ? g[to] : g[to][from]));
    if (!isBias && link.update) rows.push("|\u0394w|/|w| " + fmt(link.update[to][from]));
    card.replaceChildren();
    card.append(rows.join(" \u00b7 "));
    if (edit) {
      const input = document.createElement("input");
      input.type = "number";
      input.step = "any";
      input.value = String(value);
      input.setAttribute("data-testid", "edit-value");
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          send({ type: "set_weight", layer, to, from, value: Number(input.value) });
          card.hidden = true;
        } else if (e.key === "Escape") card.hidden = true;
      });
      card.append(document.createElement("br"), "new value: ", input);
      setTimeout(() => input.focus(), 0);
    } else {
      card.append(document.createElement("br"), "click to edit");
    }
    const box = $("network").getBoundingClientRect(), r = el.getBoundingClientRect();
    card.style.left = (r.left + r.width / 2 - box.left + 8) + "px";
    card.style.top = (r.top + r.height / 2 - box.top + 8) + "px";
    card.hidden = false;
  }

  function showBig(box, l, j) {
    if (!frame) return;
    const big = $("big");
    heat(big.querySelector("canvas"), neuronValues(l, j), true);
    const area = $("network").getBoundingClientRect(), r = box.getBoundingClientRect();
    big.style.left = (r.right - area.left + 10) + "px";
    big.style.top = Math.max(0, r.top - area.top - 80) + "px";
    big.hidden = false;
  }

  function neuronValues(l, j) {
    const all = decode(frame.neurons[l]);
    const n = setup.grid * setup.grid;
    return all.subarray(j * n, (j + 1) * n);
  }

  // ---- drawing a frame -------------------------------------------------------------
  function draw() {
    const counter = $("epoch");
    counter.textContent = String(frame.epoch);
    counter.dataset.frames = String(Number(counter.dataset.frames || 0) + 1); // frames drawn
    $("train-loss").textContent = frame.train_loss === null ? "NaN" : fmt(frame.train_loss);
    $("test-loss").textContent = frame.test_loss === null ? (frame.epoch ? "NaN" : "-") : fmt(frame.test_loss);
    const acc = (v) => v === undefined || v === null ? "" : "(accuracy " + (100 * v).toFixed(1) + "%)";
    $("train-acc").textContent = acc(frame.train_accuracy);
    $("test-acc").textContent = acc(frame.test_accuracy);
    if (frame.epoch === 0) $("loss-chart").dataset.firstLoss = String(frame.train_loss);
    const last = losses.train.length ? losses.train.length - 1 : -1;
    if (frame.epoch > last || frame.epoch === 0) {
      losses.train[frame.epoch] = frame.train_loss;
      losses.test[frame.epoch] = frame.test_loss;
    }
    drawChart();
    drawOutput();
    for (const box of document.querySelectorAll(".unit.neuron")) {
      const l = Number(box.dataset.layer), j = Number(box.dataset.unit);
      heat(box.querySelector("canvas"), neuronValues(l, j));
      const u = frame.units[l] || { dead: [], saturated: [] };
      box.classList.toggle("dead", u.dead.includes(j));
      box.classList.toggle("saturated", u.saturated.includes(j));
      const dropped = frame.dropped[String(l)] || [];
      box.classList.toggle("dropped", dropped.includes(j));
    }
    drawLinks();
    drawStrip();
    drawFindings();
    showPlay();
  }

  function drawLinks() {
    const by = config.colour_by;
    let scale = 0;
    for (const link of frame.links) {
      const m = by === "gradient" ? link.grad : null;
      if (m) for (const row of m) for (const v of row) if (v !== null) scale = Math.max(scale, Math.abs(v));
    }
    for (const path of $("links").children) {
      const link = frame.links[Number(path.dataset.layer)];
      const j = Number(path.dataset.to), i = Number(path.dataset.from);
      if (!link || !link.w[j] || link.w[j].length <= i) continue; // a frame of another shape
      const w = link.w[j][i];
      let colour;
      if (w === null) colour = "#999";
      else if (by === "gradient" && link.grad) colour = rgb(diverging(scale ? link.grad[j][i] / scale : 0));
      else if (by === "update" && link.update) colour = rgb(sequential(link.update[j][i]));
      else colour = rgb(diverging(Math.max(-1, Math.min(1, w))));
      path.setAttribute("stroke", colour);
      path.setAttribute("stroke-width", String(w === null ? 1 : Math.max(0.5, Math.min(6, 0.5 + Math.abs(w) * 1.5))));
    }
  }

  function drawStrip() {
    const strip = $("grad-strip");
    strip.replaceChildren(...frame.grad_norms.map((norm, l) => {
      const d = document.createElement("div");
      const mark = frame.grad_marks[l];
      d.className = "cell" + (mark ? " " + mark : "");
      d.textContent = (l < config.layers.length ? "layer " + (l + 1) : "output") + ": " + (norm === null ? "-" : fmt(norm)) + (mark ? " " + mark : "");
      d.title = "norm of dL/dW of the Linear layer " + (l + 1) + " (the epoch's last batch)";
      return d;
    }));
  }

  // One card per finding (kind, place and severity): a card keeps its element while its
  // finding stays, and only its text follows the frames, so its button can be clicked.
  function drawFindings() {
    const findings = frame.findings;
    const panel = $("health-panel");
    const key = (f) => [f.kind, f.where, f.severity].join("|");
    const keys = JSON.stringify(findings.map(key));
    if (keys !== shownFindings) {
      shownFindings = keys;
      if (!findings.length) {
        panel.innerHTML = '<p class="healthy">No findings: the doctor sees nothing wrong.</p>';
        return;
      }
      const old = new Map([...panel.querySelectorAll(".finding")].map((d) => [d.dataset.key, d]));
      panel.replaceChildren(...findings.map((f) => old.get(key(f)) || findingCard(f, key(f))));
    }
    findings.forEach((f, i) => fillCard(panel.children[i], f));
  }

  function findingCard(f, key) {
    const d = document.createElement("div");
    d.className = "finding " + f.severity;
    d.dataset.kind = f.kind;
    d.dataset.key = key;
    for (const cls of ["head", "when", "why", "evidence", "remedy"]) {
      const part = document.createElement("div");
      part.className = cls;
      d.appendChild(part);
    }
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Apply remedy";
    b.setAttribute("data-testid", "apply-remedy");
    b.addEventListener("click", () => send({ type: "apply_remedy", kind: d.finding.kind, where: d.finding.where }));
    d.appendChild(b);
    return d;
  }

  function fillCard(d, f) {
    d.finding = f;
    const part = (cls) => d.querySelector("." + cls);
    const sev = document.createElement("span");
    sev.className = "sev";
    sev.textContent = f.severity;
    part("head").replaceChildren(sev, f.kind.replace(/_/g, " ") + " at " + (f.where || "the model"));
    part("when").textContent = "since " + (f.epoch === null || f.epoch === undefined ? "the start" : "epoch " + (f.epoch + 1)) + (f.step === null || f.step === undefined ? "" : ", step " + f.step);
    part("why").textContent = f.explanation;
    part("evidence").textContent = Object.entries(f.evidence).map(([k, v]) => k + ": " + short(v)).join("; ");
    part("remedy").textContent = f.remedies.length ? "\u2192 " + f.remedies[0] : "";
    d.querySelector("button").hidden = !f.actions.length;
  }

  function drawOutput() {
    const canvas = $("output-heatmap"), ctx = canvas.getContext("2d");
    const g = setup.grid, values = decode(frame.output);
    const classes = frame.output_class ? decode(frame.output_class, true) : null;
    const img = new ImageData(g, g);
    for (let p = 0; p < g * g; p++) {
      let v = values[p], c;
      if (classes) {
        const conf = config.discretize ? 1 : (v + 1) / 2;
        c = mix(WHITE, CLASS_COLOURS[classes[p] % CLASS_COLOURS.length], conf);
      } else {
        if (config.discretize) v = v > 0 ? 1 : -1;
        c = diverging(v);
      }
      img.data.set([c[0], c[1], c[2], 255], 4 * p);
    }
    const small = document.createElement("canvas");
    small.width = small.height = g;
    small.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
    const size = canvas.width;
    setup.points.forEach(([x1, x2], k) => {
      const train = setup.train[k] === 1;
      if (!train && !config.show_test) return;
      const label = setup.labels[k];
      const c = setup.problem === "regression" ? diverging(Math.max(-1, Math.min(1, label)))
        : setup.classes > 2 ? CLASS_COLOURS[label % CLASS_COLOURS.length] : (label === 1 ? [8, 119, 189] : [245, 147, 34]);
      ctx.beginPath();
      ctx.arc(((x1 + 6) / 12) * size, ((6 - x2) / 12) * size, 3, 0, 2 * Math.PI);
      ctx.fillStyle = rgb(c);
      ctx.fill();
      ctx.lineWidth = train ? 1 : 1.5;
      ctx.strokeStyle = train ? "#fff" : "#000";
      ctx.stroke();
    });
  }

  function drawChart() {
    const canvas = $("loss-chart"), ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    const all = [...losses.train, ...losses.test].filter((v) => v !== null && v !== undefined);
    if (!all.length) return;
    const top = Math.max(...all) || 1, n = Math.max(losses.train.length - 1, 1);
    for (const [series, colour] of [[losses.test, "#999"], [losses.train, "#222"]]) {
      ctx.beginPath();
      let started = false;
      series.forEach((v, i) => {
        if (v === null || v === undefined) return;
        const x = (i / n) * w, y = h - (v / top) * (h - 4) - 2;
        if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
      });
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.5;
      ctx.stroke();
    }
  }

  // ---- colours and numbers -----------------------------------------------------------
  function decode(b64, raw) {
    const text = atob(b64), out = raw ? new Uint8Array(text.length) : new Float32Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = raw ? text.charCodeAt(i) : text.charCodeAt(i) / 127.5 - 1;
    return out;
  }

  function heat(canvas, values, big) {
    const g = setup.grid, img = new ImageData(g, g);
    for (let p = 0; p < g * g; p++) {
      const c = diverging(values[p]);
      img.data.set([c[0], c[1], c[2], 255], 4 * p);
    }
    if (big) {
      const small = document.createElement("canvas");
      small.width = small.height = g;
      small.getContext("2d").putImageData(img, 0, 0);
      canvas.getContext("2d").drawImage(small, 0, 0, canvas.width, canvas.height);
    } else {
      canvas.getContext("2d").putImageData(img, 0, 0);
    }
  }

  function diverging(v) {
    return v < 0 ? mix(WHITE, [245, 147, 34], -v) : mix(WHITE, [8, 119, 189], v);
  }

  function sequential(ratio) {
    if (ratio === null || !(ratio > 0)) return [200, 200, 200];
    const t = Math.max(0, Math.min(1, (Math.log10(ratio) + 6) / 6)); // 1e-6 .. 1
    return mix([200, 200, 200], [198, 40, 40], t);
  }

  function mix(a, b, t) {
    return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t));
  }

  function rgb(c) {
    return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")";
  }

  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v !== "number") return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
  }

  function short(v) {
    if (Array.isArray(v)) return "[" + v.slice(0, 6).map(short).join(", ") + (v.length > 6 ? ", ..." : "") + "]";
    if (v && typeof v === "object") return "{" + Object.entries(v).slice(0, 6).map(([k, x]) => k + ": " + short(x)).join(", ") + "}";
    return fmt(v);
  }

  function round(v) {
    return Math.round(v * 1000) / 1000;
  }

  window.addEventListener("resize", () => requestAnimationFrame(buildLinks));
  setUpControls();
  connect();
})();
