/**
 * Nothing of a body is read before its sender may send it (the attacker review of issue 19, F2: a
 * viewer's three 200 MiB posts to the console's publish form were buffered whole before their
 * 403). Over real HTTP against a NOC with day-long body deadlines (so no answer can come from a
 * deadline), every console form and every admin API write is sent a body that never ends:
 *
 * - by a viewer (and, for the admin-only ones, an operator): answered 403 at once, and recorded;
 * - with no session or token: answered 401 at once;
 * - from another site (`Sec-Fetch-Site: cross-site`), signed in as admin: answered 403 at once.
 *
 * A `ReadableStream` body that counts what the client pulled shows the viewer's 200 MiB upload was
 * not taken in; a declared 200 MiB `Content-Length` gets the same prompt 403.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { type ServedNoc, serveNoc } from "./_agent.ts";
import { signIn } from "./_console.ts";
import { type RawAnswer, sendEndlessBody } from "./_raw_http.ts";
import {
  consoleOperations,
  consoleWriteRole,
  consoleWriteTable,
} from "../noc/http/console/mod.tsx";
import { neededRole, roleAllows } from "../noc/services/operators.ts";

const form = { "content-type": "application/x-www-form-urlencoded" };
const multipart = { "content-type": "multipart/form-data; boundary=x" };
const json = { "content-type": "application/json" };
const mib = 1024 * 1024;

/** A console or admin path with its parameters filled in (`:uid`, `{id}`, …). */
function filled(path: string): string {
  return path
    .replace(/[:{]uid\}?/g, "00000000-0000-4000-8000-000000000000")
    .replace(/[:{](id|serverId|windowId)\}?/g, "1")
    .replace(/[:{][A-Za-z]+\}?/g, "x");
}

/** Every console form (a POST), but sign-in: it is where a session comes from. */
const consoleForms = consoleOperations
  .filter((o) => o.method === "post" && o.path !== "/ui/login")
  .map((o) => o.path);

/** Sends a body that never ends; its answer, or "waited" when none came within the guard. */
async function endless(
  noc: ServedNoc,
  method: string,
  path: string,
  headers: Record<string, string>,
): Promise<RawAnswer | "waited"> {
  const sent = await sendEndlessBody(Number(new URL(noc.url).port), method, path, headers);
  try {
    return await Promise.race([
      sent.answer,
      // A guard, not a measurement: a NOC that reads first never answers at all.
      new Promise<"waited">((r) => setTimeout(() => r("waited"), 15_000)),
    ]);
  } finally {
    sent.close();
  }
}

/** Creates operator `name` with `role` and returns a signed-in console session of theirs. */
async function sessionOf(noc: ServedNoc, name: string, role: "viewer" | "operator") {
  const made = await noc.admin("POST", "/v1/admin/operators", { name, role });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const issued = await noc.admin("POST", `/v1/admin/operators/${name}/tokens`, { label: "t" });
  assert.equal(issued.status, 201, JSON.stringify(issued.body));
  const s = await signIn({ ...noc, adminToken: issued.body.token });
  return { ...s, token: issued.body.token as string };
}

Deno.test("every console form is in the console's role table, which follows the API's", () => {
  assert.ok(consoleForms.length >= 30, `only ${consoleForms.length} console forms`);
  const rowOf = (path: string) =>
    consoleWriteTable.find((r) =>
      path.slice(3) === r.prefix || path.slice(3).startsWith(`${r.prefix}/`)
    );
  assert.deepEqual(consoleForms.filter((p) => !rowOf(p)), [], "forms in no row (admin only)");
  for (const row of consoleWriteTable) {
    assert.ok(consoleForms.some((p) => rowOf(p) === row), `row ${row.prefix} matches no form`);
  }
  // The role is the most any admin API resource the form calls needs to write.
  assert.equal(consoleWriteRole("/ui/logout"), "viewer");
  assert.equal(consoleWriteRole("/ui/releases/publish"), neededRole("POST", "/packages"));
  assert.equal(consoleWriteRole("/ui/sweep"), "operator");
  assert.equal(consoleWriteRole("/ui/operators/x/tokens"), "admin");
  assert.equal(consoleWriteRole("/ui/operators/x/tokens/1/hide"), "admin");
  // Fail closed: a console path in no row needs admin.
  assert.equal(consoleWriteRole("/ui/brand-new"), "admin");
  assert.equal(consoleWriteRole("/ui/sweeping"), "admin");
});

