/**
 * Every event the agent logs is in docs/agent.md's "Logs" list, and every event the list names is
 * one the agent logs: an operator who sets up log alerts from the list sees the events of an
 * appliance that degrades (newcomer review 21c found six missing and one misnamed).
 */
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url);

/** The events the agent's source logs: `<logger>.info|warn|error("<event>"`. */
async function loggedEvents(): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const e of Deno.readDir(new URL("agent/", root))) {
    if (!e.isFile || !e.name.endsWith(".ts")) continue;
    const text = await Deno.readTextFile(new URL(`agent/${e.name}`, root));
    for (const m of text.matchAll(/\.(?:info|warn|error)\(\s*"([a-z_]+)"/g)) out.add(m[1]!);
    // A level chosen at run time: `log[level]("<event>"`.
    for (const m of text.matchAll(/log\[\w+\]\(\s*"([a-z_]+)"/g)) out.add(m[1]!);
    // Events logged through a variable name (`{ event: "…" }` or an event constant).
    for (const m of text.matchAll(/event:\s*"([a-z_]+)"/g)) out.add(m[1]!);
  }
  return out;
}

Deno.test("docs/agent.md's Logs list names every event the agent logs, and no other", async () => {
  const doc = await Deno.readTextFile(new URL("docs/agent.md", root));
  const start = doc.indexOf("## Logs");
  assert.ok(start >= 0, "docs/agent.md has a Logs section");
  const next = doc.indexOf("\n## ", start + 1);
  const section = doc.slice(start, next < 0 ? undefined : next);
  const logged = await loggedEvents();
  assert.ok(logged.size >= 40, `the scan found the agent's events (${logged.size})`);
  const missing = [...logged].filter((e) => !section.includes(`\`${e}\``)).sort();
  assert.deepEqual(missing, [], "events the agent logs that docs/agent.md's Logs list leaves out");
  const listed = [
    ...section.matchAll(/`([a-z]+(?:_[a-z]+)+|woken|offline|installed|stopping|enrolled)`/g),
  ].map((m) => m[1]!);
  const extra = [...new Set(listed)].filter((e) => !logged.has(e) && !knownFields.has(e));
  assert.deepEqual(extra, [], "events the Logs list names that the agent never logs");
});

/** Field names the Logs section mentions beside events (not events). */
const knownFields = new Set(["count", "paths", "path", "reason", "added", "removed", "kids"]);
