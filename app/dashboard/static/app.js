"use strict";
// The bumpfit dashboard: hash routes #/ (jobs), #/jobs/ID, #/sweeps, #/sweeps/ID, #/models, #/datasets,
// #/new (submit) and #/bounds/NAME (bounds.js).
// It talks only to the JSON API it is served by; the vendored uPlot draws the charts. With API keys on it
// asks for a key, keeps it for the tab (sessionStorage) and sends it as `Authorization: Bearer` on every
// call, its event streams included (read with fetch: EventSource sends no headers).

const RELIST_MS = 2000; // how often the jobs list and a running sweep re-read the API
const TABLE_ROWS = 500; // rows of a sweep's table at a time
const CHART_JOBS = 10000; // a sweep's charts draw at most this many jobs: past that, every k-th (GET ?stride=k)
const PAGE = 50; // rows per page of the sweeps, datasets and models lists
const MAX_STREAMS = 3; // event streams the jobs list keeps open (browsers allow ~6 connections per host)
const T_MAX = 80; // app/functions.py: past exp(-80) the bump is written as 0
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const RANK = { queued: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
const KEY = "bumpfit.api-key"; // sessionStorage: this tab only, gone when it closes, never in a URL

let view = null; // {signal, onTeardown} of the page on screen
let lastSubmitted = null; // the job id the form just created, highlighted in the list

/* ---------- small helpers ---------- */

const $ = (sel, root = document) => root.querySelector(sel);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v; // through the CSSOM: the page's CSP refuses style attributes
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c != null) el.append(c instanceof Node ? c : String(c));
  return el;
}

function fmt(v) {
  if (v == null || (typeof v === "number" && Number.isNaN(v))) return "—";
  if (Array.isArray(v)) return "[" + v.map(fmt).join(", ") + "]";
  if (typeof v !== "number") return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a < 1e-3 || a >= 1e5 ? v.toExponential(2) : String(Number(v.toPrecision(5)));
}

/** A network's parameter per unit: the values when a layer has few units, else their median and range. */
const fmtUnits = (units) => (units.length <= MAX_UNIT_LINES ? fmt(units) : `median ${fmt(quantile(units, 0.5))} ` +
  `in [${fmt(quantile(units, 0))}, ${fmt(quantile(units, 1))}] (${units.length} units)`);

/** Parameters in a line; a network's threshold layers by layer and parameter (`bump_1.sigma=...`). */
const fmtParams = (p) => (p ? Object.entries(p).flatMap(([k, v]) => (v && typeof v === "object" && !Array.isArray(v)
  ? Object.entries(v).map(([param, units]) => `${k}.${param}=${fmtUnits(units)}`) : [`${k}=${fmt(v)}`])).join("  ")
  : "—");
/** A swept value: a number or word as `fmt` writes it, an object or list as JSON. */
const fmtValue = (v) => (v && typeof v === "object" ? JSON.stringify(v) : fmt(v));
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "—");
const first = (v) => (Array.isArray(v) ? v[0] : v);

function showError(message) {
  const el = $("#error");
  el.textContent = message || "";
  el.hidden = !message;
}

function report(err) {
  if (err?.name !== "AbortError" && err?.name !== "KeyNeeded") showError(err.message);
}

