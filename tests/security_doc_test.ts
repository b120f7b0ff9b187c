/** docs/security.md names, for every threat, tests that exist. */
import assert from "node:assert/strict";

Deno.test("every test docs/security.md names exists", async () => {
  const doc = await Deno.readTextFile(new URL("../docs/security.md", import.meta.url));
  const sources: string[] = [];
  for await (const e of Deno.readDir(new URL(".", import.meta.url))) {
    if (e.isFile && e.name.endsWith(".ts")) {
      sources.push(await Deno.readTextFile(new URL(e.name, import.meta.url)));
    }
  }
  const all = sources.join("\n");
  const sections = doc.split(/^### /m).slice(1);
  assert.ok(sections.length >= 16, `${sections.length} threats`);
  const missing: string[] = [];
  for (const whole of sections) {
    const section = whole.split(/^## /m)[0]!;
    const title = section.split("\n")[0]!;
    // Every "**Tests:**" list of the section, each up to its "**Not yet:**" if it has one.
    const lists = section.split("**Tests:**").slice(1);
    assert.ok(lists.length > 0, `"${title}" names no test`);
    const names = lists.flatMap((tests) =>
      [...tests.replace(/\*\*Not yet:\*\*[\s\S]*/, "").matchAll(/`([^`]+)`/g)].map((m) => m[1]!)
    );
    assert.ok(names.length > 0, `"${title}" names no test`);
    // A database test registered by hand names its backend: "<name> [pglite]" counts as "<name>";
    // one run once per variant names it in a template: `<name> (${variant})`.
    for (const n of names) {
      if (
        !all.includes(`"${n}"`) && !all.includes(`"${n} [pglite]"`) &&
        !all.includes("`" + n + " (${")
      ) {
        missing.push(`${title}: ${n}`);
      }
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("docs/security.md keeps a section for each threat of issue 16", async () => {
  const doc = await Deno.readTextFile(new URL("../docs/security.md", import.meta.url));
  const titles = new Set([...doc.matchAll(/^### (.+)$/gm)].map((m) => m[1]!.trim()));
  // Issue 16's items, each under the section that names its threat (and its test).
  const threats: Array<[item: string, title: string, mustMention: string]> = [
    ["1", "An appliance fetching what it was not given", "not_in_catalog"],
    ["2", "A local server steering catalogs with download records", "refusedRecords"],
    ["3", "Install outcomes from appliances never sent a release", "uncounted"],
    ["4", "Revocation and local servers", "revoked_appliance"],
    ["5", "Key compromise", "NOC_RELEASE_KEYS_ONLY"],
    ["5", "The admin token alone running code in release-keys-only mode", "endorsement"],
    ["6", "A key rotation that strands the fleet", "noc-keys/1"],
    ["7", "Rollback", "Catalog-Binding"],
    ["8", "A schedule set by a man in the middle", "intervalS"],
    ["9", "Forged or replayed appliance requests", "wrong_authority"],
    ["10", "Work before authentication", "/ui/releases/publish"],
    ["11", "Refusal flooding", "NOC_RATE_REFUSALS_PER_MIN"],
    ["12", "History flooding", "NOC_HISTORY_MIN_GAP_S"],
    ["13", "Endless data", "ERROR_BODY_LIMIT"],
  ];
  for (const [item, title, mention] of threats) {
    assert.ok(titles.has(title), `item ${item}: no section "${title}"`);
    // The section: from its title to the next title of any level.
    const section = doc.slice(doc.indexOf(`### ${title}\n`)).split(/\n##+ /)[0]!;
    assert.ok(section.includes(mention), `item ${item}: "${title}" does not mention ${mention}`);
  }
});
