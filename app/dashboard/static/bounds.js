"use strict";
// The bounds view, #/bounds/NAME: each output's guaranteed range (light bar) and the range inputs were
// found to reach (dark bar) over a box of inputs the user edits (POST /v1/models/NAME:bounds,
// docs/bounds.md). Loaded before app.js, whose helpers (h, api, fmt, report) it calls once routed.

const BOUND_METHODS = ["auto", "interval", "linear", "split", "exact"];

/** The names of a model's features, from its latest version's job (x1.. when it has none). */
async function featureNames(name, width) {
  const model = await api(`v1/models/${encodeURIComponent(name)}`);
  const latest = model.versions[model.versions.length - 1];
  const job = await api(`v1/jobs/${encodeURIComponent(latest.job_id)}`);
  const columns = job.spec?.data?.columns;
  return Array.isArray(columns) && columns.length === width ? columns : Array.from({ length: width }, (_, i) => `x${i + 1}`);
}

/** One output's row: its number, the bars on a shared scale [lo, hi], the four values. */
function boundsRow(j, out, lo, hi) {
  const at = (v) => `${(100 * (v - lo)) / (hi - lo || 1)}%`;
  const span = (a, b, cls) => h("span", { class: cls, style: `left:${at(a)};width:calc(${at(b)} - ${at(a)})` });
  const sure = out.lower != null && out.upper != null;
  return h("div", { class: "bounds-output", "data-output": j },
    h("span", { class: "bounds-name" }, `output ${j}`),
    h("div", { class: "bounds-track" }, sure ? span(out.lower, out.upper, "guaranteed") : null,
      span(out.reached.min, out.reached.max, "reached")),
    h("span", { class: "bounds-values" }, `[${fmt(out.lower)}, ${fmt(out.upper)}] sure; `,
      `[${fmt(out.reached.min)}, ${fmt(out.reached.max)}] reached; gap ${fmt(out.gap)}`));
}

async function boundsView(root, name) {
  const path = `v1/models/${encodeURIComponent(name)}:bounds`;
  const form = h("form", { id: "bounds-form", class: "submit" });
  const chart = h("div", { id: "bounds-chart" });
  const status = h("p", { class: "muted", id: "bounds-status" }, "bounding over the training split's box…");
  root.append(h("div", { class: "toolbar" }, h("h1", {}, `What ${name} can output`),
    h("a", { href: "#/models" }, "all models")),
  h("section", { class: "card" }, h("h2", {}, "Box of inputs"), form, status),
  h("section", { class: "card" }, h("h2", {}, "Each output: guaranteed range (light) and reached range (dark)"),
    chart));

  function draw(answer, names) {
    form.replaceChildren(h("fieldset", {}, h("legend", {}, "each input between"),
      answer.box.lower.map((lo, i) => h("label", { "data-feature": names[i] }, names[i],
        h("input", { name: `lower-${i}`, value: String(lo), autocomplete: "off" }),
        h("input", { name: `upper-${i}`, value: String(answer.box.upper[i]), autocomplete: "off" })))),
    h("label", {}, "method", h("select", { name: "method" },
      BOUND_METHODS.map((m) => h("option", { value: m, selected: m === form.dataset.method }, m)))),
    h("button", { type: "submit", class: "primary", id: "bound" }, "Bound"));
    const values = answer.outputs.flatMap((o) => [o.lower, o.upper, o.reached.min, o.reached.max]).filter((v) => v != null);
    const lo = Math.min(...values), hi = Math.max(...values);
    chart.replaceChildren(...answer.outputs.map((o, j) => boundsRow(j, o, lo, hi)));
    const how = answer.exact ? "exact" : answer.complete ? "complete" : "budget spent: looser than it could be";
    status.textContent = `method ${answer.method} (${how})`;
    root.dataset.done = "1";
  }

  let names = null;
  async function ask(body) {
    const button = $("#bound", form);
    if (button) button.disabled = true;
    try {
      const answer = await api(path, { method: "POST", body: JSON.stringify(body) });
      names ??= await featureNames(name, answer.box.lower.length);
      draw(answer, names);
    } finally {
      if (button) button.disabled = false;
    }
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const read = (end) => [...form.querySelectorAll(`input[name^='${end}-']`)].map((el) => Number(el.value));
    form.dataset.method = form.elements.method.value;
    ask({ box: { lower: read("lower"), upper: read("upper") }, method: form.dataset.method }).catch(report);
  });
  await ask({});
}
