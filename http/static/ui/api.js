// The gateway's API: the token (entered once, kept for the browser session), JSON requests,
// and Server-Sent Events read with fetch (EventSource cannot send the Authorization header, and
// the token never goes into a URL).

const KEY = "saga-journey.console.token";

export const auth = {
  get token() { return sessionStorage.getItem(KEY) || ""; },
  set(token) { sessionStorage.setItem(KEY, token); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

function headers(extra) {
  const out = { Accept: "application/json", ...extra };
  if (auth.token) out.Authorization = "Bearer " + auth.token;
  return out;
}

/** GET (or POST with ``body``) a gateway path; the parsed JSON, or an ApiError. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    if (resp.status === 401) window.dispatchEvent(new CustomEvent("sj-unauthorized"));
    throw new ApiError(resp.status, data);
  }
  return data;
}

/** Split SSE text into complete events; returns [events, rest not yet complete]. */
export function parseSSE(text) {
  const events = [];
  const blocks = text.replace(/\r\n?/g, "\n").split("\n\n");
  const rest = blocks.pop();
  for (const block of blocks) {
    const ev = { id: null, event: "message", data: [] };
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? "" : line.slice(i + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") ev.id = value;
      else if (field === "event") ev.event = value;
      else if (field === "data") ev.data.push(value);
    }
    if (ev.data.length) events.push({ ...ev, data: ev.data.join("\n") });
  }
  return [events, rest];
}

/**
 * Follow an SSE endpoint: ``onEvent(id, type, data)`` for each event, ``onState("live" |
 * "reconnecting" | "closed")``; reconnects with Last-Event-ID after a dropped connection.
 * Returns ``{close()}``.
 */
export function follow(path, { onEvent, onState = () => {}, lastEventId = null }) {
  const ctl = { closed: false, abort: null, last: lastEventId, delay: 500 };
  async function once() {
    const abort = new AbortController();
    ctl.abort = abort;
    const extra = ctl.last !== null ? { "Last-Event-ID": String(ctl.last) } : {};
    const resp = await fetch(path, { headers: headers({ Accept: "text/event-stream", ...extra }), signal: abort.signal });
    if (!resp.ok) {
      if (resp.status === 401) window.dispatchEvent(new CustomEvent("sj-unauthorized"));
      throw new ApiError(resp.status, null);
    }
    onState("live");
    ctl.delay = 500;
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const [events, rest] = parseSSE(buffer + value);
      buffer = rest;
      for (const ev of events) {
        if (ev.id !== null) ctl.last = ev.id;
        let data;
        try { data = JSON.parse(ev.data); } catch { continue; }
        onEvent(ev.id, ev.event, data);
      }
    }
  }
  (async () => {
    while (!ctl.closed) {
      try {
        await once();
      } catch (err) {
        if (ctl.closed) break;
        if (err instanceof ApiError && err.status < 500 && err.status !== 429) { onState("closed"); return; }
      }
      if (ctl.closed) break;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, ctl.delay));
      ctl.delay = Math.min(ctl.delay * 2, 10000);
    }
    onState("closed");
  })();
  return {
    close() { ctl.closed = true; if (ctl.abort) ctl.abort.abort(); },
  };
}
