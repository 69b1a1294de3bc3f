"use strict";
// The gankit sampling page: asks the local server for samples, walks and downloads.
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { info: null, seed: 0, num: 36, label: "", labels: null, a: 0, b: 1, next: "a",
                  walkTimer: null, walkSeq: 0 };

  function pending(delta) {
    const n = Number(document.body.dataset.pending) + delta;
    document.body.dataset.pending = String(n);
    $("new").disabled = n > 0;
  }

  async function api(path, params) {
    const url = path + "?" + new URLSearchParams(params).toString();
    pending(1);
    try {
      const response = await fetch(url);
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || response.statusText);
      $("error").hidden = true;
      return body;
    } catch (e) {
      $("error").textContent = String(e.message || e);
      $("error").hidden = false;
      throw e;
    } finally {
      pending(-1);
    }
  }

  function image(src, cls) {
    const img = document.createElement("img");
    img.src = src;
    if (cls) img.className = cls;
    return img;
  }

  function shown(v) {  // a cell as text: numbers to 6 significant digits (downloads keep all)
    if (v === null) return "";
    if (typeof v === "number" && !Number.isInteger(v)) return String(Number(v.toPrecision(6)));
    return String(v);
  }

  function table(columns, rows, withIndex) {
    const t = document.createElement("table");
    const head = t.createTHead().insertRow();
    for (const c of columns) head.appendChild(document.createElement("th")).textContent = c;
    const body = t.createTBody();
    rows.forEach((row, i) => {
      const tr = body.insertRow();
      if (withIndex) tr.dataset.index = String(i);
      for (const v of row) tr.insertCell().textContent = shown(v);
    });
    return t;
  }

  function sampleParams() {
    return { num: state.num, seed: state.seed, label: state.label };
  }

  function updateDownloads() {
    for (const fmt of ["png", "npz", "csv"]) {
      const a = $("download-" + fmt);
      a.hidden = !state.info.downloads.includes(fmt);
      a.href = "/download?" + new URLSearchParams({ format: fmt, ...sampleParams() }).toString();
    }
  }

  function markPicks() {
    const items = document.querySelectorAll("#grid [data-index]");
    items.forEach((el) => {
      const i = Number(el.dataset.index);
      el.classList.toggle("a", i === state.a);
      el.classList.toggle("b", i === state.b);
    });
    for (const which of ["a", "b"]) {
      const box = $("pick-" + which);
      box.replaceChildren();
      const el = document.querySelector(`#grid [data-index="${state[which]}"]`);
      if (!el) continue;
      if (el.tagName === "IMG") box.appendChild(image(el.src));
      else box.appendChild(table(state.columns, [state.rows[state[which]]], false));
    }
  }

  function pick(index) {
    if (state.next === "a") { state.a = index; state.next = "b"; }
    else { state.b = index; state.next = "a"; }
    markPicks();
    walk();
  }

  function renderGrid(body) {
    const grid = $("grid");
    grid.replaceChildren();
    state.labels = body.labels;
    const kind = state.info.kind;
    if (kind === "images") {
      const cols = body.columns || Math.ceil(Math.sqrt(body.images.length));
      grid.style.gridTemplateColumns = `repeat(${cols}, max-content)`;
      body.images.forEach((src, i) => {
        const img = image(src, "sample");
        img.dataset.index = String(i);
        if (body.labels) img.title = state.info.labels[body.labels[i]];
        img.addEventListener("click", () => pick(i));
        grid.appendChild(img);
      });
    } else if (body.plot) {  // points and series: one plot of them all
      grid.appendChild(image(body.plot, "plot"));
    } else {
      state.columns = body.columns;
      state.rows = body.rows;
      const t = table(body.columns, body.rows, true);
      t.id = "rows";
      t.querySelectorAll("tr[data-index]").forEach((tr) =>
        tr.addEventListener("click", () => pick(Number(tr.dataset.index))));
      grid.appendChild(t);
    }
    document.body.dataset.seed = String(state.seed);
  }

  async function newSamples(seed) {
    const buf = new Uint32Array(1);
    crypto.getRandomValues(buf);
    state.seed = seed === undefined ? buf[0] >>> 1 : seed;
    state.num = Math.max(1, Math.min(Number($("num").value) || 1, state.info.max_samples));
    $("num").value = String(state.num);
    state.label = $("label").value;
    state.a = 0;
    state.b = Math.min(1, state.num - 1);
    state.next = "a";
    updateDownloads();
    const body = await api("/api/samples", sampleParams());
    renderGrid(body);
    markPicks();
    await walk();
  }

  async function walk() {
    const seq = ++state.walkSeq;
    const t = Number($("walk").value) / 100;
    const params = { a_seed: state.seed, a_num: state.num, a_index: state.a,
                     b_seed: state.seed, b_num: state.num, b_index: state.b, t: t,
                     label: state.label };
    const body = await api("/api/walk", params);
    if (seq !== state.walkSeq) return; // a newer position was asked for meanwhile
    const view = $("walk-view");
    view.replaceChildren();
    if (body.image) view.appendChild(image(body.image, "walked"));
    else if (body.plot) view.appendChild(image(body.plot, "walked"));
    else view.appendChild(table(body.columns, body.rows, false));
    view.dataset.t = String(t);
    const name = body.label === null ? "" : state.info.labels[body.label];
    const what = body.label === null ? "" : state.label === "" ?
      ` with the condition of A (${name})` : ` with the condition ${name}`;
    $("walk-note").textContent = `${Math.round(t * 100)}% of the way from A to B${what}`;
  }

  async function start() {
    const info = await api("/api/info", {});
    state.info = info;
    $("run").textContent = `${info.run} · step ${info.step}`;
    const shape = info.kind === "tables" ? "rows" : `${info.kind} (${info.shape.join("×")})`;
    $("about").textContent = `${info.family} generator of ${shape}; ` +
      `at most ${info.max_samples} samples a request`;
    $("num").value = String(info.num);
    $("num").max = String(info.max_samples);
    if (info.labels) {
      for (const [i, name] of info.labels.entries()) {
        const o = document.createElement("option");
        o.value = String(i);
        o.textContent = name;
        $("label").appendChild(o);
      }
      $("label-box").hidden = false;
    }
    if (info.kind === "points") {
      $("pick-hint").textContent = "A and B are the first two points (green); the walk's " +
        "point is red.";
      $("grid-title").textContent = "Points";
      document.querySelector(".ends").hidden = true;
    } else if (info.kind === "sequences") {
      $("pick-hint").textContent = "A and B are the first two series; the walk draws the " +
        "series between them.";
      $("grid-title").textContent = "Series";
      document.querySelector(".ends").hidden = true;
    } else if (info.kind === "tables") {
      $("pick-hint").textContent = "Click a row to make it A, another to make it B.";
      $("grid-title").textContent = "Rows";
    }
    $("new").addEventListener("click", () => newSamples().catch(() => {}));
    $("label").addEventListener("change", () => newSamples().catch(() => {}));
    $("walk").addEventListener("input", () => {
      clearTimeout(state.walkTimer);
      state.walkTimer = setTimeout(() => walk().catch(() => {}), 30);
    });
    const given = new URLSearchParams(location.search).get("seed");  // /?seed=N: that grid
    await newSamples(given !== null && /^[0-9]{1,15}$/.test(given) ? Number(given) : undefined);
  }

  document.addEventListener("DOMContentLoaded", () => start().catch(() => {}));
})();