/** The header that carries the tab's API key, if it has one. */
function authorization() {
  const key = sessionStorage.getItem(KEY);
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** The API asked for a key (401): stop the page and show the key form, once however many calls it refused. */
function askForKey(reason) {
  if ($("#key-form")) return;
  sessionStorage.removeItem(KEY);
  view?.teardown();
  showError("");
  const input = h("input", { type: "password", name: "api-key", id: "api-key", autocomplete: "off", required: true });
  const form = h("form", { id: "key-form", class: "card key-form" },
    h("h1", {}, "API key"),
    h("p", {}, "This bumpfit needs an API key: a read key shows everything; what else it may do depends on its scope."),
    h("p", { class: "muted", id: "key-reason" }, `The API said: ${reason}`),
    h("label", {}, "key", input),
    h("p", { class: "muted" }, "The key stays in this tab only (sessionStorage) until you close it or forget it."),
    h("button", { type: "submit", class: "primary", id: "use-key" }, "Use key"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    route();
  });
  $("#view").replaceChildren(form);
  $("#forget-key").hidden = true;
  input.focus();
}

/** Call the API; a non-2xx answer throws an Error whose message is the API's own (a 401 asks for a key). */
async function api(path, options = {}) {
  let res;
  try {
    res = await fetch(path, {
      signal: view?.signal, ...options,
      headers: { "content-type": "application/json", ...authorization(), ...(options.headers || {}) },
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new Error(`cannot reach the bumpfit API: ${err.message}`);
  }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  const message = body?.error?.message ?? `${res.status} ${res.statusText}`;
  if (res.status === 401) {
    askForKey(message);
    throw Object.assign(new Error(message), { name: "KeyNeeded" });
  }
  if (!res.ok) throw new Error(message);
  return body;
}

/** Follow a job's server-sent events, read with fetch so that they carry the key (EventSource sends no
 * headers); `onJob` gets each job resource (`progress` and the last, `end`), `onEnd` runs once it stops. */
function follow(id, onJob, onEnd = () => {}) {
  const controller = new AbortController();
  view.onTeardown(() => controller.abort());
  async function read() {
    const res = await fetch(`v1/jobs/${encodeURIComponent(id)}/events`,
      { headers: authorization(), signal: controller.signal });
    if (!res.ok) return; // the next re-list says why
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      buffer += chunk.value;
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const lines = buffer.slice(0, end).split("\n");
        buffer = buffer.slice(end + 2);
        const field = (name) => lines.filter((l) => l.startsWith(`${name}:`))
          .map((l) => l.slice(name.length + 1).trim());
        if (["progress", "end"].includes(field("event")[0])) onJob(JSON.parse(field("data").join("\n")));
      }
    }
  }
  // A broken connection (TypeError) ends the stream quietly, as EventSource's onerror did.
  read().catch((err) => { if (!(err instanceof TypeError)) report(err); }).finally(onEnd);
}

async function cancelJob(id, button) {
  button.disabled = true;
  try {
    return await api(`v1/jobs/${encodeURIComponent(id)}:cancel`, { method: "POST" });
  } catch (err) {
    report(err);
    button.disabled = false;
    return null;
  }
}

async function deleteJob(id, button) {
  if (!window.confirm(`Delete job ${id} with its history and model version?`)) return;
  button.disabled = true;
  try {
    await api(`v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
    location.hash = "#/";
  } catch (err) {
    report(err);
    button.disabled = false;
  }
}

/** Ask first (when `question` is set), call the API, then `done()`; a refusal shows the API's message. */
async function act(button, question, path, options, done) {
  if (question && !window.confirm(question)) return;
  button.disabled = true;
  showError("");
  try {
    await api(path, options);
    await done();
  } catch (err) {
    report(err);
    button.disabled = false;
  }
}

/** Table cells, each with the class `c-NAME` of its column. */
const cells = (names, values) => values.map((c, i) => h("td", { class: `c-${names[i]}` }, c));

/** The labels (`stable` ...) that point at this job's model version, as "a, b" or "". */
async function labelsOf(job) {
  if (!job.model.version) return "";
  const model = await api(`v1/models/${encodeURIComponent(job.model.name)}`).catch(() => null);
  return Object.entries(model?.labels ?? {}).filter(([, v]) => v === job.model.version).map(([k]) => k).join(", ");
}

/* ---------- the layers' math (the same formulas as app/functions.py) ---------- */

function bump(x, sigma) {
  const x2 = x * x, d = sigma - x2;
  return x2 < sigma * sigma && d * T_MAX > sigma ? Math.exp(-sigma / d) : 0;
}

function gaussian(x, a, b, c) {
  const d = x - c;
  return a * Math.exp(-b * d * d);
}

function evaluate(type, x, p) {
  return type === "bump" ? bump(x, first(p.sigma)) : gaussian(x, first(p.a), first(p.b), first(p.c));
}

/* ---------- charts ---------- */

function placeholder(el, text) {
  el.replaceChildren(h("p", { class: "muted" }, text));
  el.dataset.points = "0";
}

/** Draw a uPlot chart into `el`; `series` are [{label, color, points?: true (no line)}]. */
const EPOCH_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

/** Tick labels with enough digits to tell neighbours apart; at most ~8 labels on a log axis. */
function ticks(log) {
  return (u, splits) => {
    if (log) {
      const exps = splits.map((v) => Math.log10(v)).map((e) => (Math.abs(e - Math.round(e)) < 1e-9 ? Math.round(e) : null));
      const every = Math.ceil(exps.filter((e) => e != null).length / 8);
      return exps.map((e) => (e == null || e % every ? "" : e >= -2 && e <= 3 ? String(10 ** e) : `1e${e}`));
    }
    const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
    const digits = Math.min(12, Math.max(0, -Math.floor(Math.log10(step || 1) + 1e-9)));
    const big = Math.max(...splits.map(Math.abs));
    return splits.map((v) => (big >= 1e5 || (big < 1e-3 && big > 0) ? v.toExponential(2) : v.toFixed(digits)));
  };
}

function draw(el, { xLabel, yLabel, log = false, series }, data) {
  if (!data.slice(1).some((ys) => ys.some((y) => y != null))) return placeholder(el, "Nothing to draw yet.");
  el.replaceChildren();
  const opts = {
    width: Math.max(320, el.clientWidth || 480), height: 260,
    scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
    axes: [xLabel === "epoch" ? { label: xLabel, incrs: EPOCH_STEPS } : { label: xLabel },
      { label: yLabel, size: 80, values: ticks(log) }],
    series: [{ label: xLabel }, ...series.map((s, i) => {
      const stroke = s.color || COLORS[i % COLORS.length];
      return s.points
        ? { label: s.label, stroke, paths: () => null, points: { show: true, size: 5, stroke, fill: stroke } }
        : { label: s.label, stroke, width: 2, spanGaps: true, points: { show: data[0].length < 40 } };
    })],
  };
  new uPlot(opts, data, el);
  el.dataset.points = String(data[0].length);
}

const positive = (v) => (v != null && v > 0 && Number.isFinite(v) ? v : null);

function drawLoss(el, history) {
  if (!history.length) return placeholder(el, "No finished epochs yet.");
  const series = [{ label: "loss" }];
  const data = [history.map((r) => r.epoch), history.map((r) => positive(r.loss))];
  if (history.some((r) => r.val_loss != null)) {
    series.push({ label: "val_loss" });
    data.push(history.map((r) => positive(r.val_loss)));
  }
  draw(el, { xLabel: "epoch", yLabel: "loss (log)", log: true, series }, data);
}

const MAX_UNIT_LINES = 8; // a network's threshold layer with more units is drawn as quantiles

function quantile(values, q) {
  const v = values.filter((x) => x != null).sort((a, b) => a - b);
  return v.length ? v[Math.min(v.length - 1, Math.floor(q * (v.length - 1) + 0.5))] : null;
}

/** A network's metrics per epoch, train and validation (`accuracy`, `val_accuracy`, ...). */
function drawMetrics(el, job, history) {
  const asked = job.spec.training.metrics || [];
  if (!asked.length) return placeholder(el, "No metrics asked (training.metrics).");
  if (!history.length) return placeholder(el, "No finished epochs yet.");
  const keys = asked.flatMap((m) => [m, `val_${m}`]).filter((m) => history.some((r) => r[m] != null));
  draw(el, { xLabel: "epoch", yLabel: "value", series: keys.map((label) => ({ label })) },
    [history.map((r) => r.epoch), ...keys.map((m) => history.map((r) => r[m] ?? null))]);
}

/** A network's layers in words: "dense 16 → bump → dense 1 sigmoid". */
function networkText(model) {
  return model.layers.map((l) => l.type === "dense"
    ? `dense ${l.units}${l.activation && l.activation !== "linear" ? " " + l.activation : ""}`
    : l.type === "activation" ? l.activation : l.type).join(" → ");
}

/** Whether a job's spec (or a sweep's base request) is a network: the script's one such test (app/plan.py's). */
const isNetwork = (spec) => spec?.model != null;
const layerName = (job) => (isNetwork(job.spec) ? "network" : job.spec.layer.type);

function drawParams(el, history) {
  if (!history.length) return placeholder(el, "No finished epochs yet.");
  const names = [];
  for (const [k, v] of Object.entries(history[0].params || {})) {
    if (Array.isArray(v)) v.forEach((_, i) => names.push([`${k}[${i}]`, (p) => p[k][i]]));
    else if (v && typeof v === "object") { // a network's threshold layer: {sigma: [one per unit]}
      for (const [param, units] of Object.entries(v)) {
        if (units.length <= MAX_UNIT_LINES) units.forEach((_, i) => names.push([`${k}.${param}[${i}]`, (p) => p[k][param][i]]));
        else for (const q of [0, 0.25, 0.5, 0.75, 1]) names.push([`${k}.${param} q${q * 100}`, (p) => quantile(p[k][param], q)]);
      }
    } else names.push([k, (p) => p[k]]);
  }
  const data = [history.map((r) => r.epoch), ...names.map(([, get]) => history.map((r) => get(r.params)))];
  draw(el, { xLabel: "epoch", yLabel: "value", series: names.map(([label]) => ({ label })) }, data);
}

/** The training data sample, the target function (synthetic data) and the fitted function. */
function drawFit(el, job, sample) {
  const d = job.spec.data;
  if (isNetwork(job.spec)) return placeholder(el, `A network on ${d.features} feature(s): see its metrics.`);
  if ((d.features ?? 1) > 1) return placeholder(el, "Multi-feature data: no 1-D picture of the fit.");
  const xs = sample?.x ?? [];
  const [lo, hi] = d.x_range ?? [Math.min(...xs, -1), Math.max(...xs, 1)];
  const rows = xs.map((x, i) => [x, sample.y[i]]);
  for (let i = 0; i <= 400; i++) rows.push([lo + ((hi - lo) * i) / 400, null]);
  rows.sort((a, b) => a[0] - b[0]);
  const x = rows.map((r) => r[0]);
  const series = [{ label: "data sample", color: "#9aa4b2", points: true }];
  const data = [x, rows.map((r) => r[1])];
  if (d.kind === "synthetic") {
    series.push({ label: `target ${d.function}`, color: "#2ca02c" });
    data.push(x.map((v) => evaluate(d.function, v, d.params)));
  }
  if (job.params) {
    series.push({ label: `fitted (epoch ${job.progress.epoch})`, color: "#d62728" });
    data.push(x.map((v) => evaluate(job.spec.layer.type, v, job.params)));
  }
  draw(el, { xLabel: "x", yLabel: "y", series }, data);
}

/* ---------- jobs list (#/) ---------- */

const COLUMNS = ["job", "status", "layer", "data σ", "learned σ", "progress", "device", "worker", "sweep",
  "created", ""];

function statusBadge(job) {
  const text = job.cancel_requested && job.status === "running" ? "cancelling" : job.status;
  return h("span", { class: `status ${job.status}` }, text);
}

function progressCell(job) {
  const { epoch, epochs } = job.progress;
  const pct = epochs ? Math.round((100 * epoch) / epochs) : 0;
  return [h("span", { class: "bar" }, h("span", { style: `width:${pct}%` })), `${epoch}/${epochs}`];
}

/** Fill a job row, unless the job shown there is newer (an event can beat a list response). */
function fillRow(tr, job, onChange) {
  const key = job.attempts * 1e9 + RANK[job.status] * 1e6 + job.progress.epoch;
  if (Number(tr.dataset.key ?? -1) > key) return;
  tr.dataset.key = key;
  tr.dataset.status = job.status;
  const learned = layerName(job) === "bump" ? fmt(first(job.params?.sigma))
    : isNetwork(job.spec) ? "—" : fmtParams(job.params);
  const cancel = FINISHED.has(job.status) || job.cancel_requested ? "" : h("button", {
    class: "danger cancel", onclick: async (ev) => { const j = await cancelJob(job.id, ev.target); if (j) onChange(j); },
  }, "Cancel");
  const cells = [
    h("a", { href: `#/jobs/${job.id}` }, job.id), statusBadge(job), layerName(job),
    fmt(job.spec.data.params?.sigma), learned, progressCell(job), job.device ?? "—", job.worker ?? "—",
    job.sweep_id ? h("a", { href: `#/sweeps/${job.sweep_id}` }, job.sweep_id) : "", fmtTime(job.created_at), cancel,
  ];
  const names = ["id", "status", "layer", "data-sigma", "sigma", "progress", "device", "worker", "sweep",
    "created", "actions"];
  tr.replaceChildren(...cells.map((c, i) => h("td", { class: `c-${names[i]}` }, c)));
}

async function jobsView(root) {
  const status = h("select", { id: "status-filter", onchange: () => relist() },
    ["", "queued", "running", "succeeded", "failed", "cancelled"].map((s) => h("option", { value: s }, s || "all")));
  const tbody = h("tbody");
  const updated = h("span", { class: "muted" });
  root.append(
    h("div", { class: "toolbar" }, h("h1", {}, "Jobs"), status, h("a", { href: "#/new" }, "Submit a job or sweep"), updated),
    h("table", { id: "jobs" }, h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", {}, c)))), tbody),
  );
  const streams = new Set();
  const rowOf = (id) => tbody.querySelector(`tr[data-job-id="${CSS.escape(id)}"]`);
  const onJob = (job) => { const tr = rowOf(job.id); if (tr) fillRow(tr, job, onJob); };

  async function relist() {
    try {
      const filter = status.value ? `&status=${status.value}` : "";
      const { jobs } = await api(`v1/jobs?limit=50${filter}`);
      const rows = jobs.map((job) => {
        const tr = rowOf(job.id) ?? h("tr", { "data-job-id": job.id, class: job.id === lastSubmitted ? "new" : null });
        fillRow(tr, job, onJob);
        return tr;
      });
      if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: COLUMNS.length, class: "muted" },
        "No jobs yet: submit one from the Submit page or with `bumpfit submit`.")));
      tbody.replaceChildren(...rows);
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      // Stream the unfinished jobs (running ones first); the rest update on the next re-list.
      const open = jobs.filter((j) => !FINISHED.has(j.status)).sort((a, b) => RANK[b.status] - RANK[a.status]);
      for (const j of open) {
        if (streams.size >= MAX_STREAMS) break;
        if (streams.has(j.id)) continue;
        streams.add(j.id);
        follow(j.id, onJob, () => streams.delete(j.id));
      }
    } catch (err) {
      report(err);
    }
  }
  await relist();
  const timer = setInterval(relist, RELIST_MS);
  view.onTeardown(() => clearInterval(timer));
}

