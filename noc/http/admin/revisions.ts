/**
 * Versions of what operators change (issue 22 item 2). Every admin-mutable resource has a
 * `revision` (migration 027; a phased rollout's is `rollouts.version`), answered in its JSON and,
 * for one resource, as its `ETag: "<revision>"`. A change (`PATCH`, `PUT`, `DELETE`, an action
 * such as `POST …/revoke`) may send `If-Match` (RFC 9110 §13.1.1: `*`, or a list of strong entity
 * tags): when it names no current revision the change is refused with 409 `stale_revision`
 * (`revision`: the current one, `current`: the resource as a `GET` answers it) and nothing is
 * written. Without `If-Match` the last writer wins, as before. A malformed `If-Match` is 400
 * `invalid_header`.
 *
 * The check runs in the change's transaction, after the row is locked (`select … for update`),
 * so two changes sent against the same revision cannot both pass.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { type IfMatch, StaleRevision } from "../../services/revisions.ts";

export { expectRevision, type IfMatch, StaleRevision } from "../../services/revisions.ts";

const tagRe = /^(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"$/;

/**
 * The request's `If-Match`, or null when it has none.
 *
 * @throws ApiError 400 `invalid_header` — not `*` nor a comma-separated list of entity tags.
 */
export function ifMatchOf(c: Context): IfMatch | null {
  const raw = c.req.header("if-match");
  return raw === undefined ? null : parseIfMatch(raw);
}

/**
 * Middleware: refuses (400 `invalid_header`) a request whose `If-Match` is malformed before its
 * path or body is read, whatever route it is for.
 */
export function ifMatchGuard(): MiddlewareHandler {
  return async (c, next) => {
    ifMatchOf(c);
    await next();
  };
}

/** `If-Match` text as {@link IfMatch}; see {@link ifMatchOf}. */
export function parseIfMatch(raw: string): IfMatch {
  const text = raw.trim();
  if (text === "*") return { any: true };
  const parts = text.split(",").map((p) => p.trim()).filter((p) => p !== "");
  const revisions: number[] = [];
  if (parts.length === 0 || parts.length > 64) throw malformed(raw);
  for (const p of parts) {
    const m = tagRe.exec(p);
    if (!m) throw malformed(raw);
    // A weak tag never matches (If-Match compares strongly); a tag that is not a revision of
    // ours is well formed but matches nothing.
    if (m[1] === undefined && /^[0-9]{1,15}$/.test(m[2]!)) revisions.push(Number(m[2]));
  }
  return { any: false, revisions };
}

function malformed(raw: string): ApiError {
  const message = 'must be * or a list of entity tags, e.g. "3" (the ETag a GET answered)';
  return new ApiError(
    400,
    "invalid_header",
    `Header "If-Match": ${message}; got ${JSON.stringify(raw.slice(0, 80))}`,
    { issues: [{ path: "If-Match", message }] },
  );
}

/** The entity tag of revision `revision`: `"3"`. */
export const etagOf = (revision: number): string => `"${revision}"`;

/** Sets the answer's `ETag` to revision `revision`. */
export function setEtag(c: Context, revision: number | null | undefined): void {
  if (revision !== null && revision !== undefined) c.header("ETag", etagOf(Number(revision)));
}

/**
 * Runs `work` (a change that calls {@link expectRevision} in its transaction); a
 * {@link StaleRevision} becomes 409 `stale_revision` with `revision` and `current` (read by
 * `current` once the transaction has rolled back: the resource as a `GET` answers it, or null
 * when it no longer exists). `what` names the resource in the message ("Assignment 12").
 */
export async function refusingStale<T>(
  what: string,
  m: IfMatch | null,
  work: () => Promise<T>,
  current: () => Promise<unknown>,
): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof StaleRevision)) throw err;
    let now: unknown = null;
    try {
      now = await current();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    const asked = m === null || m.any ? "*" : `revision ${m.revisions.join(" or ")}`;
    throw new ApiError(
      409,
      "stale_revision",
      err.revision === null
        ? `${what} no longer exists: nothing was changed`
        : m !== null && !m.any && m.revisions.length === 0
        // A weak or non-revision tag never matches (RFC 9110 §13.1.1): nothing changed, it is the
        // tag that is not one of ours (newcomer review 22).
        ? `${what} is at revision ${err.revision}; If-Match named no revision (a weak W/"…" or ` +
          `unknown entity tag never matches): nothing was changed; send its ETag as given, ` +
          `e.g. If-Match: ${etagOf(err.revision)}`
        : `${what} is at revision ${err.revision}, not ${asked}: it changed since you read it, ` +
          "and nothing was changed; read it again (current) and decide",
      { revision: err.revision, current: now },
      err.revision === null ? {} : { ETag: etagOf(err.revision) },
    );
  }
}
