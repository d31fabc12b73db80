// Shared by the pages: a live indicator for a followed stream, and a coalescing refresh.

import { h } from "./dom.js";
import { follow } from "./api.js";

/** A small "● live" / "reconnecting" element and the onState callback that drives it. */
export function liveIndicator() {
  const el = h("span", { class: "live", dataset: { state: "connecting" } }, "○ connecting");
  const words = { live: "● live", reconnecting: "◌ reconnecting", closed: "○ not live", connecting: "○ connecting" };
  return { el, onState(state) { el.dataset.state = state; el.textContent = words[state] || state; } };
}

/** Run ``fn`` at most once per ``ms`` however often it is asked for (the last ask always runs). */
export function coalesce(fn, ms = 400) {
  let timer = null;
  let again = false;
  let running = false;
  async function run() {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } finally {
      running = false;
      if (again) { again = false; ask(); }
    }
  }
  function ask() { if (timer === null) timer = setTimeout(run, ms); }
  ask.cancel = () => { if (timer !== null) clearTimeout(timer); timer = null; };
  return ask;
}

/** Refresh ``refresh`` whenever any saga of the tenant changes (GET /v1/events). */
export function onAnyChange(refresh, indicator) {
  const ask = coalesce(refresh);
  const stream = follow("/v1/events", { onEvent: () => ask(), onState: indicator.onState });
  return () => { stream.close(); ask.cancel(); };
}