/* ---------- one job (#/jobs/ID) ---------- */

function summary(job, labels = "") {
  const s = job.spec, d = s.data, t = s.training;
  const dataText = d.kind === "synthetic"
    ? `synthetic ${d.function} ${fmtParams(d.params)}, n=${d.n}, x in [${d.x_range}], noise ${d.noise_std}, seed ${d.seed}`
    : d.kind === "inline" ? `inline, n=${d.n}, ${d.features} feature(s)` : `dataset ${d.id}, n=${d.n}`;
  const items = [
    ["status", statusBadge(job)], ["progress", progressCell(job)],
    ["learned params", h("span", { id: "learned" }, fmtParams(job.params))],
    ["metrics", fmtParams(job.metrics)], s.model ? ["network", h("span", { id: "network" }, networkText(s.model))] : ["layer", JSON.stringify(s.layer)],
    ["data", d.target ? `${dataText}, target ${d.target.join(", ")} from ${d.features} feature(s)` +
      (d.normalize ? `, normalised (${d.normalize})` : "") : dataText],
    ["training", `${t.optimizer} lr=${t.learning_rate}, ${t.epochs} epochs, batch ${t.batch_size}, ${t.loss}` +
      (t.validation_split ? `, validation ${t.validation_split}` : "") + `, seed ${t.seed}`],
    ["device", `${job.device ?? "—"} (asked: ${s.device})`], ["worker", job.worker ?? "—"],
    ["attempts", job.attempts], ["model", `${job.model.name} v${job.model.version ?? "—"}`],
    ["labels", [h("span", { id: "labels" }, labels || "—"),
      job.model.version ? [" ", h("a", { href: "#/models", id: "manage-labels" }, "set or remove on Models")] : ""]],
    ["created / started / finished",
      `${fmtTime(job.created_at)} / ${fmtTime(job.started_at)} / ${fmtTime(job.finished_at)}`],
  ];
  if (job.sweep_id) items.push(["sweep", h("a", { href: `#/sweeps/${job.sweep_id}` }, job.sweep_id)]);
  if (job.warnings?.length) items.push(["warnings", JSON.stringify(job.warnings)]);
  if (job.error) items.push(["error", h("span", { class: "error-text" }, `${job.error.type}: ${job.error.message}`)]);
  return h("dl", { class: "summary" }, items.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

async function jobView(root, id) {
  const path = `v1/jobs/${encodeURIComponent(id)}`;
  let job = await api(path);
  const head = h("div", { class: "toolbar" });
  const info = h("div");
  const charts = { loss: h("div", { class: "chart", id: "chart-loss" }),
    params: h("div", { class: "chart", id: "chart-params" }), fit: h("div", { class: "chart", id: "chart-fit" }),
    metrics: h("div", { class: "chart", id: "chart-metrics" }) };
  root.append(head, info, h("div", { class: "cards" },
    h("section", { class: "card" }, h("h2", {}, "Loss per epoch (log scale)"), charts.loss),
    h("section", { class: "card" }, h("h2", {}, isNetwork(job.spec) ? "Threshold parameters per epoch (per unit, or quantiles)"
      : "Parameters per epoch"), charts.params),
    isNetwork(job.spec) ? h("section", { class: "card" }, h("h2", {}, "Metrics per epoch (train and validation)"), charts.metrics)
      : h("section", { class: "card" }, h("h2", {}, "Fitted function over a sample of the training data"), charts.fit)));
  const sample = await api(`${path}/sample?size=400`).catch((err) => { report(err); return null; });
  let history = [], shownEpoch = -1;

  async function show(next) {
    job = next;
    const cancel = FINISHED.has(job.status) || job.cancel_requested ? "" : h("button", {
      class: "danger cancel", onclick: async (ev) => { const j = await cancelJob(job.id, ev.target); if (j) queue(j); },
    }, "Cancel job");
    const remove = FINISHED.has(job.status) ? h("button", {
      class: "danger delete", onclick: (ev) => deleteJob(job.id, ev.target),
    }, "Delete job") : "";
    head.replaceChildren(h("h1", {}, `Job ${job.id}`), statusBadge(job), cancel, remove,
      h("a", { href: `${path}/plot.svg`, target: "_blank" }, "plot.svg"),
      h("a", { href: path, target: "_blank" }, "JSON"), h("a", { href: `${path}/history`, target: "_blank" }, "history"));
    info.replaceChildren(summary(job, FINISHED.has(job.status) ? await labelsOf(job) : ""));
    if (job.progress.epoch !== shownEpoch || FINISHED.has(job.status)) {
      shownEpoch = job.progress.epoch;
      history = (await api(`${path}/history`)).history;
      drawLoss(charts.loss, history);
      drawParams(charts.params, history);
      if (isNetwork(job.spec)) drawMetrics(charts.metrics, job, history);
    }
    if (!isNetwork(job.spec)) drawFit(charts.fit, job, sample);
  }
  let chain = Promise.resolve();
  const queue = (next) => { chain = chain.then(() => show(next)).catch(report); };
  queue(job);
  await chain;
  if (!FINISHED.has(job.status) && !view.signal.aborted) follow(job.id, queue);
}

/* ---------- one sweep (#/sweeps/ID) ---------- */

function targetSigma(sweep, row) {
  const base = sweep.request.base || {};
  if (isNetwork(base) || (base.layer?.type ?? "bump") !== "bump" || (base.data?.function ?? "bump") !== "bump") return null;
  return row.point["data.params.sigma"] ?? base.data?.params?.sigma ?? 0.5;
}

/** A network's score for comparing members: the first of its metrics that it reports. */
function networkScore(r) {
  const m = r.metrics || {};
  const key = ["val_accuracy", "accuracy", "val_r2", "r2", "val_loss", "loss"].find((k) => m[k] != null);
  return key ? [key, m[key]] : [null, null];
}

/** A sweep of networks: each member's score against the swept value, and its mean per value. */
function drawNetworkSweep(scatter, means, sweep) {
  const keys = Object.keys(sweep.jobs[0]?.point ?? {});
  const key = keys.find((k) => k !== "training.seed" && sweep.jobs.every((r) => typeof r.point[k] === "number"))
    ?? keys.find((k) => sweep.jobs.every((r) => typeof r.point[k] === "number"));
  const rows = sweep.jobs.map((r) => ({ x: key ? r.point[key] : null, s: networkScore(r) }))
    .filter((p) => p.x != null && p.s[1] != null).sort((a, b) => a.x - b.x);
  if (!rows.length) return placeholder(scatter, "No member has finished yet."), placeholder(means, "");
  const name = rows[0].s[0];
  draw(scatter, { xLabel: key, yLabel: name, series: [{ label: name, points: true }] },
    [rows.map((p) => p.x), rows.map((p) => p.s[1])]);
  const by = new Map();
  for (const p of rows) by.set(p.x, [...(by.get(p.x) ?? []), p.s[1]]);
  const xs = [...by.keys()];
  draw(means, { xLabel: key, yLabel: `mean ${name}`, series: [{ label: `mean ${name}` }] },
    [xs, xs.map((x) => by.get(x).reduce((a, b) => a + b, 0) / by.get(x).length)]);
}

function drawSweep(scatter, errors, sweep) {
  if (isNetwork(sweep.request.base)) return drawNetworkSweep(scatter, errors, sweep);
  const rows = sweep.jobs.map((r) => ({ r, target: targetSigma(sweep, r), learned: first(r.params?.sigma) }))
    .filter((p) => p.target != null).sort((a, b) => a.target - b.target);
  if (!rows.length) {
    const jobs = sweep.jobs.map((r, i) => [i * (sweep.stride ?? 1) + 1, positive(r.metrics?.loss)]);
    draw(scatter, { xLabel: "job", yLabel: "final loss (log)", log: true, series: [{ label: "loss", points: true }] },
      [jobs.map((j) => j[0]), jobs.map((j) => j[1])]);
    return placeholder(errors, "Not a sweep over the bump's sigma: no target to compare with.");
  }
  const x = rows.map((p) => p.target);
  draw(scatter, { xLabel: "target σ (data)", yLabel: "learned σ", series: [
    { label: "learned = target", color: "#2ca02c" }, { label: "learned σ", color: "#d62728", points: true }] },
  [x, x.slice(), rows.map((p) => p.learned ?? null)]);
  draw(errors, { xLabel: "target σ (data)", yLabel: "|learned − target| (log)", log: true,
    series: [{ label: "error", color: "#1f77b4", points: true }] },
  [x, rows.map((p) => (p.learned == null ? null : positive(Math.abs(p.learned - p.target))))]);
}

/** A sweep table's columns, [header, cell of a row]. A single layer's: its point, target and learned σ
 * and their error; a network's: each swept path's value, the threshold parameters learned, the
 * losses and the validation metrics the jobs asked for. */
function sweepColumns(sweep, rows) {
  const base = sweep.request.base || {};
  const job = ["job", (r) => h("a", { href: `#/jobs/${r.id}` }, r.id)];
  const state = [["status", statusBadge], ["progress", progressCell]];
  const problem = ["problem", (r) => (r.error ? r.error.message : "")];
  if (!isNetwork(base)) {
    const learned = (r) => first(r.params?.sigma);
    const error = (r) => {
      const target = targetSigma(sweep, r), l = learned(r);
      return target != null && l != null ? Math.abs(l - target) : null;
    };
    return [job, ["point", (r) => Object.entries(r.point).map(([k, v]) => `${k}=${v}`).join(" ")], ...state,
      ["target σ", (r) => fmt(targetSigma(sweep, r))], ["learned σ", (r) => fmt(learned(r))],
      ["error", (r) => fmt(error(r))], ["final loss", (r) => fmt(r.metrics?.loss)], problem];
  }
  const swept = sweep.request.grid ? Object.keys(sweep.request.grid)
    : [...new Set(rows.flatMap((r) => Object.keys(r.point)))];
  const asked = [...new Set([base.training?.metrics ?? [], ...rows.map((r) => r.point["training.metrics"] ?? [])].flat())];
  const metric = (name) => [name, (r) => fmt(r.metrics?.[name])];
  return [job, ...swept.map((k) => [k, (r) => fmtValue(r.point[k])]), ...state, ["learned", (r) => fmtParams(r.params)],
    metric("loss"), metric("val_loss"), ...asked.map((m) => metric(`val_${m}`)), problem];
}

async function sweepView(root, id) {
  const path = `v1/sweeps/${encodeURIComponent(id)}`;
  const head = h("div", { class: "toolbar" });
  const scatter = h("div", { class: "chart", id: "chart-sweep" });
  const errors = h("div", { class: "chart", id: "chart-sweep-error" });
  const thead = h("thead"), tbody = h("tbody");
  const tableNote = h("p", { class: "muted", id: "sweep-table-note" });
  const titles = [h("h2", { id: "sweep-title-1" }, "Learned against target σ"), h("h2", {}, "Error per job")];
  root.append(head, h("div", { class: "cards" },
    h("section", { class: "card" }, titles[0], scatter),
    h("section", { class: "card" }, titles[1], errors)),
  h("h2", { style: "margin-top:16px" }, "Jobs"), tableNote,
  h("table", { id: "sweep-jobs" }, thead, tbody));
  let timer = null, shown = TABLE_ROWS, rows = [], token = null, total = 0;
  const more = h("button", { id: "more-jobs", hidden: true, onclick: () => showMore().catch(report) }, "More jobs");
  root.append(h("div", { class: "toolbar more" }, more));

  /** The table: the first `shown` rows read so far; "More jobs" while the sweep has more. */
  function renderTable(sweep, stride) {
    tableNote.textContent = total > shown ? `The first ${Math.min(shown, rows.length)} of ${total} jobs.` : "";
    if (stride > 1) tableNote.textContent += ` The charts show one job in ${stride}, spread from the first to the last.`;
    else if (total > shown) tableNote.textContent += " The charts show all.";
    more.hidden = !(rows.length > shown || token);
    const columns = sweepColumns(sweep, rows);
    thead.replaceChildren(h("tr", {}, columns.map(([name]) => h("th", {}, name))));
    tbody.replaceChildren(...rows.slice(0, shown).map((r) => h("tr", { "data-job-id": r.id, "data-status": r.status },
      columns.map(([, cell]) => h("td", {}, cell(r))))));
  }
  let last = null, lastStride = 1;
  /** The next TABLE_ROWS rows: from the rows read, else the sweep's next page (GET is paged by 10,000). */
  async function showMore() {
    shown += TABLE_ROWS;
    if (rows.length < shown && token) {
      const page = await api(`${path}?page_token=${encodeURIComponent(token)}`);
      rows = rows.concat(page.jobs);
      token = page.next_page_token;
    }
    renderTable(last, lastStride);
  }

  async function load() {
    const sweep = await api(path);
    last = sweep;
    const counts = Object.entries(sweep.counts).map(([k, v]) => `${v} ${k}`).join(", ");
    const unfinished = sweep.jobs.filter((r) => !FINISHED.has(r.status));
    const cancelAll = unfinished.length ? h("button", { class: "danger cancel", onclick: async (ev) => {
      ev.target.disabled = true;
      for (const r of unfinished) await api(`v1/jobs/${r.id}:cancel`, { method: "POST" }).catch(() => null);
      load().catch(report);
    } }, `Cancel ${unfinished.length} unfinished`) : "";
    total = Object.values(sweep.counts).reduce((a, b) => a + b, 0);
    head.replaceChildren(h("h1", {}, `Sweep ${sweep.id}`), h("span", { class: "muted", id: "sweep-counts" },
      `${total} jobs: ${counts}`), cancelAll);
    // The table lists TABLE_ROWS at a time; the charts draw every job, or past CHART_JOBS every k-th.
    rows = sweep.jobs.concat(rows.slice(sweep.jobs.length));
    if (token === null || rows.length <= sweep.jobs.length) token = sweep.next_page_token;
    lastStride = total > CHART_JOBS ? Math.ceil(total / CHART_JOBS) : 1;
    renderTable(sweep, lastStride);
    if (isNetwork(sweep.request.base)) {
      titles[0].textContent = "Each network's score against the swept value";
      titles[1].textContent = "Mean score per value";
    }
    const sample = lastStride > 1 ? (await api(`${path}?stride=${lastStride}&limit=${CHART_JOBS}`)).jobs : sweep.jobs;
    drawSweep(scatter, errors, { ...sweep, jobs: sample, stride: lastStride });
    root.dataset.done = String(sweep.done);
    if (sweep.done && timer) clearInterval(timer);
  }
  await load();
  if (root.dataset.done !== "true") {
    timer = setInterval(() => load().catch(report), RELIST_MS);
    view.onTeardown(() => clearInterval(timer));
  }
}

/* ---------- lists read page by page: sweeps (#/sweeps) and datasets (#/datasets) ---------- */

/** A table of `GET path` pages (`{[key]: [...], next_page_token}`), with a "More" button while pages remain. */
async function pagedTable(root, { id, path, key, columns, row, empty }) {
  const tbody = h("tbody");
  const more = h("button", { id: "more", hidden: true, onclick: () => load().catch(report) }, "More");
  let token = null;
  async function load() {
    more.disabled = true;
    try {
      const next = token ? `&page_token=${encodeURIComponent(token)}` : "";
      const page = await api(`${path}?limit=${PAGE}${next}`);
      tbody.append(...page[key].map(row));
      if (!tbody.rows.length) tbody.append(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty)));
      token = page.next_page_token;
      more.hidden = !token;
    } finally {
      more.disabled = false;
    }
  }
  root.append(h("table", { id }, h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c === "actions" ? "" : c)))),
    tbody), h("div", { class: "toolbar more" }, more));
  await load();
}

