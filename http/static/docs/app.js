// The /docs page: fetches /openapi.json and renders its operations and schemas.
// Dependency-free; builds the page with DOM calls only (no innerHTML: the document's text is
// never parsed as HTML), so it runs under a Content-Security-Policy without 'unsafe-inline'.
"use strict";

const REF_PREFIX = "#/components/schemas/";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
  return node;
}

function refName(ref) {
  return ref.startsWith(REF_PREFIX) ? ref.slice(REF_PREFIX.length) : ref;
}

function schemaLink(ref) {
  const name = refName(ref);
  return el("a", { href: "#schema-" + name, class: "ref" }, name);
}

// A short rendering of a schema's type: $ref links, unions, arrays, maps, enums.
function typeOf(schema) {
  if (!schema || typeof schema !== "object") return el("code", {}, "any");
  if (schema.$ref) return schemaLink(schema.$ref);
  const union = schema.anyOf || schema.oneOf;
  if (union) {
    const parts = [];
    union.forEach((s, i) => { if (i) parts.push(" | "); parts.push(typeOf(s)); });
    return el("span", {}, parts);
  }
  if (schema.enum) return el("code", {}, schema.enum.map((v) => JSON.stringify(v)).join(" | "));
  const types = Array.isArray(schema.type) ? schema.type : [schema.type || "any"];
  const parts = [];
  types.forEach((t, i) => {
    if (i) parts.push(" | ");
    if (t === "array") parts.push(el("span", {}, "array of ", typeOf(schema.items)));
    else if (t === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object") {
      parts.push(el("span", {}, "map of ", typeOf(schema.additionalProperties)));
    } else parts.push(el("code", {}, t));
  });
  return el("span", {}, parts);
}

const CONSTRAINTS = ["pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
  "exclusiveMaximum", "minItems", "maxItems", "default", "format"];

function constraints(schema) {
  const bits = [];
  for (const key of CONSTRAINTS) {
    if (schema && schema[key] !== undefined) bits.push(key + ": " + JSON.stringify(schema[key]));
  }
  return bits.length ? el("span", { class: "constraint" }, bits.join(", ")) : null;
}

function example(value, label) {
  return el("details", {}, el("summary", {}, label || "example"), el("pre", {}, JSON.stringify(value, null, 2)));
}

function mediaExamples(media) {
  const out = [];
  if (media.example !== undefined) out.push(example(media.example));
  for (const [name, ex] of Object.entries(media.examples || {})) out.push(example(ex.value, "example: " + (ex.summary || name)));
  return out;
}

function parametersTable(params) {
  return el("table", { class: "params" },
    el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description"), el("th", {}, "example")),
    params.map((p) => el("tr", {},
      el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, "required") : null),
      el("td", {}, p.in),
      el("td", {}, typeOf(p.schema), constraints(p.schema)),
      el("td", {}, p.description || ""),
      el("td", {}, p.example !== undefined ? el("code", {}, JSON.stringify(p.example)) : ""))));
}

function content(body) {
  return Object.entries(body.content || {}).map(([ctype, media]) => el("div", { class: "media" },
    el("code", {}, ctype), " ", typeOf(media.schema), mediaExamples(media)));
}

function responsesTable(responses) {
  return el("table", { class: "responses" },
    el("tr", {}, el("th", {}, "status"), el("th", {}, "description"), el("th", {}, "body")),
    Object.entries(responses).map(([status, resp]) => el("tr", {},
      el("td", {}, el("span", { class: "status " + (status < "400" ? "ok" : "err") }, status)),
      el("td", {}, resp.description || "",
        Object.keys(resp.headers || {}).length ? el("div", { class: "constraint" }, "headers: " + Object.keys(resp.headers).join(", ")) : null),
      el("td", {}, content(resp)))));
}

function security(doc, op) {
  const reqs = op.security !== undefined ? op.security : doc.security || [];
  return reqs.length ? "needs " + reqs.map((r) => Object.keys(r).join(" + ")).join(" or ") : "public, no credential";
}

function operation(doc, method, path, op) {
  const id = "op-" + (op.operationId || method + path);
  const parts = [
    el("h3", {}, el("span", { class: "method " + method }, method), el("span", { class: "path" }, path),
      el("span", { class: "summary" }, op.summary || "")),
    el("p", { class: "meta" }, "operationId ", el("code", {}, op.operationId || "-"), " · ", security(doc, op)),
    op.description ? el("p", { class: "description" }, op.description) : null,
  ];
  if (op.parameters && op.parameters.length) parts.push(el("h4", {}, "Parameters"), parametersTable(op.parameters));
  if (op.requestBody) {
    parts.push(el("h4", {}, "Request body", op.requestBody.required ? el("span", { class: "req" }, "required") : null));
    if (op.requestBody.description) parts.push(el("p", { class: "description" }, op.requestBody.description));
    parts.push(content(op.requestBody));
  }
  parts.push(el("h4", {}, "Responses"), responsesTable(op.responses || {}));
  return el("article", { class: "op", id: id, "data-search": [method, path, op.operationId, op.summary].join(" ").toLowerCase() }, parts);
}

