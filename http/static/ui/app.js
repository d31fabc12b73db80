// The console's shell: sign-in, navigation and hash routes. Each page module exports
// ``render(main, ctx) -> cleanup`` and draws into <main>; the cleanup closes its streams.

import { api, auth, ApiError } from "./api.js";
import { h, put } from "./dom.js";
import * as overview from "./overview.js";
import * as sagas from "./sagas.js";
import * as saga from "./saga.js";
import * as journeys from "./journeys.js";

const main = document.getElementById("main");
const who = document.getElementById("who");
const ctx = { me: null, announce };
let cleanup = null;

function announce(text) {
  const el = document.getElementById("announce");
  el.textContent = "";
  el.textContent = text;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const parts = path.split("/").map(decodeURIComponent);
  return { page: parts[0] || "overview", arg: parts.slice(1).join("/"), params: new URLSearchParams(query || "") };
}

function signIn(message) {
  if (cleanup) { cleanup(); cleanup = null; }
  put(who);
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const form = h("form", { class: "card signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Enter an API key of this gateway. It is kept only for this browser tab's session and sent as a bearer token."),
    h("label", { for: "token" }, "API key"), input, error,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    auth.set(input.value.trim());
    await start(true);
  });
  put(main, form);
  input.focus();
}

async function start(fromForm = false) {
  try {
    ctx.me = await api("/v1/whoami");
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      auth.clear();
      signIn(fromForm ? "That key was not accepted." : "");
      return false;
    }
    put(main, h("p", { class: "error" }, `Cannot reach the gateway: ${err.message}`));
    return false;
  }
  const signOut = h("button", { type: "button", id: "sign-out" }, "Sign out");
  signOut.addEventListener("click", () => { auth.clear(); ctx.me = null; signIn(); });
  put(who, h("span", { id: "whoami", dataset: { roles: ctx.me.roles.join(" ") } },
    `${ctx.me.tenant_id} / ${ctx.me.user_id} (${ctx.me.roles.includes("admin") ? "admin" : ctx.me.roles.includes("write") ? "write" : "read-only"})`),
    " ", signOut);
  show();
  return true;
}

const PAGES = { overview, sagas, saga, journeys };

function show() {
  if (!ctx.me) return;
  if (cleanup) { cleanup(); cleanup = null; }
  const { page, arg, params } = parseHash();
  const mod = PAGES[page] || overview;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === (page === "saga" ? "sagas" : page)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  put(main);
  cleanup = mod.render(main, ctx, arg, params) || null;
}

window.addEventListener("hashchange", () => {
  show();
  main.focus({ preventScroll: true }); // a screen reader starts reading the new page
});
window.addEventListener("sj-unauthorized", () => { if (ctx.me) { auth.clear(); ctx.me = null; signIn("Your key is no longer accepted: sign in again."); } });
start();
