/**
 * Examples in the documentation that a newcomer copies: the enrolment request
 * of docs/protocol.md is accepted as written (only its one-time token is
 * replaced by a live one), and every public key shown in a JSON example of
 * docs/*.md is canonical unpadded base64url (a key with nonzero padding bits
 * is refused with 400).
 */
import assert from "node:assert/strict";
import { dbTest, testNoc } from "./_harness.ts";

const docsDir = new URL("../docs/", import.meta.url);
const protocol = await Deno.readTextFile(new URL("protocol.md", docsDir));

/** The JSON body of the http block that starts with `POST /v1/enroll`. */
function enrolmentExample(): Record<string, unknown> {
  const m = /```http\nPOST \/v1\/enroll HTTP\/1\.1\n[\s\S]*?\n\n([\s\S]*?)\n```/.exec(protocol);
  assert.ok(m, "docs/protocol.md has no enrolment example");
  return JSON.parse(m[1]!);
}

/** Whether `s` is unpadded base64url that decodes to bytes encoding back to `s` exactly. */
function canonicalBase64Url(s: string): boolean {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return false;
  const bytes = Uint8Array.from(
    atob(s.replace(/-/g, "+").replace(/_/g, "/")),
    (c) => c.charCodeAt(0),
  );
  const back = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
  return back === s;
}

Deno.test("canonicalBase64Url() refuses the old example key whose padding bits are not zero", () => {
  assert.equal(canonicalBase64Url("Yq3kW1cXyP7tJ0bR2sN5vL8mA4dF6hG9jK1zQ3wE5rT"), false);
  assert.equal(canonicalBase64Url("-_gjqxPD1QqsMCDf-GvYqKZ9UiDv9uL44O_IWTd8BFg"), true);
});

Deno.test("every key in a JSON example of docs/*.md is canonical unpadded base64url", async () => {
  let seen = 0;
  for await (const f of Deno.readDir(docsDir)) {
    if (!f.name.endsWith(".md")) continue;
    const text = await Deno.readTextFile(new URL(f.name, docsDir));
    for (const m of text.matchAll(/"(\w*[kK]ey)"\s*:\s*"([A-Za-z0-9_-]{40,})"/g)) {
      seen++;
      assert.ok(canonicalBase64Url(m[2]!), `docs/${f.name}: "${m[1]}": "${m[2]}" is not canonical`);
    }
  }
  assert.ok(seen >= 2, `only ${seen} keys found: the pattern no longer matches the docs`);
});

dbTest("the NOC accepts docs/protocol.md's enrolment example as written", async ({ db }) => {
  const noc = await testNoc(db);
  const body = { ...enrolmentExample(), token: await noc.enrollmentToken() };
  const res = await noc.app.request("http://noc.example.net/v1/enroll", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  assert.ok(JSON.parse(text).uid);
});