function schemaArticle(name, schema) {
  const parts = [el("h3", {}, el("code", {}, name), el("span", { class: "summary" }, typeOf(schema)))];
  if (schema.description) parts.push(el("p", { class: "description" }, schema.description));
  const props = schema.properties || {};
  if (Object.keys(props).length) {
    const required = new Set(schema.required || []);
    parts.push(el("table", {},
      el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "description")),
      Object.entries(props).map(([prop, sub]) => el("tr", {},
        el("td", {}, el("code", {}, prop), required.has(prop) ? el("span", { class: "req" }, "required") : null),
        el("td", {}, typeOf(sub), constraints(sub)),
        el("td", {}, sub.description || "")))));
    const extra = schema.additionalProperties;
    parts.push(el("p", { class: "meta" }, extra === false ? "no other fields" : "other fields allowed"));
  }
  return el("article", { class: "schema", id: "schema-" + name, "data-search": name.toLowerCase() }, parts);
}

function operationsByTag(doc) {
  const groups = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, methods] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(methods)) {
      const name = (op.tags && op.tags[0]) || "other";
      if (!groups.has(name)) groups.set(name, { tag: { name: name }, ops: [] });
      groups.get(name).ops.push([method, path, op]);
    }
  }
  return [...groups.values()].filter((g) => g.ops.length);
}

// Renders the whole document into main and nav; returns the number of operations rendered.
function render(doc, main, nav) {
  main.textContent = "";
  nav.textContent = "";
  const info = doc.info || {};
  main.appendChild(el("p", { class: "description" }, (info.title || "API") + " " + (info.version || "") + ". " + (info.description || "")));
  let count = 0;
  for (const group of operationsByTag(doc)) {
    const section = el("section", { class: "tag", id: "tag-" + group.tag.name }, el("h2", {}, group.tag.name),
      group.tag.description ? el("p", { class: "description" }, group.tag.description) : null);
    const links = el("ul", {});
    for (const [method, path, op] of group.ops) {
      const article = operation(doc, method, path, op);
      section.appendChild(article);
      links.appendChild(el("li", { "data-search": article.getAttribute("data-search") },
        el("a", { href: "#" + article.id }, el("span", { class: "method " + method }, method), " ", path)));
      count += 1;
    }
    main.appendChild(section);
    nav.appendChild(el("h3", {}, group.tag.name));
    nav.appendChild(links);
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  const section = el("section", { class: "tag", id: "schemas" }, el("h2", {}, "Schemas"));
  const links = el("ul", {});
  for (const [name, schema] of Object.entries(schemas)) {
    section.appendChild(schemaArticle(name, schema));
    links.appendChild(el("li", { "data-search": name.toLowerCase() }, el("a", { href: "#schema-" + name }, name)));
  }
  main.appendChild(section);
  nav.appendChild(el("h3", {}, "schemas"));
  nav.appendChild(links);
  main.setAttribute("data-rendered", String(count));
  return count;
}

function applyFilter(text) {
  const needle = text.trim().toLowerCase();
  for (const node of document.querySelectorAll("[data-search]")) {
    const hide = needle !== "" && !node.getAttribute("data-search").includes(needle);
    node.classList.toggle("hidden", hide);
  }
}

async function main() {
  const page = document.getElementById("content");
  const nav = document.getElementById("nav");
  try {
    const resp = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error("GET /openapi.json answered " + resp.status);
    const doc = await resp.json();
    if (doc.info && doc.info.title) {
      document.title = doc.info.title + " API reference";
      document.getElementById("title").textContent = doc.info.title + " API reference";
    }
    render(doc, page, nav);
    document.getElementById("filter").addEventListener("input", (e) => applyFilter(e.target.value));
    if (location.hash) {
      const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) target.scrollIntoView();
    }
  } catch (err) {
    page.textContent = "";
    page.appendChild(el("p", { class: "error", id: "status" }, "Could not render the API reference: " + err.message));
  }
}

if (typeof window !== "undefined") {
  document.addEventListener("DOMContentLoaded", main);
}
