// One saga: the status card, operator actions (by the credential's roles), the timeline (SVG),
// the history as a table, and the context and step results as text. The whole history comes
// from the saga's event stream (it replays from the first event, then goes live), so the page
// follows a running saga, and an operator's repair shows up, without a reload.

import { api, follow } from "./api.js";
import { age, badge, h, put, route, time } from "./dom.js";
import { liveIndicator } from "./live.js";
import { describe, laneOf, Timeline } from "./timeline.js";

function card(v) {
  const rows = [
    ["status", badge(v)],
    ["journey", [h("a", { href: route("journeys") }, v.journey_id), ` v${v.journey_version} (${v.journey_type})`]],
    ["tenant / user", `${v.tenant_id} / ${v.user_id}`],
    ["milestones", (v.milestones || []).join(" › ")],
    ["at milestone", v.current_milestone || "-"],
    ["completed", (v.completed_milestones || []).join(", ") || "-"],
  ];
  if (v.failure) rows.push(["failure", `${v.failure.kind} at ${v.failure.milestone_id || "-"}: ${v.failure.reason}`]);
  if (v.compensation_status !== "none") {
    rows.push(["compensation", v.compensation_attempts ? `${v.compensation_status}, ${v.compensation_attempts} attempt(s) of the current step` : v.compensation_status]);
    rows.push(["compensated", (v.compensated_milestones || []).join(", ") || "-"]);
    rows.push(["pending", (v.pending_compensations || []).join(", ") || "-"]);
  }
  if ((v.manually_compensated || []).length) rows.push(["skipped by hand", v.manually_compensated.join(", ")]);
  if (v.parked) rows.push(["parked", `at ${v.failed_compensation}: ${v.parked_reason || ""}`]);
  if (v.compensation_error) rows.push(["error", v.compensation_error]);
  else if (v.last_compensation_error) rows.push(["last error", v.last_compensation_error]);
  rows.push(["started", time(v.started_at)], ["updated", `${time(v.updated_at)} (${age(v.updated_at)}, version ${v.version})`]);
  return h("dl", { class: "facts", id: "status-card", dataset: { status: v.status, parked: String(!!v.parked), version: v.version } },
    rows.map(([k, val]) => [h("dt", {}, k), h("dd", { dataset: { field: k } }, val)]));
}

/** Ask for a reason in the page's <dialog>; ``act(reason)`` runs the action (errors keep it open). */
function askReason(title, help, act) {
  const dialog = document.getElementById("reason-dialog");
  const form = document.getElementById("reason-form");
  const text = document.getElementById("reason-text");
  const error = document.getElementById("reason-error");
  const ok = document.getElementById("reason-ok");
  document.getElementById("reason-title").textContent = title;
  document.getElementById("reason-help").textContent = help;
  text.value = "";
  error.textContent = "";
  ok.disabled = false;
  const opener = document.activeElement;
  const done = () => {
    form.onsubmit = null;
    dialog.oncancel = null;
    document.getElementById("reason-cancel").onclick = null;
    if (opener && opener.isConnected && opener.focus) opener.focus();
  };
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const reason = text.value.trim();
    if (!reason) { error.textContent = "A reason is required."; text.focus(); return; }
    ok.disabled = true;
    try {
      await act(reason);
      dialog.close();
      done();
    } catch (err) {
      error.textContent = err.message;
      ok.disabled = false;
    }
  };
  document.getElementById("reason-cancel").onclick = () => { dialog.close(); done(); };
  dialog.oncancel = done; // Escape
  dialog.showModal();
  text.focus();
}

function actions(v, me, sagaPath, announce, message) {
  const can = me.can || {};
  const out = [];
  const post = (path, body, what) => async (reason) => {
    const res = await api(sagaPath + path, { method: "POST", body: { ...body, reason } });
    const text = `${what}: the saga is ${res.status}${res.parked ? " (parked)" : ""}`;
    message.textContent = text;
    announce(text);
  };
  if (can.abort && v.status === "IN_PROGRESS") {
    const b = h("button", { type: "button", id: "action-abort", class: "danger" }, "■ Abort…");
    b.addEventListener("click", () => askReason("Abort this saga", "Its completed milestones are compensated, newest first.",
      post("/compensate", {}, "Aborted")));
    out.push(b);
  }
  if (v.parked && can.retry_compensation) {
    const b = h("button", { type: "button", id: "action-retry", class: "primary" }, "↻ Retry compensation…");
    b.addEventListener("click", () => askReason(`Retry the compensation of ${v.failed_compensation}`,
      "The rollback resumes at the compensation that failed, with a fresh retry budget.", post("/retry-compensation", {}, "Retried")));
    out.push(b);
  }
  if (v.parked && can.skip_compensation && v.failed_compensation) {
    const b = h("button", { type: "button", id: "action-skip" }, `↷ Skip ${v.failed_compensation}…`);
    b.addEventListener("click", () => askReason(`Skip the compensation of ${v.failed_compensation}`,
      "Records it as compensated by hand, then the rollback continues.",
      post("/skip-compensation", { milestone_id: v.failed_compensation }, "Skipped")));
    out.push(b);
  }
  return out;
}

function historyRow(e) {
  const d = describe(e);
  return h("tr", { class: "tone-" + d.tone, dataset: { seq: e.seq, kind: e.type } },
    h("td", { class: "num" }, String(e.seq)), h("td", { class: "mono" }, time(e.at, true)), h("td", {}, laneOf(e)),
    h("td", {}, h("span", { "aria-hidden": "true" }, d.icon + " "), e.type), h("td", { class: "mono" }, e.milestone_id || ""),
    h("td", { class: "what" }, d.text), h("td", {}, e.status_after));
}