const SWEEP_COLUMNS = ["sweep", "jobs", "counts", "done", "created"];

function sweepRow(s) {
  const counts = Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(", ");
  return h("tr", { "data-sweep-id": s.id, "data-done": String(s.done) }, cells(SWEEP_COLUMNS, [
    h("a", { href: `#/sweeps/${s.id}` }, s.id), s.job_count, counts || "—", s.done ? "yes" : "no", fmtTime(s.created_at)]));
}

async function sweepsView(root) {
  root.append(h("div", { class: "toolbar" }, h("h1", {}, "Sweeps"), h("a", { href: "#/new" }, "Submit a sweep")));
  await pagedTable(root, { id: "sweeps", path: "v1/sweeps", key: "sweeps", columns: SWEEP_COLUMNS, row: sweepRow,
    empty: "No sweeps yet: submit one from the Submit page or with `bumpfit sweep`." });
}

const DATASET_COLUMNS = ["dataset", "filename", "n", "features", "sha256", "kind", "created", "actions"];

function datasetRow(ds) {
  const tr = h("tr", { "data-dataset-id": ds.id });
  const remove = h("button", { class: "danger delete", onclick: (ev) => act(ev.currentTarget,
    `Delete dataset ${ds.id} (${ds.filename})? Finished jobs that trained on it keep their results.`,
    `v1/datasets/${encodeURIComponent(ds.id)}`, { method: "DELETE" }, () => tr.remove()) }, "Delete");
  tr.append(...cells(DATASET_COLUMNS, [ds.id, ds.filename, ds.n, ds.features,
    h("span", { title: ds.sha256 }, ds.sha256.slice(0, 12)),
    ds.inline ? h("span", { title: "deleted with the last job that uses it" }, "inline data") : "upload",
    fmtTime(ds.created_at), remove]));
  return tr;
}