dbTest(
  "a viewer's console form is refused for their role before any of its body is read, on every form",
  async ({ db }) => {
    const noc = await serveNoc(db, {
      bodyTimeoutS: 86400,
      uploadIdleS: 86400,
      rateRefusalsPerMin: 0,
    });
    try {
      const viewer = await sessionOf(noc, "vera", "viewer");
      const operator = await sessionOf(noc, "otto", "operator");
      let refusedForRole = 0;
      for (const path of consoleForms) {
        const url = filled(path);
        const type = path === "/ui/releases/publish" ? multipart : form;
        for (const who of [viewer, operator]) {
          const role = who === viewer ? "viewer" : "operator";
          if (roleAllows(role, consoleWriteRole(url))) continue;
          const answer = await endless(noc, "POST", url, { ...type, cookie: who.session });
          assert.notEqual(answer, "waited", `${role} ${url}: the NOC waited for the body`);
          if (answer === "waited") return;
          assert.equal(answer.status, 403, `${role} ${url}: ${answer.text.slice(0, 300)}`);
          assert.match(answer.text, new RegExp(`needs the (operator|admin) role; \\w+ has the`));
          refusedForRole++;
        }
      }
      // Every form but sign-out for a viewer; the operator pages' forms for an operator too.
      const adminForms = consoleForms.filter((p) => p.startsWith("/ui/operators")).length;
      assert.equal(refusedForRole, consoleForms.length - 1 + adminForms);
      // Each refusal is in the audit log: who, the console route, from where.
      const log = await noc.admin("GET", "/v1/admin/audit?actor=vera&limit=200");
      const publish = log.body.items.find((i: { route: string }) =>
        i.route === "/ui/releases/publish"
      );
      assert.equal(publish.via, "console");
      assert.equal(publish.status, 403);
      assert.equal(publish.error, "forbidden_role");
      assert.equal(publish.role, "viewer");
      assert.equal(publish.address, "127.0.0.1");
      const revoke = log.body.items.find((i: { route: string }) =>
        i.route === "/ui/appliances/:uid/revoke"
      );
      assert.deepEqual(revoke.targets, { uid: "00000000-0000-4000-8000-000000000000" });
      // Signing out is every role's: the viewer's session still works, and sign-out reads its form.
      assert.equal(await viewer.post("/ui/logout"), "");
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "a console form without a session, or sent from another site, is refused before its body is read",
  async ({ db }) => {
    const noc = await serveNoc(db, {
      bodyTimeoutS: 86400,
      uploadIdleS: 86400,
      rateRefusalsPerMin: 0,
    });
    try {
      const admin = await signIn(noc);
      for (const path of consoleForms) {
        const url = filled(path);
        const type = path === "/ui/releases/publish" ? multipart : form;
        const anonymous = await endless(noc, "POST", url, type);
        assert.notEqual(anonymous, "waited", `${url}: the NOC waited for the body`);
        if (anonymous === "waited") return;
        assert.equal(anonymous.status, 401, `${url}: ${anonymous.text.slice(0, 200)}`);
        for (const site of ["cross-site", "same-site"]) {
          const forged = await endless(noc, "POST", url, {
            ...type,
            cookie: admin.session,
            "sec-fetch-site": site,
          });
          assert.notEqual(forged, "waited", `${site} ${url}: the NOC waited for the body`);
          if (forged === "waited") return;
          assert.equal(forged.status, 403, `${site} ${url}: ${forged.text.slice(0, 200)}`);
          assert.match(forged.text, /sent from another site, so nothing was done/);
        }
      }
      // The admin's own forms still work, from the console's origin.
      const ok = await fetch(`${noc.url}/ui/sweep`, {
        method: "POST",
        redirect: "manual",
        headers: { ...form, cookie: admin.session, "sec-fetch-site": "same-origin" },
        body: new URLSearchParams({ _csrf: admin.csrf }),
      });
      await ok.body?.cancel();
      assert.equal(ok.status, 303);
      // A bad CSRF token (it travels in the form) is refused once the bounded form is read.
      const bad = await fetch(`${noc.url}/ui/sweep`, {
        method: "POST",
        headers: { ...form, cookie: admin.session },
        body: new URLSearchParams({ _csrf: "forged" }),
      });
      assert.equal(bad.status, 403);
      assert.match(await bad.text(), /did not carry a valid CSRF token/);
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "a viewer's 200 MiB upload to the publish form is refused having pulled almost none of it",
  async ({ db }) => {
    const noc = await serveNoc(db, {
      bodyTimeoutS: 86400,
      uploadIdleS: 86400,
      rateRefusalsPerMin: 0,
    });
    try {
      const viewer = await sessionOf(noc, "vera", "viewer");
      const total = 200 * mib;
      let pulled = 0;
      const chunk = new Uint8Array(64 * 1024).fill(0x41);
      const head = new TextEncoder().encode(
        `--x\r\ncontent-disposition: form-data; name="_csrf"\r\n\r\n${viewer.csrf}\r\n` +
          `--x\r\ncontent-disposition: form-data; name="file"; filename="big.tar.gz"\r\n` +
          `content-type: application/gzip\r\n\r\n`,
      );
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulled === 0) {
            pulled += head.length;
            controller.enqueue(head);
          } else if (pulled < total) {
            pulled += chunk.length;
            controller.enqueue(chunk.slice());
          } else controller.close();
        },
      });
      const answer = await Promise.race([
        fetch(
          `${noc.url}/ui/releases/publish?app=demo&name=demo&version=1.0.0&kind=package`,
          {
            method: "POST",
            redirect: "manual",
            headers: { ...multipart, cookie: viewer.session },
            body,
          },
        ),
        new Promise<"waited">((r) => setTimeout(() => r("waited"), 15_000)),
      ]);
      assert.notEqual(answer, "waited", "the NOC waited for the body");
      if (answer === "waited") return;
      assert.equal(answer.status, 403);
      assert.match(await answer.text(), /needs the operator role; vera has the viewer role/);
      // What the client had pulled when the refusal came: socket buffers, not the 200 MiB.
      assert.ok(pulled < 16 * mib, `${(pulled / mib).toFixed(1)} MiB pulled`);
      await body.cancel().catch(() => {});
      const published = await noc.admin("GET", "/v1/admin/components");
      assert.equal(published.body.items.length, 0);

      // A declared length the NOC could wait for: 200 MiB, of which 64 KiB arrive.
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: Number(new URL(noc.url).port),
      });
      try {
        const port = new URL(noc.url).port;
        await conn.write(new TextEncoder().encode(
          `POST /ui/releases/publish HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n` +
            `cookie: ${viewer.session}\r\ncontent-type: multipart/form-data; boundary=x\r\n` +
            `content-length: ${total}\r\n\r\n`,
        ));
        await conn.write(chunk);
        const buf = new Uint8Array(4096);
        const n = await Promise.race([
          conn.read(buf),
          new Promise<"waited">((r) => setTimeout(() => r("waited"), 15_000)),
        ]);
        assert.notEqual(n, "waited", "the NOC waited for the declared length");
        const text = new TextDecoder().decode(buf.subarray(0, typeof n === "number" ? n : 0));
        assert.match(text, /^HTTP\/1\.1 403/);
      } finally {
        conn.close();
      }
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "every admin API write is refused for a viewer, and without a token, before its body is read",
  async ({ db }) => {
    const noc = await serveNoc(db, {
      bodyTimeoutS: 86400,
      uploadIdleS: 86400,
      rateRefusalsPerMin: 0,
    });
    try {
      const viewer = await sessionOf(noc, "vera", "viewer");
      const doc = await (await fetch(`${noc.url}/openapi.json`)).json() as {
        paths: Record<string, Record<string, unknown>>;
      };
      const writes = Object.entries(doc.paths)
        .filter(([p]) => p.startsWith("/v1/admin"))
        .flatMap(([path, ops]) =>
          Object.keys(ops).filter((m) => m !== "get" && m !== "head").map((m) => ({
            method: m.toUpperCase(),
            path: filled(path),
          }))
        );
      assert.ok(writes.length >= 25, `only ${writes.length} admin writes`);
      for (const { method, path } of writes) {
        for (
          const [who, headers, want] of [
            ["viewer", { ...json, authorization: `Bearer ${viewer.token}` }, 403],
            ["nobody", json, 401],
          ] as const
        ) {
          const answer = await endless(noc, method, path, headers);
          assert.notEqual(answer, "waited", `${who} ${method} ${path}: the NOC waited`);
          if (answer === "waited") return;
          assert.equal(answer.status, want, `${who} ${method} ${path}: ${answer.text}`);
        }
      }
    } finally {
      await noc.close();
    }
  },
);
