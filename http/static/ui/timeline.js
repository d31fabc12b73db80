// The saga's timeline as SVG: one column per history entry, in order; a forward lane
// (milestones with their report time, failures, timeouts) and a compensation lane (each
// attempt, the backoff wait after a failed one, errors, manual skips and retries with the
// operator and the reason). Every mark has an icon and a word, not only a colour.

import { s, time, seconds } from "./dom.js";

export const FORWARD = new Set(["saga_started", "milestone_completed", "milestone_attempt_failed",
  "milestone_failed", "saga_aborted", "saga_faulted"]);

const CW = 132; // column width
const X0 = 112; // room for the lane names
const LANE_Y = { forward: 58, compensation: 168 };
const HEIGHT = 262;

export function laneOf(entry) {
  return FORWARD.has(entry.type) ? "forward" : "compensation";
}

function wait(entry) {
  return typeof entry.retry_at === "number" && typeof entry.at === "number" ? Math.max(0, entry.retry_at - entry.at) : null;
}

/** What one entry says: {icon, word, tone, text} (text: the whole sentence, for the table and tooltips). */
export function describe(e) {
  const m = e.milestone_id || "";
  const ms = typeof e.duration_s === "number" ? ` (${seconds(e.duration_s)})` : "";
  const w = wait(e);
  const backoff = w === null ? "" : `; backoff ${w.toFixed(2)}s`;
  switch (e.type) {
    case "saga_started":
      return { icon: "▶", word: "started", tone: "info", text: `started: ${(e.milestone_ids || []).length} milestones` };
    case "milestone_completed":
      return { icon: "✓", word: "done", tone: "ok", text: `done ${m}` };
    case "milestone_attempt_failed":
      return { icon: "!", word: `attempt ${e.attempt} failed`, tone: "warn", text: `attempt ${e.attempt} of ${m} failed: ${e.error}${backoff}` };
    case "milestone_failed": {
      const timeout = e.cause === "timeout" || e.cause === "deadline";
      return { icon: timeout ? "◷" : "✗", word: timeout ? (e.cause === "deadline" ? "deadline" : "timed out") : "FAILED",
        tone: "fail", text: `${timeout ? e.cause.toUpperCase() : "FAILED"} ${m}: ${e.reason}` };
    }
    case "saga_aborted":
      return { icon: "■", word: "aborted", tone: "fail", text: `aborted by ${e.by}: ${e.reason}` };
    case "saga_faulted":
      return { icon: "⚠", word: "fault", tone: "fail", text: `fault while ${e.while_handling}: ${e.reason}` };
    case "compensation_succeeded":
      return { icon: "↶", word: `undone, attempt ${e.attempt}`, tone: "ok", text: `undone ${m}, attempt ${e.attempt}${ms}` };
    case "compensation_attempt_failed":
      return { icon: "✗", word: `attempt ${e.attempt} failed`, tone: "warn", text: `attempt ${e.attempt} to undo ${m} failed: ${e.error}${ms}${backoff}` };
    case "compensation_exhausted":
      return { icon: "✗", word: `gave up (${e.attempt})`, tone: "fail", text: `gave up undoing ${m} after ${e.attempt} attempt(s): ${e.error}` };
    case "compensation_parked":
      return { icon: "‖", word: "parked", tone: "fail", text: `PARKED at ${m}: ${e.reason}` };
    case "compensation_retried":
      return { icon: "↻", word: `retried by ${e.by}`, tone: "op", text: `retry of ${m} by ${e.by}: ${e.reason}` };
    case "compensation_skipped":
      return { icon: "↷", word: `skipped by ${e.by}`, tone: "op", text: `skipped ${m} by ${e.by}: ${e.reason}` };
    default:
      return { icon: "•", word: String(e.type), tone: "info", text: `${e.type} ${m}`.trim() };
  }
}