async function datasetsView(root) {
  root.append(h("div", { class: "toolbar" }, h("h1", {}, "Datasets"),
    h("span", { class: "muted" }, "upload with POST /v1/datasets (multipart field file: CSV or .npz)")));
  await pagedTable(root, { id: "datasets", path: "v1/datasets", key: "datasets", columns: DATASET_COLUMNS,
    row: datasetRow, empty: "No datasets yet." });
}

/* ---------- models, their versions and labels (#/models) ---------- */

const VERSION_COLUMNS = ["version", "job", "layer", "params", "loss", "labels", "set-label", "actions"];

function versionRow(model, v, rerender) {
  const base = `v1/models/${encodeURIComponent(model.name)}`;
  const labels = Object.entries(model.labels).filter(([, n]) => n === v.version).map(([label]) => label);
  const tag = (label) => h("span", { class: "model-label", "data-label": label }, label, h("button", {
    class: "unlabel", title: `remove label ${label}`, "aria-label": `remove label ${label}`,
    onclick: (ev) => act(ev.currentTarget, `Remove label ${label} from model ${model.name}?`,
      `${base}/labels/${encodeURIComponent(label)}`, { method: "DELETE" }, rerender),
  }, "×"));
  const input = h("input", { name: "label", placeholder: "label", required: true, autocomplete: "off" });
  const set = h("button", { type: "submit", class: "set-label" }, "Set label");
  const form = h("form", { class: "set-label", onsubmit: (ev) => {
    ev.preventDefault();
    act(set, null, `${base}/labels/${encodeURIComponent(input.value)}`,
      { method: "PUT", body: JSON.stringify({ version: v.version }) }, rerender);
  } }, input, set);
  const remove = h("button", { class: "danger delete-version", onclick: (ev) => act(ev.currentTarget,
    `Delete version ${v.version} of model ${model.name} and its artifact? Its job stays.`,
    `${base}/versions/${v.version}`, { method: "DELETE" }, rerender) }, "Delete version");
  return h("tr", { "data-version": v.version }, cells(VERSION_COLUMNS, [
    `v${v.version}`, h("a", { href: `#/jobs/${v.job_id}` }, v.job_id), v.layer, fmtParams(v.params),
    fmt(v.metrics?.loss), labels.map(tag), form, remove]));
}

