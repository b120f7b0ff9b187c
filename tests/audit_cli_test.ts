/**
 * The CLI against a real NOC process: an admin creates an operator and gives them a personal
 * token; the operator works and is refused what their role does not allow; `noc audit --csv`
 * prints every change as RFC 4180 CSV (quoting, formula cells neutralised, a failed sign-in's
 * unknown name not recorded), and `noc audit` lists them for people.
 */
import assert from "node:assert/strict";
import { runCli, startNoc } from "./_process.ts";
import { parseCsv } from "./_audit_csv.ts";

Deno.test("noc operator and noc audit --csv against a real NOC process", async () => {
  const data = await Deno.makeTempDir({ prefix: "noc-audit-cli-" });
  const noc = await startNoc({ NOC_DATA_DIR: data });
  try {
    const admin = { NOC_URL: noc.url, NOC_TOKEN: noc.adminToken };
    const add = await runCli(["operator", "add", "olga", "--role", "operator"], admin);
    assert.equal(add.code, 0, add.err);
    assert.match(add.out, /Operator olga \(operator\) created\.\nPassword \(shown once/);
    const token = await runCli(["operator", "token", "olga", "--label", "ci"], admin);
    assert.equal(token.code, 0, token.err);
    const secret = token.out.match(/noc_op_[A-Za-z0-9_-]{43}/)![0];
    const olga = { NOC_URL: noc.url, NOC_TOKEN: secret };
    assert.equal((await runCli(["whoami"], olga)).out.trim(), "olga (operator)");

    // A label a spreadsheet would read as a formula, with a comma and a quote in it.
    const formula = '=HYPERLINK("http://x.example","click"), really';
    const made = await runCli(["tokens", "create", "--label", formula], olga);
    assert.equal(made.code, 0, made.err);
    const refused = await runCli(["operator", "add", "mallory", "--role", "admin"], olga);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /403: POST \/v1\/admin\/operators needs the admin role/);

    const csv = await runCli(["audit", "--csv"], olga);
    assert.equal(csv.code, 0, csv.err);
    const rows = parseCsv(csv.out.replace(/\n$/, "\r\n"));
    const [head, ...records] = rows;
    assert.deepEqual(head!.slice(0, 6), ["id", "at", "actor", "role", "via", "method"]);
    const col = (name: string) => head!.indexOf(name);
    const byOlga = records.filter((r) => r[col("actor")] === "olga");
    assert.deepEqual(
      byOlga.map((r) => `${r[col("method")]} ${r[col("route")]} ${r[col("status")]}`),
      ["POST /v1/admin/operators 403", "POST /v1/admin/enrollment-tokens 201"],
    );
    const summary = byOlga[1]![col("summary")]!;
    assert.deepEqual(JSON.parse(summary), { body: { label: formula } });
    assert.equal(byOlga[1]![col("user_agent")]!.startsWith("noc-cli"), true);
    assert.equal(byOlga[1]![col("address")], "127.0.0.1");
    // The admin's own changes, by the admin token's label; no password or token in the export.
    const byAdmin = records.filter((r) => r[col("role")] === "admin");
    assert.deepEqual(
      byAdmin.map((r) => r[col("route")]).sort(),
      ["/v1/admin/operators", "/v1/admin/operators/:name/tokens"],
    );
    assert.equal(csv.out.includes(secret), false);
    assert.equal(/"password":"[^[]/.test(csv.out), false, "passwords are redacted");
    // A failed sign-in records the name typed only when such an operator exists: a formula (or a
    // password) typed as a name is never recorded. A user agent lands in its cell as sent: its
    // formulas — at the start and after a `;` — are neutralised with a ', and it is quoted.
    const page = await fetch(`${noc.url}/ui/login`);
    const cookie = page.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = (await page.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
    const typed = '=hyperlink("http://x.example","a")';
    const agent = "=1+1;=cmd|' /C calc'!A0";
    const failed = await fetch(`${noc.url}/ui/login`, {
      method: "POST",
      redirect: "manual",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded", "user-agent": agent },
      body: new URLSearchParams({ _csrf: csrf, name: typed, password: "wrong password!" }),
    });
    await failed.body?.cancel();
    assert.match(failed.headers.get("location")!, /failed=1/);
    const again = await runCli(["audit", "--csv", "--path", "/ui/login"], olga);
    assert.equal(again.code, 0, again.err);
    assert.equal(again.out.includes("hyperlink"), false, "the typed name is not recorded");
    assert.ok(again.out.includes(`"'=1+1;'=cmd|' /C calc'!A0"`), again.out);
    const [, signIn] = parseCsv(again.out.replace(/\n$/, "\r\n"));
    assert.equal(signIn![col("actor")], "(unknown name)");
    assert.equal(signIn![col("user_agent")], "'=1+1;'=cmd|' /C calc'!A0");
    assert.equal(signIn![col("error")], "sign_in_failed");
    assert.equal(signIn![col("role")], "");

    const people = await runCli(["audit", "--actor", "olga", "--limit", "1"], olga);
    assert.equal(people.code, 0, people.err);
    assert.match(
      people.out,
      /^\S+\tolga \(operator, api\)\tPOST \/v1\/admin\/operators\t403 forbidden_role\tfrom 127\.0\.0\.1\n/,
    );
    assert.match(people.out, /More: --cursor \d+/);
  } finally {
    await noc.stop();
    await Deno.remove(data, { recursive: true }).catch(() => {});
  }
});
