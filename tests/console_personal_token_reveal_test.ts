/**
 * A new personal API token travels in no cookie and no URL (the attacker review of issue 19, F9: it
 * rode in a plain-text HttpOnly cookie for 120 s). Over real HTTP: issuing one redirects to
 * `/ui/operators/:name/tokens/:id/new`, which shows it to the session that issued it alone, for
 * ten minutes, sealed at rest; a reload mints nothing; another session, a revoked token, "Done"
 * or a later visit sees none. And across the console's flows that make or handle secrets (sign-in,
 * enrolment tokens, personal tokens, passwords), no answer carries one in a cookie or a URL.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { type ServedNoc, serveNoc } from "./_agent.ts";
import { signIn } from "./_console.ts";
import { revealTtlS } from "../noc/services/console_reveals.ts";
import { fromBase64Url } from "../protocol/util/encoding.ts";

const form = { "content-type": "application/x-www-form-urlencoded" };

/** Posts a console form; the raw answer (redirects not followed). */
async function post(
  noc: ServedNoc,
  s: { session: string; csrf: string },
  path: string,
  fields: Record<string, string> = {},
): Promise<Response> {
  const res = await fetch(`${noc.url}${path}`, {
    method: "POST",
    redirect: "manual",
    headers: { ...form, cookie: s.session },
    body: new URLSearchParams({ ...fields, _csrf: s.csrf }),
  });
  await res.body?.cancel();
  return res;
}

