/** `POST /v1/installs`: an appliance reports each install's outcome; rollouts are gated on them. */
import { Hono } from "hono";
import { applianceAuth } from "../middleware/appliance_auth.ts";
import { installsSchema } from "../../../protocol/schemas.ts";
import { parseJsonBody } from "../../../protocol/http/validate.ts";
import { gateRollouts } from "../../services/rollouts.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/** The install-outcome route. */
export function installRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().post("/", applianceAuth(deps), async (c) => {
    const { results } = parseJsonBody(c, c.get("body"), installsSchema);
    const a = c.get("appliance");
    const now = deps.clock.now();
    await deps.db.begin(async (tx) => {
      for (const r of results) {
        await tx`
          insert into install_outcomes (uid, kind, app, name, version, outcome, message, reported_at)
          values (${a.uid}, ${r.kind}, ${r.app}, ${r.name}, ${r.version}, ${r.outcome}, ${
          r.message ?? null
        }, ${now})`;
      }
    });
    const paused: number[] = [];
    const seen = new Set<string>();
    for (const r of results) {
      const key = `${r.kind}/${r.app}/${r.name}/${r.version}`;
      if (r.outcome === "installed" || seen.has(key)) continue;
      seen.add(key);
      paused.push(...await gateRollouts(deps, r));
    }
    return c.json({ recorded: results.length, pausedAssignments: paused });
  });
}