/** Where clients reach a model: TensorFlow Serving's REST API, the Open Inference Protocol (V2), and
 * the latest version as a .keras file or a SavedModel. */
function endpoints(model) {
  const here = location.href.split("#")[0];
  const name = encodeURIComponent(model.name);
  const url = (path) => new URL(path, here).href;
  const latest = `v1/models/${name}/versions/${model.latest_version}/artifact`;
  const row = (what, method, path) => h("tr", { "data-endpoint": what }, h("th", {}, what),
    h("td", {}, h("code", {}, `${method} ${url(path)}`)));
  return h("table", { class: "endpoints" }, h("tbody", {},
    row("TF Serving", "POST", `v1/models/${name}:predict`),
    row("V2 (KServe, Triton)", "POST", `v2/models/${name}/infer`),
    row("V2 metadata", "GET", `v2/models/${name}`),
    row("SavedModel", "GET", `${latest}?format=saved_model`),
    row(".keras", "GET", latest)));
}

async function modelsView(root) {
  const list = h("div", { id: "models" });
  const more = h("button", { id: "more", hidden: true, onclick: () => load().catch(report) }, "More");
  root.append(h("div", { class: "toolbar" }, h("h1", {}, "Models"),
    h("span", { class: "muted" }, "a model appears when a job with that model_name succeeds; each job is a version")),
  list, h("div", { class: "toolbar more" }, more));
  let token = null;
  const section = (m) => h("section", { class: "card model", "data-model": m.name },
    h("h2", {}, m.name, h("a", { href: `#/bounds/${encodeURIComponent(m.name)}`, class: "bounds-link" },
      "what it can output")), endpoints(m), h("table", { class: "versions" },
      h("thead", {}, h("tr", {}, VERSION_COLUMNS.map((c) => h("th", {}, c === "actions" ? "" : c.replace("-", " "))))),
      h("tbody", {}, m.versions.map((v) => versionRow(m, v, render)))));
  const empty = () => h("p", { class: "muted" }, "No models yet: a model appears when a job succeeds.");
  const page = (after) => api(`v1/models?limit=${PAGE}${after ? `&page_token=${encodeURIComponent(after)}` : ""}`);
  /** The next page of models (`GET /v1/models` is paged by name), appended below the ones shown. */
  async function load() {
    more.disabled = true;
    try {
      const next = await page(token);
      list.append(...next.models.map(section));
      token = next.next_page_token;
      more.hidden = !token;
      if (!list.children.length) list.append(empty());
    } finally {
      more.disabled = false;
    }
  }
  /** After a change to a version: the pages read so far, read again, then shown in one swap (the
   * list never stands empty in between). */
  async function render() {
    const shown = Math.max(list.querySelectorAll("section.model").length, 1);
    const sections = [];
    let after = null;
    do {
      const next = await page(after);
      sections.push(...next.models.map(section));
      after = next.next_page_token;
    } while (after && sections.length < shown);
    list.replaceChildren(...(sections.length ? sections : [empty()]));
    token = after;
    more.hidden = !token;
  }
  await load();
}

