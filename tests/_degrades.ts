// deno-lint-ignore-file no-explicit-any
/**
 * Helpers for the issue 21 agent tests (tests/agent_degrades_*_test.ts): a served NOC on a fresh
 * PGlite database with chosen settings, and the appliance as that NOC shows it.
 */
import type { Settings } from "../noc/config.ts";
import { migratedDb } from "./_harness.ts";
import { type AgentBox, type ServedNoc, serveNoc } from "./_agent.ts";

/** A served NOC (tests/_agent.ts) on its own PGlite database for `fn`, closed afterwards. */
export async function withServedNoc(
  settings: Partial<Settings>,
  fn: (noc: ServedNoc) => Promise<void>,
): Promise<void> {
  const db = await migratedDb();
  const noc = await serveNoc(db, settings);
  try {
    await fn(noc);
  } finally {
    await noc.close();
    await db.close();
  }
}

/** The box's appliance UID (from its identity). */
export async function uidOf(box: AgentBox): Promise<string> {
  return JSON.parse(await Deno.readTextFile(`${box.state}/identity.json`)).uid;
}

/** The appliance as the NOC's admin API shows it. */
export async function detail(noc: ServedNoc, box: AgentBox): Promise<any> {
  const r = await noc.admin("GET", `/v1/admin/appliances/${await uidOf(box)}`);
  if (r.status !== 200) throw new Error(`appliance not shown: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Writes `count` executable init.d plug-ins, each printing `{"blob": "<bytes x's>"}`. */
export async function bulkyPlugins(state: string, count: number, bytes: number): Promise<void> {
  await Deno.mkdir(`${state}/init.d`, { recursive: true });
  for (let i = 0; i < count; i++) {
    const n = String(i + 10).padStart(2, "0");
    await Deno.writeTextFile(
      `${state}/init.d/${n}-app${n}.sh`,
      `#!/bin/sh\nprintf '{"blob":"%s"}' "$(head -c ${bytes} /dev/zero | tr '\\0' x)"\n`,
      { mode: 0o755 },
    );
  }
}