function historyTable() {
  const body = h("tbody");
  const table = h("table", { id: "history-table" },
    h("caption", { class: "sr-only" }, "history, oldest first"),
    h("thead", {}, h("tr", {}, ["#", "Time (UTC)", "Lane", "Event", "Milestone", "What happened", "Status after"].map((t) => h("th", { scope: "col" }, t)))),
    body);
  return { table, body };
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function results(entries, v) {
  const out = [];
  for (const e of entries) {
    const data = e.result ? Object.keys(e.result).filter((k) => k !== "status" && k !== "milestone_id") : [];
    if ((e.type === "milestone_completed" || e.type === "milestone_attempt_failed") && data.length) {
      out.push(h("h3", { class: "mono" }, `#${e.seq} ${e.milestone_id}`), h("pre", { class: "result", dataset: { seq: e.seq } }, pretty(e.result)));
    }
  }
  if (v.failure && v.failure.result) out.push(h("h3", {}, `failure at ${v.failure.milestone_id || "-"}`), h("pre", { class: "result" }, pretty(v.failure.result)));
  return out.length ? out : [h("p", { class: "muted" }, "No milestone reported data beyond its status.")];
}

export function render(main, ctx, sagaId) {
  const opened = performance.now();
  const sagaPath = "/v1/sagas/" + encodeURIComponent(sagaId);
  const live = liveIndicator();
  const cardBox = h("div", { class: "card" }, h("p", { class: "muted" }, "Loading…"));
  const actionBox = h("div", { class: "actions", id: "actions" });
  const message = h("p", { class: "muted", id: "action-result", role: "status" });
  const scroller = h("div", { class: "timeline-scroll", id: "timeline", tabindex: "0", "aria-label": "timeline (scrolls sideways)" });
  const historyBox = h("div", { class: "table-wrap", id: "history" });
  const contextBox = h("pre", { id: "context" });
  const resultsBox = h("div", { id: "results" });
  put(main,
    h("div", { class: "page-head" }, h("h1", {}, "Saga ", h("span", { class: "mono" }, sagaId)), live.el),
    h("p", {}, h("a", { href: route("sagas") }, "← all sagas")),
    cardBox, actionBox, message,
    h("section", { "aria-labelledby": "tl" }, h("h2", { id: "tl" }, "Timeline"),
      h("p", { class: "legend muted" }, "✓ done · ! attempt failed · ✗ failed · ◷ timed out · ↶ undone · ‖ parked · ↻ retried · ↷ skipped by hand · dashed: backoff wait"),
      scroller),
    h("section", { "aria-labelledby": "hist", class: "deferred" }, h("h2", { id: "hist" }, "History"), historyBox),
    h("section", { "aria-labelledby": "ctx" }, h("h2", { id: "ctx" }, "Context"), contextBox),
    h("section", { "aria-labelledby": "res", class: "deferred" }, h("h2", { id: "res" }, "Step results"), resultsBox));

  let view = null;
  const entries = [];
  const seen = new Set();
  let frame = null;
  let drawnContext = false;
  let actionsKey = null;
  let timeline = null;
  let history = null;
  let order = 0; // bumped when an entry arrives out of order: the drawing starts anew
  let drawnOrder = 0;

  function draw() {
    frame = null;
    if (!view) return;
    put(cardBox, card(view));
    const key = `${view.status}|${view.parked}|${view.failed_compensation}`;
    if (key !== actionsKey) { // redrawn only when what may be done changes: focus stays put
      actionsKey = key;
      put(actionBox, actions(view, ctx.me, sagaPath, ctx.announce, message));
    }
    if (!drawnContext) { contextBox.textContent = pretty(view.context || {}); drawnContext = true; }
    const atEnd = scroller.scrollLeft + scroller.clientWidth >= scroller.scrollWidth - 4;
    const t0 = performance.now();
    if (!timeline || timeline.count > entries.length || drawnOrder !== order) {  // first draw, or out of order: anew
      timeline = new Timeline();
      history = historyTable();
      drawnOrder = order;
      put(scroller, timeline.svg);
      put(historyBox, history.table);
    }
    const fresh = entries.slice(timeline.count);
    timeline.append(fresh);
    history.body.append(...fresh.map(historyRow));
    timeline.svg.getBoundingClientRect(); // layout now: the time below includes it
    scroller.dataset.renderMs = (performance.now() - t0).toFixed(2);
    scroller.dataset.entries = String(timeline.count);
    requestAnimationFrame(() => { scroller.dataset.paintMs = (performance.now() - t0).toFixed(2); });
    if (atEnd) scroller.scrollLeft = scroller.scrollWidth;
    if (!scroller.dataset.completeMs && timeline.count >= view.version) { // every transition drawn
      scroller.dataset.completeMs = (performance.now() - opened).toFixed(1);
    }
    put(resultsBox, results(entries, view));
  }
  const schedule = () => { if (frame === null) frame = requestAnimationFrame(draw); };

  let stream = null;
  api(sagaPath).then((v) => {
    view = v;
    schedule();
    stream = follow(sagaPath + "/events", {
      onState: live.onState,
      onEvent: (_id, _type, data) => {
        const { saga, ...entry } = data;
        if (saga) view = saga;
        if (!seen.has(entry.seq)) {
          seen.add(entry.seq);
          entries.push(entry);
          if (entries.length > 1 && entries[entries.length - 2].seq > entry.seq) {
            entries.sort((a, b) => a.seq - b.seq);
            order += 1;
          }
        }
        schedule();
      },
    });
  }).catch((err) => {
    put(cardBox, h("p", { class: "error", id: "saga-error" }, err.status === 404 ? `No saga ${sagaId} here.` : err.message));
  });
  return () => { if (stream) stream.close(); if (frame !== null) cancelAnimationFrame(frame); };
}
