/**
 * Claiming a one-time enrolment token, for an appliance or a local component
 * server: found by its hash and locked, checked (purpose, revoked, used,
 * expired) and marked used, inside the enrolment's transaction — so a failed
 * enrolment leaves it unused.
 *
 * @module
 */
import type { Sql } from "../db/db.ts";
import { ApiError } from "../../protocol/http/errors.ts";
import { hashToken, newToken } from "./tokens.ts";
import type { AppDeps } from "./deps.ts";

/** What a claimed token carries to the new appliance or server. */
export interface ClaimedToken {
  /** Its id. */
  id: number;
  /** The site it places the enrolee in. */
  site: string | null;
  /** The channel (appliances). */
  channel: string | null;
  /** The tags (appliances). */
  tags: string[];
  /**
   * What an appliance enrolling with it does to an active appliance of the same name in its
   * site: `supersede` it, or be `refuse`d (409); null: the NOC's `settings.reenrolment`.
   */
  reenrolment: Reenrolment | null;
}

/** What re-enrolling a name that an active appliance holds does (`NOC_REENROLMENT`, a token's choice). */
export type Reenrolment = "supersede" | "refuse";

const purposeText = { appliance: "an appliance", "local-server": "a local component server" };

/**
 * Claims `token` for `purpose` on behalf of `usedBy` at `now` within `tx`;
 * throws a 401 {@link ApiError} (`invalid_token`, `wrong_token_purpose`,
 * `token_revoked`, `token_used`, `token_expired`) otherwise.
 */
export async function claimEnrollmentToken(
  tx: Sql,
  token: string,
  purpose: "appliance" | "local-server",
  usedBy: string,
  now: Date,
): Promise<ClaimedToken> {
  const [tok] = await tx<
    ClaimedToken & {
      purpose: "appliance" | "local-server";
      expires_at: Date;
      used_at: Date | null;
      revoked_at: Date | null;
    }
  >`select id, site, channel, tags, reenrolment, purpose, expires_at, used_at, revoked_at
     from enrollment_tokens where token_hash = ${await hashToken(token)} for update`;
  if (!tok) throw new ApiError(401, "invalid_token", "Enrolment token is not valid");
  if (tok.purpose !== purpose) {
    throw new ApiError(
      401,
      "wrong_token_purpose",
      `Enrolment token is for ${purposeText[tok.purpose]}, not ${purposeText[purpose]}`,
    );
  }
  if (tok.revoked_at) throw new ApiError(401, "token_revoked", "Enrolment token has been revoked");
  if (tok.used_at) throw new ApiError(401, "token_used", "Enrolment token has already been used");
  if (tok.expires_at.getTime() <= now.getTime()) {
    throw new ApiError(
      401,
      "token_expired",
      `Enrolment token expired at ${tok.expires_at.toISOString()}`,
    );
  }
  await tx`update enrollment_tokens set used_at = ${now}, used_by = ${usedBy} where id = ${tok.id}`;
  return {
    id: tok.id,
    site: tok.site,
    channel: tok.channel,
    tags: tok.tags,
    reenrolment: tok.reenrolment,
  };
}

/** An `enrollment_tokens` row as the admin API reads it. */
export interface TokenRow {
  id: number;
  label: string | null;
  site: string | null;
  channel: string | null;
  tags: string[];
  reenrolment: Reenrolment | null;
  purpose: "appliance" | "local-server";
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  used_by: string | null;
  revoked_at: Date | null;
  /** Its revision (migration 027), when selected. */
  revision?: number;
}

/** The admin API's JSON for a token row at `now` (status from its dates). */
export function tokenJson(r: TokenRow, now: Date): Record<string, unknown> {
  const status = r.revoked_at
    ? "revoked"
    : r.used_at
    ? "used"
    : r.expires_at.getTime() <= now.getTime()
    ? "expired"
    : "unused";
  return {
    id: r.id,
    label: r.label,
    site: r.site,
    channel: r.channel,
    tags: r.tags,
    reenrolment: r.reenrolment,
    purpose: r.purpose,
    status,
    createdAt: r.created_at.toISOString(),
    expiresAt: r.expires_at.toISOString(),
    usedAt: r.used_at?.toISOString() ?? null,
    usedBy: r.used_by,
    revokedAt: r.revoked_at?.toISOString() ?? null,
    ...(r.revision !== undefined ? { revision: Number(r.revision) } : {}),
  };
}

/** Creates an enrolment token row and returns the plaintext token (never stored). */
export async function createEnrollmentToken(
  deps: Pick<AppDeps, "db" | "clock" | "settings">,
  input: {
    ttlS?: number | undefined;
    label?: string | undefined;
    site?: string | undefined;
    channel?: string | undefined;
    tags?: string[] | undefined;
    purpose?: "appliance" | "local-server" | undefined;
    reenrolment?: Reenrolment | undefined;
  },
): Promise<{ token: string; row: TokenRow }> {
  const now = deps.clock.now();
  const token = newToken("enrollment");
  const expires = new Date(
    now.getTime() + (input.ttlS ?? deps.settings.enrollmentTokenTtlS) * 1000,
  );
  const [row] = await deps.db.sql<TokenRow>`
    insert into enrollment_tokens (token_hash, label, site, channel, tags, purpose, reenrolment,
      created_at, expires_at)
    values (${await hashToken(token)}, ${input.label ?? null}, ${input.site ?? null}, ${
    input.channel ?? null
  },
      ${input.tags ?? []}, ${input.purpose ?? "appliance"}, ${input.reenrolment ?? null}, ${now},
      ${expires})
    returning id, label, site, channel, tags, reenrolment, purpose, created_at, expires_at, used_at,
      used_by, revoked_at, revision`;
  return { token, row: row! };
}
