/** `/v1/admin/enrollment-tokens`: one-time enrolment tokens (shown once, stored hashed). */
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { createEnrollmentTokenSchema, idParam, limitQuery } from "../../../protocol/schemas.ts";
import { hashToken, newToken } from "../../services/tokens.ts";
import { validate } from "../../../protocol/http/validate.ts";
import type { AppDeps, AppEnv } from "../../deps.ts";

interface TokenRow {
  id: number;
  label: string | null;
  site: string | null;
  channel: string | null;
  tags: string[];
  purpose: "appliance" | "local-server";
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  used_by: string | null;
  revoked_at: Date | null;
}

function tokenJson(r: TokenRow, now: Date): Record<string, unknown> {
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
    purpose: r.purpose,
    status,
    createdAt: r.created_at.toISOString(),
    expiresAt: r.expires_at.toISOString(),
    usedAt: r.used_at?.toISOString() ?? null,
    usedBy: r.used_by,
    revokedAt: r.revoked_at?.toISOString() ?? null,
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
  },
): Promise<{ token: string; row: TokenRow }> {
  const now = deps.clock.now();
  const token = newToken("enrollment");
  const expires = new Date(
    now.getTime() + (input.ttlS ?? deps.settings.enrollmentTokenTtlS) * 1000,
  );
  const [row] = await deps.db.sql<TokenRow>`
    insert into enrollment_tokens (token_hash, label, site, channel, tags, purpose, created_at, expires_at)
    values (${await hashToken(token)}, ${input.label ?? null}, ${input.site ?? null}, ${
    input.channel ?? null
  },
      ${input.tags ?? []}, ${input.purpose ?? "appliance"}, ${now}, ${expires})
    returning id, label, site, channel, tags, purpose, created_at, expires_at, used_at, used_by, revoked_at`;
  return { token, row: row! };
}

/** The enrolment token admin routes. */
export function enrollmentTokenRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("json", createEnrollmentTokenSchema), async (c) => {
      const { token, row } = await createEnrollmentToken(deps, c.req.valid("json"));
      return c.json({ ...tokenJson(row, deps.clock.now()), token }, 201);
    })
    .get("/", validate("query", limitQuery), async (c) => {
      const { limit } = c.req.valid("query");
      const rows = await deps.db.sql<TokenRow>`
        select id, label, site, channel, tags, purpose, created_at, expires_at, used_at, used_by, revoked_at
        from enrollment_tokens order by id desc limit ${limit}`;
      const now = deps.clock.now();
      return c.json({ items: rows.map((r) => tokenJson(r, now)) });
    })
    .delete("/:id", validate("param", idParam), async (c) => {
      const { id } = c.req.valid("param");
      const [row] = await deps.db.sql<TokenRow>`
        update enrollment_tokens set revoked_at = coalesce(revoked_at, ${deps.clock.now()}) where id = ${id}
        returning id, label, site, channel, tags, purpose, created_at, expires_at, used_at, used_by, revoked_at`;
      if (!row) throw new ApiError(404, "not_found", `Enrolment token ${id} does not exist`);
      return c.json(tokenJson(row, deps.clock.now()));
    });
}
