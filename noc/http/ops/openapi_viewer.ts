/** The `/docs` page: a self-contained OpenAPI viewer (no assets from elsewhere) that can send requests. */

/** The viewer's HTML. */
export function docsPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Appliance NOC API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1000px;padding:1rem;color:#1d2430}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;text-transform:capitalize}
details{border:1px solid #d5dae1;border-radius:6px;margin:.4rem 0;background:#fff}
summary{cursor:pointer;padding:.45rem .6rem;font-family:ui-monospace,monospace}
.m{display:inline-block;min-width:4.2rem;font-weight:700}.get{color:#046c4e}.post{color:#1d4ed8}.put,.patch{color:#92400e}.delete{color:#b91c1c}.head{color:#4b5563}
.body{padding:.2rem .8rem .8rem}pre{background:#f4f6f8;padding:.5rem;overflow:auto;font-size:12px}
label{display:block;margin:.2rem 0}input,textarea{font:13px ui-monospace,monospace;width:100%;box-sizing:border-box}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #e1e5ea;padding:.2rem .4rem;text-align:left}
#token{max-width:32rem}.muted{color:#5f6b7a}a{color:#1f56b0}
button{font:inherit;padding:.3rem .8rem;border-radius:6px;border:1px solid #2b5aa8;background:#2f66c0;color:#fff;cursor:pointer}
:focus-visible{outline:3px solid #f0a500;outline-offset:2px}
</style></head><body>
<main>
<h1>Appliance NOC API</h1>
<p class="muted">Generated from the routes' own validation schemas: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Appliance requests must be signed (see docs/protocol.md); admin requests take a bearer token.</p>
<label>Admin token for “Send” (kept in this tab only) <input id="token" type="password" autocomplete="off"></label>
<div id="api">Loading…</div>
<script>
const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("noc-token") || "";
tokenInput.addEventListener("input", () => sessionStorage.setItem("noc-token", tokenInput.value));
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) k === "class" ? e.className = v : e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};
fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  const root = document.getElementById("api");
  root.textContent = "";
  const byTag = new Map();
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ path, method, op });
    }
  }
  for (const tag of doc.tags.map((t) => t.name)) {
    const ops = byTag.get(tag) || [];
    if (!ops.length) continue;
    root.append(el("h2", {}, tag));
    for (const { path, method, op } of ops) {
      const body = el("div", { class: "body" });
      const d = el("details", { "data-op": op.operationId },
        el("summary", {}, el("span", { class: "m " + method }, method.toUpperCase()), path + " — " + op.summary), body);
      const inputs = {};
      if (op.parameters.length) {
        const t = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "schema"), el("th", {}, "value")));
        for (const p of op.parameters) {
          const i = el("input", { name: p.name, "aria-label": p.name + " (" + p.in + ")" });
          inputs[p.in + ":" + p.name] = i;
          t.append(el("tr", {}, el("td", {}, p.name + (p.required ? " *" : "")), el("td", {}, p.in),
            el("td", {}, JSON.stringify(p.schema)), el("td", {}, i)));
        }
        body.append(t);
      }
      let bodyInput = null;
      if (op.requestBody) {
        for (const [type, media] of Object.entries(op.requestBody.content)) {
          body.append(el("p", {}, "Body (" + type + ")" + (media.description ? ": " + media.description : "")),
            el("pre", { tabindex: "0" }, JSON.stringify(media.schema, null, 2)));
          if (type === "application/json" && !bodyInput) {
            bodyInput = el("textarea", { rows: "5", "aria-label": "Request body (JSON)" }, "{}");
            body.append(bodyInput);
          }
        }
      }
      const out = el("pre", { class: "result", "aria-live": "polite", tabindex: "0" });
      const send = el("button", { type: "button" }, "Send");
      send.addEventListener("click", async () => {
        let url = path.replace(/{(\\w+)}/g, (_, n) => encodeURIComponent(inputs["path:" + n]?.value || ""));
        const q = new URLSearchParams();
        for (const [k, i] of Object.entries(inputs)) if (k.startsWith("query:") && i.value) q.set(k.slice(6), i.value);
        if ([...q].length) url += "?" + q;
        const headers = {};
        if (tokenInput.value) headers.authorization = "Bearer " + tokenInput.value;
        for (const [k, i] of Object.entries(inputs)) if (k.startsWith("header:") && i.value) headers[k.slice(7)] = i.value;
        if (bodyInput) headers["content-type"] = "application/json";
        try {
          const r = await fetch(url, { method: method.toUpperCase(), headers, body: bodyInput ? bodyInput.value : undefined });
          out.textContent = r.status + " " + r.statusText + "\\n\\n" + (await r.text()).slice(0, 20000);
        } catch (e) { out.textContent = String(e); }
      });
      body.append(send, out);
      root.append(d);
    }
  }
});
</script></main></body></html>`;
}
