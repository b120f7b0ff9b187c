/**
 * Keyset paging, the one convention of every list in the admin API (docs/operations.md, "Lists
 * and paging"): `?limit=` (1–1,000, default 100) and `?cursor=` (the previous page's
 * `nextCursor`) answer `{ items, nextCursor }`; `nextCursor` is null on the last page and set
 * exactly when more rows exist. Each list orders by a unique key that never changes (an id, a
 * name), and a page is the rows after the cursor's key in that order: rows written between two
 * pages neither repeat nor push the rows that existed from one page to the next.
 *
 * A cursor is opaque to clients: the key of the last row of the page, as base64url JSON. A
 * cursor that is not one a list gave is refused (400 `invalid_query`, naming `cursor`).
 *
 * @module
 */
import { z } from "zod";
import { ApiError } from "../../../protocol/http/errors.ts";

/** Refuses a cursor no list gave: 400 `invalid_query` naming `cursor`. */
export function badCursor(): never {
  const message = "must be a cursor from a previous page (its nextCursor)";
  throw new ApiError(400, "invalid_query", `Field "cursor": ${message}`, {
    issues: [{ path: "cursor", message }],
  });
}

/** The cursor of a row whose key is `key` (the list's order, unique). */
export function encodeCursor(key: readonly (string | number)[]): string {
  const bytes = new TextEncoder().encode(JSON.stringify(key));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The key in `cursor` (absent: null, the first page), checked against `shape`; else 400. */
export function decodeCursor<T extends z.ZodType>(
  cursor: string | undefined,
  shape: T,
): z.infer<T> | null {
  if (cursor === undefined) return null;
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(cursor)) badCursor();
  let parsed: unknown;
  try {
    const bin = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(bin, (ch) => ch.charCodeAt(0)),
    ));
  } catch {
    badCursor();
  }
  const r = shape.safeParse(parsed);
  if (!r.success) badCursor();
  return r.data;
}

/** A cursor of an id-ordered list: `[id]`. */
export const idKey = z.tuple([z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)]);
/** A cursor of a name-ordered list: `[name]`. */
export const nameKey = z.tuple([z.string().min(1).max(300)]);

/** The id in an id-ordered list's cursor, or null on the first page. */
export function idAfter(cursor: string | undefined): number | null {
  return decodeCursor(cursor, idKey)?.[0] ?? null;
}

/**
 * A page from `rows`, read with `limit + 1` rows: the first `limit`, and the cursor of the last
 * of them when there was one more (null: this is the last page).
 */
export function pageOf<T>(
  rows: readonly T[],
  limit: number,
  keyOf: (row: T) => readonly (string | number)[],
): { rows: T[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  return {
    rows: page,
    nextCursor: rows.length > limit && page.length > 0
      ? encodeCursor(keyOf(page[page.length - 1]!))
      : null,
  };
}
