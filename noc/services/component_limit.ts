/**
 * The NOC accepts no assignment set an appliance cannot report back (issue 21 item 2): a
 * SecureBeat lists at most {@link BEAT_MAX_COMPONENTS} installed components, so no catalog may
 * list more.
 *
 * The check is the cheap, sound one: the distinct components (kind, app, name) that any
 * assignment names, fleet-wide. A catalog lists at most one version of each component, and only
 * components some assignment names (a hold pins only components still assigned), so no
 * appliance's catalog can list more than that count, whatever its model, site, channel, tags or
 * rollout buckets. It costs one count over the assignments, under a transaction lock so two
 * concurrent assignments cannot both pass at the limit. It is conservative: a fleet whose
 * appliances each get a different subset is held to the same total (docs/protocol.md, "The
 * SecureBeat's limits"). The catalog engine caps every catalog at the same figure anyway
 * (noc/services/catalog_engine.ts `capCatalog`), with a `catalog_over_limit` notice, as a
 * backstop. A phased rollout's creation runs the same check (noc/services/phased_rollouts.ts).
 *
 * @module
 */
import type { Sql } from "../db/db.ts";
import { ApiError } from "../../protocol/http/errors.ts";
import { BEAT_MAX_COMPONENTS } from "../../protocol/schemas.ts";

/** A component an assignment names. */
export interface ComponentName {
  kind: string;
  app: string;
  name: string;
}

/**
 * Takes the transaction lock that every assignment's creation takes (through
 * {@link refuseOverComponentLimit}): a change that checks what assignments exist (a deletion
 * refused while they depend on it, noc/services/dependents.ts) holds it so none is created
 * meanwhile.
 */
export async function lockAssignments(tx: Sql): Promise<void> {
  await tx`select pg_advisory_xact_lock(hashtext(current_schema() || ':noc-assigned-components'))`;
}

/**
 * Refuses (409 `too_many_components`, naming the limit and the count) assigning `c` when the
 * distinct components assigned fleet-wide would then exceed `max`. Call it in the assignment's
 * transaction `tx`, before the insert: it takes a transaction lock that serialises the check.
 */
export async function refuseOverComponentLimit(
  tx: Sql,
  c: ComponentName,
  max = BEAT_MAX_COMPONENTS,
): Promise<void> {
  await lockAssignments(tx);
  const [row] = await tx<{ n: number; has: boolean }>`
    select (select count(*) from (select distinct kind, app, name from assignments) d)::int as n,
      exists (select 1 from assignments
              where kind = ${c.kind} and app = ${c.app} and name = ${c.name}) as has`;
  const after = row!.n + (row!.has ? 0 : 1);
  if (after > max) {
    throw new ApiError(
      409,
      "too_many_components",
      `Assigning ${c.kind} ${c.app}/${c.name} would make ${after} distinct components assigned, ` +
        `more than the ${max} an appliance's SecureBeat can report back (components limit): ` +
        "delete assignments of components no longer needed, or bundle files into a package",
      { limit: max, components: after },
    );
  }
}