dbTest(
  "a new personal token is shown on its own page to the session that issued it, never in a cookie",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const admin = await signIn(noc);
      await admin.post("/ui/operators", { name: "olga", role: "operator" });
      const issued = await post(noc, admin, "/ui/operators/olga/tokens", { label: "laptop" });
      assert.equal(issued.status, 303);
      assert.deepEqual(issued.headers.getSetCookie(), [], "no cookie");
      const at = issued.headers.get("location")!;
      assert.match(at, /^\/ui\/operators\/olga\/tokens\/\d+\/new$/);
      const id = at.split("/")[5]!;
      const page = await (await admin.get(at)).text();
      const token = page.match(/id="operator-token" readonly="" value="(noc_op_[^"]+)"/)![1]!;
      assert.match(page, /Personal token \d+ \(laptop\) of/);
      // It works, and it is kept sealed: nothing stored holds it in the clear.
      const me = await fetch(`${noc.url}/v1/admin/me`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.deepEqual(await me.json(), { name: "olga", role: "operator", via: "api" });
      const kept = await db.sql<{ sealed: string }>`select sealed from console_operator_reveals`;
      assert.equal(kept.length, 1);
      assert.ok(!kept[0]!.sealed.includes(token.slice("noc_op_".length)));
      // A reload shows it again and mints nothing.
      assert.ok((await (await admin.get(at)).text()).includes(token));
      const [n] = await db.sql<{ n: number }>`select count(*)::int as n from operator_tokens`;
      assert.equal(Number(n!.n), 1);
      // Not on the list page, and not to another session of the same admin.
      assert.ok(!(await (await admin.get("/ui/operators")).text()).includes(token));
      const other = await signIn(noc);
      const elsewhere = await (await other.get(at)).text();
      assert.ok(!elsewhere.includes(token));
      assert.match(elsewhere, /id="token-gone"/);
      // Not under another operator's name either.
      await admin.post("/ui/operators", { name: "pete", role: "viewer" });
      const renamed = await (await admin.get(`/ui/operators/pete/tokens/${id}/new`)).text();
      assert.ok(!renamed.includes(token));

      // "Done" stops showing it.
      assert.equal(
        await admin.post(`/ui/operators/olga/tokens/${id}/hide`),
        `Personal token ${id} is no longer shown`,
      );
      assert.match(await (await admin.get(at)).text(), /id="token-gone"/);

      // A revoked token is no longer shown; nor is any after ten minutes.
      const second = (await post(noc, admin, "/ui/operators/olga/tokens", { label: "b" }))
        .headers.get("location")!;
      const secondId = second.split("/")[5]!;
      assert.match(await (await admin.get(second)).text(), /id="operator-token"/);
      assert.equal(
        await admin.post(`/ui/operators/olga/tokens/${secondId}/revoke`, { confirmed: "yes" }),
        `Token ${secondId} of olga revoked`,
      );
      assert.match(await (await admin.get(second)).text(), /id="token-gone"/);
      const third = (await post(noc, admin, "/ui/operators/olga/tokens", { label: "c" }))
        .headers.get("location")!;
      assert.match(await (await admin.get(third)).text(), /id="operator-token"/);
      noc.clock.advance(revealTtlS + 1);
      assert.match(await (await admin.get(third)).text(), /id="token-gone"/);
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "no console answer carries a token, password or CSRF token in a cookie or a URL",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const seen: Array<{ what: string; cookies: string[]; location: string | null }> = [];
      const note = (what: string, res: Response) =>
        seen.push({
          what,
          cookies: res.headers.getSetCookie(),
          location: res.headers.get("location"),
        });
      const admin = await signIn(noc);
      const password = "a long enough password";
      // Operators: created with a password (and refused again, the form kept), a password set,
      // a personal token issued.
      note("create", await post(noc, admin, "/ui/operators", { name: "olga", password }));
      note("again", await post(noc, admin, "/ui/operators", { name: "olga", password }));
      note("password", await post(noc, admin, "/ui/operators/olga/password", { password }));
      const issued = await post(noc, admin, "/ui/operators/olga/tokens", { label: "x" });
      note("personal token", issued);
      const personal = (await (await admin.get(issued.headers.get("location")!)).text())
        .match(/value="(noc_op_[^"]+)"/)![1]!;
      // An enrolment token, and one refused (its form kept).
      const made = await post(noc, admin, "/ui/tokens", { purpose: "appliance", site: "lab" });
      note("enrolment token", made);
      const enrolment = (await (await admin.get(made.headers.get("location")!)).text())
        .match(/value="(noc_enr_[^"]+)"/)![1]!;
      note("refused token", await post(noc, admin, "/ui/tokens", { hours: "9999", label: "l" }));
      // Signing in with a password and with the personal token.
      for (
        const [what, fields] of [
          ["password sign-in", { name: "olga", password }],
          ["token sign-in", { token: personal }],
        ] as const
      ) {
        const login = await fetch(`${noc.url}/ui/login`);
        const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
        const csrf = (await login.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
        const res = await fetch(`${noc.url}/ui/login`, {
          method: "POST",
          redirect: "manual",
          headers: { ...form, cookie },
          body: new URLSearchParams({ ...fields, _csrf: csrf }),
        });
        await res.body?.cancel();
        assert.equal(res.status, 303, what);
        note(what, res);
      }
      assert.ok(seen.length >= 8);
      assert.ok(seen.some((s) => s.location?.includes("kept=")), "a kept form was looked at");
      for (const { what, cookies, location } of seen) {
        // A kept form rides in the URL as base64url JSON: read it too.
        const kept = location ? new URL(location, noc.url).searchParams.get("kept") : null;
        const form = kept ? new TextDecoder().decode(fromBase64Url(kept)) : "";
        const carried = [...cookies, location ?? "", form].join("\n");
        for (const secret of [personal, enrolment, password, admin.csrf, "noc_op_", "noc_enr_"]) {
          assert.equal(carried.includes(secret), false, `${what} carries ${secret.slice(0, 12)}…`);
          assert.equal(
            carried.includes(encodeURIComponent(secret)),
            false,
            `${what} carries ${secret.slice(0, 12)}… encoded`,
          );
        }
        // The only cookies the console sets: the session, and the sign-in form's own nonce.
        for (const c of cookies) assert.match(c, /^(noc_session|noc_login)=/, what);
      }
    } finally {
      await noc.close();
    }
  },
);