function clip(text, n) {
  text = String(text ?? "");
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function mark(e, i) {
  const lane = laneOf(e);
  const d = describe(e);
  const x = X0 + i * CW + CW / 2;
  const y = LANE_Y[lane];
  const lines = [d.word, e.milestone_id || "", time(e.at, true)];
  if (e.type === "compensation_retried" || e.type === "compensation_skipped" || e.type === "saga_aborted") lines.push(e.reason);
  else if (e.error || e.reason) lines.push(e.error || e.reason);
  // One <text> per mark (its lines are <tspan>s): far fewer text layouts than one element per line.
  const shown = lines.filter((t) => t !== "");
  return s("g", { class: `mark tone-${d.tone} lane-${lane}`, dataset: { seq: e.seq, kind: e.type, lane, milestone: e.milestone_id || "" } },
    s("title", {}, `#${e.seq} ${time(e.at)} ${d.text} → ${e.status_after}`),
    s("circle", { cx: x, cy: y, r: 13 }),
    s("text", { "text-anchor": "middle" },
      s("tspan", { x, y: y + 5, class: "glyph" }, d.icon),
      shown.map((t, k) => s("tspan", { x, y: y + 32 + k * 14, class: k === 0 ? "word" : "detail" }, clip(t, 20))),
      s("tspan", { x, y: HEIGHT - 8, class: "seq" }, `#${e.seq}`)),
  );
}

function backoffLine(e, i) {
  const w = wait(e);
  if (w === null) return null;
  const lane = laneOf(e);
  const y = LANE_Y[lane] - 20;
  const x1 = X0 + i * CW + CW / 2 + 14;
  const x2 = X0 + (i + 1) * CW + CW / 2 - 14;
  return s("g", { class: "backoff", dataset: { seq: e.seq, wait: w.toFixed(3) } },
    s("title", {}, `backoff wait ${w.toFixed(3)}s before the next attempt`),
    s("line", { x1, y1: y, x2, y2: y }),
    s("text", { x: (x1 + x2) / 2, y: y - 5, "text-anchor": "middle", class: "detail" }, `wait ${w.toFixed(2)}s`));
}

/**
 * A timeline that grows: ``append(entries)`` adds their columns at the right (a live saga's
 * new entries, or a long history in chunks) without redrawing what is there.
 */
export class Timeline {
  constructor() {
    this.count = 0;
    this.compensations = 0;
    this.svg = s("svg", { class: "timeline", height: HEIGHT, role: "img" });
    this.bands = [
      s("rect", { class: "lane-band", x: 0, y: LANE_Y.forward - 38, height: 100 }),
      s("rect", { class: "lane-band comp", x: 0, y: LANE_Y.compensation - 38, height: 100 }),
    ];
    this.axes = [
      s("line", { class: "lane-axis", x1: X0, y1: LANE_Y.forward, y2: LANE_Y.forward }),
      s("line", { class: "lane-axis", x1: X0, y1: LANE_Y.compensation, y2: LANE_Y.compensation }),
    ];
    this.marks = s("g", { class: "marks" });
    this.svg.append(...this.bands,
      s("text", { class: "lane-name", x: 8, y: LANE_Y.forward + 4 }, "Forward"),
      s("text", { class: "lane-name", x: 8, y: LANE_Y.compensation + 4 }, "Compensation"),
      ...this.axes, this.marks);
    this.resize();
  }

  resize() {
    const width = X0 + Math.max(1, this.count) * CW + 16;
    for (const el of [this.svg, ...this.bands]) el.setAttribute("width", width);
    for (const el of this.axes) el.setAttribute("x2", width);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    this.svg.setAttribute("aria-label", `timeline: ${this.count - this.compensations} forward event(s), ` +
      `${this.compensations} compensation event(s); the history table below lists them all`);
    this.svg.dataset.entries = String(this.count);
  }

  append(entries) {
    const frag = document.createDocumentFragment();
    for (const e of entries) {
      const i = this.count++;
      if (laneOf(e) === "compensation") this.compensations++;
      const back = backoffLine(e, i);
      if (back) frag.append(back);
      frag.append(mark(e, i));
    }
    this.marks.append(frag);
    this.resize();
    return this;
  }
}

/** The timeline of ``entries`` (history entries, oldest first) as an <svg>. */
export function renderTimeline(entries) {
  return new Timeline().append(entries).svg;
}
