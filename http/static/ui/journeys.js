// Journeys: each designed journey, any of its versions, its milestones with their compensation
// handlers, timeouts and retry policies.

import { api } from "./api.js";
import { h, put, time } from "./dom.js";

export function policy(p) {
  if (!p) return "-";
  const parts = [`${p.max_attempts} attempt(s)`];
  if (p.max_attempts > 1) parts.push(`${p.initial_delay_s}s ×${p.backoff} up to ${p.max_delay_s}s`);
  if (p.jitter) parts.push(`jitter ${p.jitter}`);
  if (p.handler_timeout_s) parts.push(`handler timeout ${p.handler_timeout_s}s`);
  return parts.join(", ");
}

function journeyCard(j, latest) {
  const body = h("div", { class: "journey-body" });
  const versions = h("select", { id: `v-${j.journey_id}`, "aria-label": `version of ${j.journey_id}` },
    Array.from({ length: latest }, (_, i) => latest - i).map((v) => h("option", { value: String(v), selected: v === j.version }, `v${v}`)));
  versions.addEventListener("change", async () => {
    try { draw(await api(`/v1/journeys/${encodeURIComponent(j.journey_id)}?version=${versions.value}`)); }
    catch (err) { put(body, h("p", { class: "error" }, err.message)); }
  });
  function draw(v) {
    const facts = [
      ["type", v.journey_type], ["created", time(v.created_at)],
      ["deadline", v.deadline_s ? `${v.deadline_s}s` : "-"],
      ["compensation deadline", v.compensation_deadline_s ? `${v.compensation_deadline_s}s` : "-"],
    ];
    if (v.missing_handlers && v.missing_handlers.length) facts.push(["missing handlers", v.missing_handlers.join(", ")]);
    put(body,
      h("dl", { class: "facts" }, facts.map(([k, val]) => [h("dt", {}, k), h("dd", {}, val)])),
      h("div", { class: "table-wrap" }, h("table", { class: "milestones", dataset: { journey: v.journey_id, version: v.version } },
        h("thead", {}, h("tr", {}, ["#", "Milestone", "Compensation handler", "Timeout", "Compensation retry", "Forward retry"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, v.milestones.map((m, i) => h("tr", { dataset: { milestone: m.id } },
          h("td", { class: "num" }, String(i + 1)), h("td", { class: "mono" }, m.id),
          h("td", { class: "mono" }, m.compensation_handler || "— (nothing to undo)"),
          h("td", {}, m.timeout_s ? `${m.timeout_s}s` : "-"),
          h("td", {}, policy(m.retry)), h("td", {}, policy(m.forward_retry))))))));
  }
  draw(j);
  return h("section", { class: "card journey", dataset: { journey: j.journey_id } },
    h("div", { class: "card-head" }, h("h2", { class: "mono" }, j.journey_id), h("label", {}, "Version ", versions)), body);
}

export function render(main) {
  const list = h("div", { id: "journeys" }, h("p", { class: "muted" }, "Loading…"));
  put(main, h("div", { class: "page-head" }, h("h1", {}, "Journeys")), list);
  api("/v1/journeys").then(({ journeys }) => {
    put(list, journeys.length ? journeys.map((j) => journeyCard(j, j.version)) : h("p", { class: "muted" }, "No journey has been designed yet."));
  }).catch((err) => put(list, h("p", { class: "error" }, err.message)));
}
