// Building DOM and SVG nodes. Every string becomes a text node or an attribute value set with
// setAttribute: no markup is ever parsed from data (no innerHTML), so a saga's context cannot
// inject elements or scripts.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/sagas", class: "x"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, the same way. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace an element's children. */
export function put(el, ...children) {
  el.replaceChildren();
  return fill(el, {}, children);
}

/** A link to a route of the console (hash routes); the id is URL-encoded. */
export function route(path, params) {
  const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null)).toString() : "";
  return "#/" + path + (q ? "?" + q : "");
}

export function sagaLink(id) {
  return h("a", { href: "#/saga/" + encodeURIComponent(id), class: "mono" }, id);
}

/** ISO-ish UTC time of epoch seconds: "2026-12-02 04:52:20.123Z" ("-" for none). */
export function time(ts, short = false) {
  if (typeof ts !== "number" || !isFinite(ts)) return "-";
  const iso = new Date(ts * 1000).toISOString().replace("T", " ");
  return short ? iso.slice(11) : iso;
}

export function age(ts, now = Date.now() / 1000) {
  if (typeof ts !== "number") return "-";
  const d = Math.max(0, now - ts);
  if (d < 60) return `${Math.floor(d)}s ago`;
  if (d < 3600) return `${Math.floor(d / 60)}m ago`;
  if (d < 86400) return `${Math.floor(d / 3600)}h ago`;
  return `${Math.floor(d / 86400)}d ago`;
}

export function seconds(x) {
  if (typeof x !== "number") return "-";
  if (x < 1) return `${(x * 1000).toFixed(1)} ms`;
  return `${x.toFixed(2)} s`;
}

// Status badges: an icon and the word, so colour is never the only signal.
const STATUS_ICON = { IN_PROGRESS: "▶", COMPENSATING: "↶", COMPLETED: "✓", FAILED: "✗" };

export function statusLabel(view) {
  const st = view.status;
  if (st === "FAILED" && view.parked) return "FAILED (parked)";
  if (st === "FAILED" && view.compensation_status === "succeeded") return "FAILED (rolled back)";
  return st;
}

export function badge(view) {
  const parked = view.status === "FAILED" && view.parked;
  const cls = "badge st-" + String(view.status).toLowerCase() + (parked ? " parked" : "");
  return h("span", { class: cls, dataset: { status: view.status, parked: parked ? "true" : "false" } },
    h("span", { class: "icon", "aria-hidden": "true" }, parked ? "‖" : STATUS_ICON[view.status] || "•"),
    " ", statusLabel(view));
}
