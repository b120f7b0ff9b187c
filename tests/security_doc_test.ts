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
    // A database test registered by hand names its backend: "<name> [pglite]" counts as "<name>".
    for (const n of names) {
      if (!all.includes(`"${n}"`) && !all.includes(`"${n} [pglite]"`)) {
        missing.push(`${title}: ${n}`);
      }
    }
  }
  assert.deepEqual(missing, []);
});
