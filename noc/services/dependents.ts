/**
 * What live assignments depend on (issue 22 item 3): deleting or retiring something they need is
 * refused with 409 `in_use`, naming each dependent, instead of changing silently what appliances
 * install. A dependent is an assignment (with its phased rollout, if one manages it) whose
 * component needs the thing:
 *
 * - a **fileinfo** (app, name): every assignment of a file of that app and name — without it the
 *   file would be installed into the agent's state folder, not where the application reads it;
 * - a **release key** (kid): every assignment of a package the key signed, or of a file whose
 *   fileinfo it signed — once retired, agents refuse them.
 *
 * @module
 */
import { ApiError } from "../../protocol/http/errors.ts";
import type { Sql } from "../db/db.ts";

/** One assignment that depends on a thing (the `dependents` of a 409 `in_use`). */
export interface Dependent {
  /** The assignment's id. */
  assignmentId: number;
  /** Its component. */
  kind: "package" | "file";
  app: string;
  name: string;
  version: string;
  /** Its target, as `type` or `type:value` (`all`, `site:lab`). */
  target: string;
  /** The phased rollout managing it (running or paused), or null. */
  rolloutId: number | null;
}

/** At most this many dependents are named in one answer (`more` says how many others). */
export const dependentsShown = 50;

type Row = {
  id: number;
  kind: "package" | "file";
  app: string;
  name: string;
  version: string;
  target_type: string;
  target_value: string | null;
  rollout_id: number | null;
  total: number;
};

const asDependent = (r: Row): Dependent => ({
  assignmentId: r.id,
  kind: r.kind,
  app: r.app,
  name: r.name,
  version: r.version,
  target: r.target_value === null ? r.target_type : `${r.target_type}:${r.target_value}`,
  rolloutId: r.rollout_id,
});

/** The assignments of files `app`/`name` (any version), oldest first. */
export async function fileinfoDependents(tx: Sql, app: string, name: string): Promise<Row[]> {
  return await tx<Row>`
    select a.id, a.kind, a.app, a.name, a.version, a.target_type, a.target_value,
      (select r.id from rollouts r where r.assignment_id = a.id
        and r.state in ('running', 'paused')) as rollout_id,
      count(*) over ()::int as total
    from assignments a
    where a.kind = 'file' and a.app = ${app} and a.name = ${name}
    order by a.id limit ${dependentsShown}`;
}

/**
 * The assignments of packages release key `kid` signed, or of files whose fileinfo it signed,
 * oldest first.
 */
export async function releaseKeyDependents(tx: Sql, kid: string): Promise<Row[]> {
  return await tx<Row>`
    select a.id, a.kind, a.app, a.name, a.version, a.target_type, a.target_value,
      (select r.id from rollouts r where r.assignment_id = a.id
        and r.state in ('running', 'paused')) as rollout_id,
      count(*) over ()::int as total
    from assignments a
    where exists (
        select 1 from components c where c.kind = a.kind and c.app = a.app and c.name = a.name
          and c.version = a.version and c.kind = 'package' and c.signer_kid = ${kid})
      or (a.kind = 'file' and exists (
        select 1 from fileinfo f where f.app = a.app and f.name = a.name and f.signer = ${kid}))
    order by a.id limit ${dependentsShown}`;
}

/** The `dependents` body of a 409 `in_use`: each shown, and how many more there are. */
export function dependentsBody(rows: Row[]): { dependents: Dependent[]; more: number } {
  return {
    dependents: rows.map(asDependent),
    more: Math.max(0, (rows[0]?.total ?? 0) - rows.length),
  };
}

/**
 * Throws 409 `in_use` naming `what` and its dependents (at most {@link dependentsShown}, then
 * `more`) when `rows` is not empty; `hint` says what the operator can do.
 */
export function refuseInUse(what: string, rows: Row[], hint: string): void {
  if (rows.length === 0) return;
  const body = dependentsBody(rows);
  const total = rows.length + body.more;
  const first = body.dependents[0]!;
  throw new ApiError(
    409,
    "in_use",
    `${what} is used by ${total} assignment${
      total === 1 ? "" : "s"
    } (the first: #${first.assignmentId}, ` +
      `${first.kind} ${first.app}/${first.name} ${first.version} to ${first.target}): ${hint}`,
    body,
  );
}
