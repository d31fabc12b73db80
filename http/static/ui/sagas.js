// Sagas: filters (status, parked, journey type, age), counts by state, pages through any number
// of sagas with the gateway's cursors, refreshed live when any saga changes.

import { api } from "./api.js";
import { age, badge, h, put, route, sagaLink } from "./dom.js";
import { liveIndicator, onAnyChange } from "./live.js";

const PAGE = 25;
const AGES = [
  ["", "any age"], ["lt1h", "updated in the last hour"], ["lt24h", "updated in the last 24 h"],
  ["gt1h", "not updated for 1 h"], ["gt24h", "not updated for 24 h"],
];

function ageFilter(value, now) {
  switch (value) {
    case "lt1h": return { updated_after: (now - 3600).toFixed(3) };
    case "lt24h": return { updated_after: (now - 86400).toFixed(3) };
    case "gt1h": return { updated_before: (now - 3600).toFixed(3) };
    case "gt24h": return { updated_before: (now - 86400).toFixed(3) };
    default: return {};
  }
}

function select(id, label, options, value) {
  const el = h("select", { id, name: id },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return [h("label", { for: id }, label), el];
}

export function render(main, ctx, _arg, params) {
  const filters = {
    status: params.get("status") || "", parked: params.get("parked") || "",
    journey_type: params.get("journey_type") || "", age: params.get("age") || "",
  };
  const cursors = [null]; // cursors[i]: the cursor of page i (null: the first page)
  let pageIndex = 0;
  const live = liveIndicator();
  const counts = h("div", { class: "counts", id: "counts", "aria-label": "sagas by state" });
  const table = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });
  const typeSelect = select("f-journey-type", "Journey type", [["", "any type"], ...(filters.journey_type ? [[filters.journey_type, filters.journey_type]] : [])], filters.journey_type);
  const form = h("form", { class: "filters", id: "filters", role: "search" },
    h("div", {}, select("f-status", "Status", [["", "any status"], ["IN_PROGRESS", "IN_PROGRESS"], ["COMPENSATING", "COMPENSATING"], ["COMPLETED", "COMPLETED"], ["FAILED", "FAILED"]], filters.status)),
    h("div", {}, select("f-parked", "Parked", [["", "parked or not"], ["true", "parked only"], ["false", "not parked"]], filters.parked)),
    h("div", {}, typeSelect),
    h("div", {}, select("f-age", "Age", AGES, filters.age)));
  form.addEventListener("submit", (ev) => ev.preventDefault());
  form.addEventListener("change", () => {
    Object.assign(filters, {
      status: form.querySelector("#f-status").value, parked: form.querySelector("#f-parked").value,
      journey_type: form.querySelector("#f-journey-type").value, age: form.querySelector("#f-age").value,
    });
    cursors.length = 1;
    pageIndex = 0;
    // The filters go into the address (linkable) without a navigation: focus stays on the field.
    history.replaceState(null, "", route("sagas", filters));
    loadPage();
  });
  put(main, h("div", { class: "page-head" }, h("h1", {}, "Sagas"), live.el), counts, form, table, pager);

  api("/v1/journeys").then(({ journeys }) => {
    const types = [...new Set(journeys.map((j) => j.journey_type))].sort();
    const el = typeSelect[1];
    for (const t of types) if (t !== filters.journey_type) el.append(h("option", { value: t }, t));
  }).catch(() => {});

  async function loadCounts() {
    const st = await api("/v1/stats");
    put(counts, ["IN_PROGRESS", "COMPENSATING", "COMPLETED", "FAILED"].map((s) =>
      h("a", { href: route("sagas", { status: s }), class: "count st-" + s.toLowerCase(), dataset: { status: s } },
        `${s} ${st.by_state[s]}`)),
    h("a", { href: route("sagas", { parked: "true" }), class: "count parked", dataset: { status: "parked" } }, `‖ parked ${st.parked}`));
  }

  let generation = 0; // a page asked for later wins over one still on its way
  async function loadPage() {
    const mine = ++generation;
    const now = Date.now() / 1000;
    const q = { limit: PAGE, ...ageFilter(filters.age, now) };
    for (const k of ["status", "parked", "journey_type"]) if (filters[k]) q[k] = filters[k];
    if (cursors[pageIndex]) q.cursor = cursors[pageIndex];
    let page;
    try {
      page = await api("/v1/sagas?" + new URLSearchParams(q));
    } catch (err) {
      if (mine === generation) put(table, h("p", { class: "error" }, err.message));
      return;
    }
    if (mine !== generation) return;
    cursors[pageIndex + 1] = page.next_cursor;
    const rows = page.sagas.map((v) => h("tr", { dataset: { sagaId: v.saga_id, status: v.status, parked: String(!!v.parked) } },
      h("td", {}, sagaLink(v.saga_id)), h("td", {}, v.journey_type), h("td", {}, badge(v)),
      h("td", {}, v.current_milestone || v.failed_compensation || "-"), h("td", {}, v.user_id),
      h("td", { title: v.updated_at_iso || "" }, age(v.updated_at, now)), h("td", { class: "num" }, String(v.version))));
    put(table, rows.length
      ? h("table", { id: "saga-table" },
        h("caption", { class: "sr-only" }, "sagas, newest first"),
        h("thead", {}, h("tr", {}, ["Saga", "Journey type", "Status", "At milestone", "User", "Updated", "V"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows))
      : h("p", { class: "muted", id: "no-sagas" }, "No saga matches these filters."));
    table.dataset.loadedAt = String(now);
    const prev = h("button", { type: "button", id: "page-prev", disabled: pageIndex === 0 }, "← Newer");
    const next = h("button", { type: "button", id: "page-next", disabled: !page.next_cursor }, "Older →");
    prev.addEventListener("click", () => { pageIndex -= 1; loadPage(); });
    next.addEventListener("click", () => { pageIndex += 1; loadPage(); });
    put(pager, prev, h("span", { class: "muted" }, ` page ${pageIndex + 1} `), next);
  }

  const refresh = async () => { await Promise.allSettled([loadCounts(), loadPage()]); };
  refresh();
  return onAnyChange(refresh, live);
}
