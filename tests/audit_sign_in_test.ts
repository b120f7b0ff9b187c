// deno-lint-ignore-file no-explicit-any
/**
 * Issue 19's attacker review, F4, over real HTTP against a real NOC: a failed console sign-in
 * records the name typed only when an operator of that name exists — a password typed into the
 * name field is never stored — else `(unknown name)`; a name no database could store (a NUL) is
 * a failed sign-in, not a 500; and a sign-in whose record cannot be written opens no session.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { type ServedNoc, serveNoc } from "./_agent.ts";

/** Posts the sign-in form of `noc` with `fields`; returns the answer (redirects not followed). */
async function signInWith(
  noc: ServedNoc,
  fields: Record<string, string>,
): Promise<Response> {
  const page = await fetch(`${noc.url}/ui/login`);
  const cookie = page.headers.get("set-cookie")!.split(";")[0]!;
  const csrf = (await page.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
  return await fetch(`${noc.url}/ui/login`, {
    method: "POST",
    redirect: "manual",
    headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ _csrf: csrf, next: "/ui", ...fields }),
  });
}

async function signIns(noc: ServedNoc): Promise<any[]> {
  const res = await fetch(`${noc.url}/v1/admin/audit?path=/ui/login`, {
    headers: { authorization: `Bearer ${noc.adminToken}` },
  });
  return (await res.json()).items;
}

const password = "correct horse battery";

dbTest(
  "a failed sign-in records the name only when such an operator exists; a password typed as a name is not stored",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const made = await fetch(`${noc.url}/v1/admin/operators`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${noc.adminToken}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ name: "vera", role: "viewer", password }),
      });
      assert.equal(made.status, 201);
      const secret = "Tr0ub4dor&3-horse";
      for (
        const fields of [
          { name: secret, password: "x" }, // the password typed into the name field
          { name: "Vera", password: "wrong password" }, // a real operator, wrong password
          { name: "nobody", password: "wrong password" },
          { name: "ve\u0000ra", password }, // a name no database could store
        ]
      ) {
        const res = await signInWith(noc, fields);
        await res.body?.cancel();
        assert.equal(res.status, 303, JSON.stringify(fields));
        assert.match(res.headers.get("location")!, /failed=1/);
      }
      const records = await signIns(noc);
      assert.deepEqual(
        records.map((r) => [r.actor, r.error, r.role]).reverse(),
        [
          ["(unknown name)", "sign_in_failed", null],
          ["vera", "sign_in_failed", null],
          ["(unknown name)", "sign_in_failed", null],
          ["(unknown name)", "sign_in_failed", null],
        ],
      );
      const all = await (await fetch(`${noc.url}/v1/admin/audit.csv`, {
        headers: { authorization: `Bearer ${noc.adminToken}` },
      })).text();
      assert.equal(all.includes(secret), false, "the typed password is nowhere in the log");
      assert.equal(all.toLowerCase().includes("tr0ub4dor"), false);

      // A sign-in that works is recorded under the operator's name.
      const ok = await signInWith(noc, { name: "vera", password });
      await ok.body?.cancel();
      assert.equal(ok.headers.get("location"), "/ui");
      assert.equal((await signIns(noc))[0].actor, "vera");
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "a sign-in whose audit record cannot be written opens no session (503)",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      await db.sql`alter table audit_log add constraint refuse_all check (false) not valid`;
      const res = await signInWith(noc, { token: noc.adminToken });
      const page = await res.text();
      assert.equal(res.status, 503);
      assert.match(page, /audit log cannot be written/);
      const cookie = res.headers.getSetCookie().find((h) => h.startsWith("noc_session="));
      assert.equal(cookie, undefined, "no session cookie is set");
      const [row] = await db.sql<{ n: number }>`select count(*)::int as n from admin_sessions`;
      assert.equal(row!.n, 0, "the session opened is closed again");
    } finally {
      await noc.close();
    }
  },
);
