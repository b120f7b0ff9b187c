/**
 * Resource revisions (migration 027): the check a change makes, in its transaction, of the
 * `If-Match` it was sent with against the row's current revision (read under its row lock). The
 * admin API parses the header and answers the refusal (noc/http/admin/revisions.ts).
 *
 * @module
 */

/** A parsed `If-Match`: any current representation (`*`), or the revisions it names. */
export type IfMatch = { any: true } | { any: false; revisions: readonly number[] };

/** Thrown inside a change's transaction when `If-Match` names no current revision. */
export class StaleRevision extends Error {
  /** `revision`: the current one (null: the resource does not exist). */
  constructor(readonly revision: number | null) {
    super("stale revision");
  }
}

/**
 * Throws {@link StaleRevision} unless `m` (null: no `If-Match`, anything goes) matches
 * `revision`, the resource's current revision read under its row lock (null: it does not
 * exist, which no `If-Match` matches).
 */
export function expectRevision(m: IfMatch | null, revision: number | null | undefined): void {
  if (m === null) return;
  const cur = revision ?? null;
  if (cur === null) throw new StaleRevision(null);
  if (m.any) return;
  if (!m.revisions.includes(Number(cur))) throw new StaleRevision(Number(cur));
}