/* ---------- submit a job or a sweep (#/new) ---------- */

function field(name, label, value, { options, hint, wide } = {}) {
  const input = options
    ? h("select", { name }, options.map((o) => h("option", { value: o, selected: o === value }, o)))
    : h("input", { name, value, placeholder: hint ?? "", autocomplete: "off" });
  return h("label", { class: wide ? "wide" : null, "data-field": name }, label, input);
}

/** The text of a field as JSON: "" is null, a number is a number, anything else goes as typed. */
function valueOf(form, name) {
  const raw = form.elements[name].value.trim();
  if (raw === "") return null;
  const n = Number(raw);
  return Number.isFinite(n) && form.elements[name].tagName === "INPUT" ? n : raw;
}

function dropNulls(obj) {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v != null));
}

function jobRequest(form) {
  const v = (name) => valueOf(form, name);
  const layerType = v("layer.type"), fn = v("data.function");
  const layer = layerType === "bump" ? { type: "bump", sigma_init: v("layer.sigma_init") }
    : dropNulls({ type: "gaussian", a_init: v("layer.a_init"), b_init: v("layer.b_init"), c_init: v("layer.c_init") });
  const params = fn === "bump" ? dropNulls({ sigma: v("data.params.sigma") })
    : dropNulls({ a: v("data.params.a"), b: v("data.params.b"), c: v("data.params.c") });
  return dropNulls({
    layer,
    data: dropNulls({ kind: "synthetic", function: fn, params, n: v("data.n"),
      x_range: [v("data.x_min"), v("data.x_max")], noise_std: v("data.noise_std"), seed: v("data.seed") }),
    training: dropNulls({ optimizer: v("training.optimizer"), learning_rate: v("training.learning_rate"),
      epochs: v("training.epochs"), batch_size: v("training.batch_size"), loss: v("training.loss"),
      validation_split: v("training.validation_split"), seed: v("training.seed") }),
    device: v("device"), model_name: v("model_name"),
  });
}

