// Overview: sagas by state, parked sagas waiting, rollbacks of the last hour (p50/p99), Grafana.

import { api } from "./api.js";
import { h, put, route, seconds } from "./dom.js";
import { liveIndicator, onAnyChange } from "./live.js";

const STATES = [
  ["IN_PROGRESS", "▶", "In progress"], ["COMPENSATING", "↶", "Compensating"],
  ["COMPLETED", "✓", "Completed"], ["FAILED", "✗", "Failed"],
];

function tile(label, value, icon, cls, href, id) {
  const body = [h("span", { class: "icon", "aria-hidden": "true" }, icon), h("span", { class: "value", id }, String(value)), h("span", { class: "label" }, label)];
  return href ? h("a", { class: "tile " + cls, href }, body) : h("div", { class: "tile " + cls }, body);
}

export function render(main, ctx) {
  const live = liveIndicator();
  const body = h("div", { id: "overview" }, h("p", { class: "muted" }, "Loading…"));
  put(main, h("div", { class: "page-head" }, h("h1", {}, "Overview"), live.el), body);
  async function load() {
    let st;
    try { st = await api("/v1/stats"); } catch (err) { put(body, h("p", { class: "error" }, err.message)); return; }
    const rb = st.rollbacks_last_hour;
    put(body,
      h("section", { "aria-labelledby": "by-state" },
        h("h2", { id: "by-state" }, `Sagas by state (${st.total})`),
        h("div", { class: "tiles" }, STATES.map(([s, icon, label]) =>
          tile(label, st.by_state[s], icon, "st-" + s.toLowerCase(), route("sagas", { status: s }), "count-" + s)))),
      h("section", { "aria-labelledby": "attention" },
        h("h2", { id: "attention" }, "Needs an operator"),
        h("div", { class: "tiles" },
          tile("parked sagas waiting", st.parked, "‖", st.parked ? "parked" : "calm", route("sagas", { parked: "true" }), "count-parked"))),
      h("section", { "aria-labelledby": "rollbacks" },
        h("h2", { id: "rollbacks" }, "Rollbacks in the last hour"),
        h("div", { class: "tiles" },
          tile("rolled back", rb.finished, "↶", "st-completed", null, "rollbacks-finished"),
          tile("gave up (parked)", rb.parked, "‖", rb.parked ? "parked" : "calm", null, "rollbacks-parked"),
          tile("p50 duration", seconds(rb.p50_s), "◔", "calm", null, "rollbacks-p50"),
          tile("p99 duration", seconds(rb.p99_s), "◕", "calm", null, "rollbacks-p99")),
        h("p", { class: "muted" }, "Duration: from the failure to the last compensation done." +
          (rb.complete ? "" : " Only the newest FAILED sagas of the hour were looked at."))),
      /^https?:\/\//.test(st.grafana_url || "")
        ? h("p", {}, h("a", { href: st.grafana_url, rel: "noopener noreferrer", target: "_blank", id: "grafana" }, "Open the Grafana dashboard ↗"))
        : h("p", { class: "muted" }, "No Grafana dashboard configured (saga-journey serve --grafana-url URL)."),
    );
    body.dataset.loaded = String(st.at);
  }
  load();
  return onAnyChange(load, live);
}