function sweepRequest(form) {
  const raw = form.elements["sweep.sigmas"].value.split(/[\s,]+/).filter(Boolean);
  if (!raw.length) throw new Error("sweep: enter the data sigmas to sweep over, such as 0.1, 0.2, 0.3");
  const sigmas = raw.map((s) => (Number.isFinite(Number(s)) ? Number(s) : s));
  return { base: jobRequest(form), grid: { "data.params.sigma": sigmas } };
}

function submitView(root) {
  const preview = h("pre", { class: "card", id: "request-preview" });
  const form = h("form", { class: "submit", id: "submit-form" },
    h("fieldset", {}, h("legend", {}, "Layer"),
      field("layer.type", "type", "bump", { options: ["bump", "gaussian"] }),
      field("layer.sigma_init", "sigma_init (bump)", "", { hint: "random in [0.01, 0.1)" }),
      field("layer.a_init", "a_init (gaussian)", "1"), field("layer.b_init", "b_init (gaussian)", "1"),
      field("layer.c_init", "c_init (gaussian)", "0")),
    h("fieldset", {}, h("legend", {}, "Data (synthetic)"),
      field("data.function", "function", "bump", { options: ["bump", "gaussian"] }),
      field("data.params.sigma", "sigma (bump)", "0.5"), field("data.params.a", "a (gaussian)", "1"),
      field("data.params.b", "b (gaussian)", "1"), field("data.params.c", "c (gaussian)", "0"),
      field("data.n", "n (samples)", "100000"), field("data.x_min", "x min", "-1"), field("data.x_max", "x max", "1"),
      field("data.noise_std", "noise_std", "0"), field("data.seed", "seed", "", { hint: "random" })),
    h("fieldset", {}, h("legend", {}, "Training"),
      field("training.optimizer", "optimizer", "adam", { options: ["adam", "sgd", "rmsprop"] }),
      field("training.learning_rate", "learning_rate", "0.001"), field("training.epochs", "epochs", "5"),
      field("training.batch_size", "batch_size", "32"),
      field("training.loss", "loss", "mse", { options: ["mse", "mae", "huber"] }),
      field("training.validation_split", "validation_split", "0"),
      field("training.seed", "seed", "", { hint: "random" }),
      field("device", "device", "auto", { options: ["auto", "cpu", "gpu"] }),
      field("model_name", "model_name", "", { hint: "default: the job id" })),
    h("fieldset", {}, h("legend", {}, "Sweep (optional)"),
      field("sweep.sigmas", "data sigmas, one job each", "", { hint: "0.1, 0.2, 0.3", wide: true })),
    h("div", { class: "toolbar" },
      h("button", { type: "submit", class: "primary", id: "submit-job" }, "Submit job"),
      h("button", { type: "button", id: "submit-sweep" }, "Submit sweep")));
  const sync = () => {
    const layer = form.elements["layer.type"].value, fn = form.elements["data.function"].value;
    for (const label of form.querySelectorAll("label[data-field]")) {
      const name = label.dataset.field;
      if (name.startsWith("layer.") && name !== "layer.type") label.hidden = (name === "layer.sigma_init") !== (layer === "bump");
      if (name.startsWith("data.params.")) label.hidden = (name === "data.params.sigma") !== (fn === "bump");
    }
    const sigmas = form.elements["sweep.sigmas"].value.trim();
    preview.textContent = JSON.stringify(sigmas ? (() => { try { return sweepRequest(form); } catch { return {}; } })()
      : jobRequest(form), null, 2);
  };
  form.addEventListener("input", sync);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("");
    try {
      const job = await api("v1/jobs", { method: "POST", body: JSON.stringify(jobRequest(form)) });
      lastSubmitted = job.id;
      location.hash = "#/";
    } catch (err) { report(err); }
  });
  $("#submit-sweep", form).addEventListener("click", async () => {
    showError("");
    try {
      const sweep = await api("v1/sweeps", { method: "POST", body: JSON.stringify(sweepRequest(form)) });
      location.hash = `#/sweeps/${sweep.id}`;
    } catch (err) { report(err); }
  });
  root.append(h("h1", {}, "Submit a job or a sweep"), form, h("h2", { style: "margin-top:16px" }, "Request body"), preview);
  sync();
}

/* ---------- routing ---------- */

function route() {
  if (view) view.teardown();
  const controller = new AbortController();
  const stops = [];
  view = {
    signal: controller.signal,
    onTeardown: (fn) => stops.push(fn),
    teardown: () => { controller.abort(); stops.splice(0).forEach((fn) => fn()); },
  };
  showError("");
  $("#forget-key").hidden = !sessionStorage.getItem(KEY);
  const root = $("#view");
  root.replaceChildren();
  delete root.dataset.done;
  const [kind, id] = location.hash.replace(/^#\/?/, "").split("/");
  const pages = { sweeps: sweepsView, models: modelsView, datasets: datasetsView, new: submitView };
  const page = kind === "jobs" && id ? jobView(root, decodeURIComponent(id))
    : kind === "sweeps" && id ? sweepView(root, decodeURIComponent(id))
      : kind === "bounds" && id ? boundsView(root, decodeURIComponent(id)) // bounds.js
        : (Object.hasOwn(pages, kind) ? pages[kind] : jobsView)(root);
  Promise.resolve(page).catch(report);
}

window.addEventListener("hashchange", route);
$("#forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY); route(); });
route();
