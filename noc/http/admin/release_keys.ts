/**
 * `/v1/admin/release-keys`: offline release keys that may sign packages and fileinfo (required in
 * release-keys-only mode). A new key is registered only with an endorsement by a key that may sign
 * packages already (protocol/release_keys.ts): in release-keys-only mode an existing release key's,
 * made offline; otherwise the NOC endorses it itself. In release-keys-only mode the first key is one
 * the operator vouches for in configuration (`NOC_RELEASE_KEY_ROOTS`), never the admin token alone.
 * Retiring a key only takes trust away: it never gives the NOC's key "package" use back. A key
 * that live assignments need (packages it signed, fileinfo it signed) is retired only with
 * `?force=true`; otherwise 409 `in_use` names them (noc/services/dependents.ts).
 */
import { dependentsBody, refuseInUse, releaseKeyDependents } from "../../services/dependents.ts";
import { lockAssignments } from "../../services/component_limit.ts";
import { Hono } from "hono";
import { ApiError } from "../../../protocol/http/errors.ts";
import { kidParam, limitQuery, retireKeyQuery } from "../../../protocol/schemas.ts";
import { decodeCursor, nameKey, pageOf } from "./paging.ts";
import { expectRevision, ifMatchOf, refusingStale } from "./revisions.ts";
import { validate } from "../../../protocol/http/validate.ts";
import { keyId } from "../../../protocol/keys.ts";
import { parsePublicKey } from "../../../protocol/crypto/ed25519.ts";
import { readEd25519PublicKey } from "../../../protocol/crypto/pem.ts";
import { z } from "zod";
import {
  canonicalNotAfter,
  endorsedReleaseKeySchema,
  endorseKey,
  type Endorsement,
  endorsementProblem,
} from "../../../protocol/release_keys.ts";
import { bumpCatalogEpoch } from "../../services/catalogs.ts";
import {
  packageSigners,
  publishedKeys,
  RETIRED_KEY_LISTED_DAYS,
} from "../../services/publishing.ts";
import { CATALOG_KEYS_MAX } from "../../../protocol/catalog.ts";
import { nocSignsPackages } from "../../services/fileinfo.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";

/**
 * `POST /v1/admin/release-keys`: {@link endorsedReleaseKeySchema} with the public key also in PEM
 * (SubjectPublicKeyInfo, `openssl pkey -in k.pem -pubout`), at most 4096 characters. The NOC
 * stores and answers the raw key in base64url; an endorsement signs that form.
 */
export const releaseKeyBodySchema = endorsedReleaseKeySchema.extend({
  publicKey: z.string().max(4096).regex(/^[A-Za-z0-9_-]{43}$|-----BEGIN /, {
    message: "must be 32 bytes in unpadded base64url, or a PEM public key",
  }).describe(
    "Ed25519 public key: 32 bytes in unpadded base64url, or PEM (SubjectPublicKeyInfo)",
  ),
});

interface KeyRow {
  kid: string;
  public_key: string;
  label: string;
  created_at: Date;
  not_after: Date | null;
  endorsement: string | null;
  revision: number;
}

/** A release key as the list answers it. */
function keyJson(r: KeyRow): Record<string, unknown> {
  return {
    kid: r.kid,
    publicKey: r.public_key,
    label: r.label,
    createdAt: r.created_at.toISOString(),
    notAfter: r.not_after?.toISOString() ?? null,
    endorsement: r.endorsement ? JSON.parse(r.endorsement) as Endorsement : null,
    // Its version: If-Match on DELETE /:kid (noc/http/admin/revisions.ts).
    revision: Number(r.revision),
  };
}

/** `/v1/admin/release-keys`: offline release keys. */
export function releaseKeyAdminRoutes(deps: AppDeps) {
  return new Hono<AppEnv>()
    .post("/", validate("json", releaseKeyBodySchema), async (c) => {
      const body = c.req.valid("json");
      let raw: Uint8Array<ArrayBuffer>;
      let k: typeof body;
      try {
        // The one form stored, endorsed and answered: a PEM key becomes its raw base64url.
        k = { ...body, publicKey: readEd25519PublicKey(body.publicKey, "the key") };
        raw = await parsePublicKey(k.publicKey, "Ed25519");
      } catch (e) {
        throw new ApiError(400, "invalid_body", `Field "publicKey": ${(e as Error).message}`, {
          issues: [{ path: "publicKey", message: (e as Error).message }],
        });
      }
      const kid = await keyId(raw);
      if (deps.keys.published.some((p) => p.kid === kid)) {
        throw new ApiError(409, "key_in_use", "That key is the NOC's own signing key");
      }
      const now = deps.clock.now();
      const notAfter = canonicalNotAfter(k.notAfter);
      let endorsement: Endorsement | null;
      if (k.endorsement) {
        const problem = await endorsementProblem(
          { publicKey: k.publicKey, notAfter },
          k.endorsement,
          await packageSigners(deps),
          now,
        );
        if (problem !== null) {
          const message = `Release key "${kid}" is not endorsed: ${problem}`;
          throw new ApiError(400, "bad_endorsement", message, {
            issues: [{ path: "endorsement", message: problem }],
          });
        }
        endorsement = k.endorsement;
      } else if (nocSignsPackages(deps.keys)) {
        endorsement = await endorseKey(k.publicKey, notAfter, deps.keys);
      } else if (deps.settings.releaseKeyRoots.includes(k.publicKey)) {
        endorsement = null;
      } else {
        const message =
          `This NOC accepts only packages signed with a release key, so a new release key must be ` +
          `endorsed by an existing one: \`deno task noc release-key add ${k.publicKey} --label … ` +
          `--endorse-with <release key>\` (the first one is listed in NOC_RELEASE_KEY_ROOTS)`;
        throw new ApiError(400, "endorsement_required", message, {
          issues: [{ path: "endorsement", message: "required in release-keys-only mode" }],
        });
      }
      // Agents accept at most CATALOG_KEYS_MAX keys in a catalog's list: a key past that would make
      // every catalog unusable, so it is refused here (retired keys leave the list after a while).
      if ((await publishedKeys(deps)).length >= CATALOG_KEYS_MAX) {
        throw new ApiError(
          409,
          "too_many_keys",
          `Catalogs already list ${CATALOG_KEYS_MAX} keys, the most an appliance accepts: retire ` +
            `a release key first (retired keys leave the list ${RETIRED_KEY_LISTED_DAYS} days later)`,
        );
      }
      const rows = await deps.db.begin(async (tx) => {
        const r = await tx`
          insert into release_keys (kid, public_key, label, created_at, not_after, endorsement)
          values (${kid}, ${k.publicKey}, ${k.label}, ${now}, ${
          notAfter ? new Date(notAfter) : null
        },
            ${endorsement ? JSON.stringify(endorsement) : null})
          on conflict do nothing returning kid`;
        if (r.length > 0) await bumpCatalogEpoch(tx);
        return r;
      });
      if (rows.length === 0) {
        throw new ApiError(409, "key_in_use", `Release key "${kid}" is already registered`);
      }
      deps.log.warn("release_key_registered", {
        kid,
        label: k.label,
        endorsedBy: endorsement?.signer ?? "configuration",
        by: c.get("admin"),
      });
      return c.json(
        { kid, publicKey: k.publicKey, label: k.label, notAfter, endorsement, revision: 1 },
        201,
      );
    })
    .get("/", validate("query", limitQuery), async (c) => {
      const { limit, cursor } = c.req.valid("query");
      // Oldest first, keyset on (created_at, kid) read from the cursor's key (keys are never
      // deleted, only retired), so the timestamp keeps the database's precision.
      const after = decodeCursor(cursor, nameKey)?.[0] ?? null;
      const rows = await deps.db.sql<KeyRow>`
        select kid, public_key, label, created_at, not_after, endorsement, revision from release_keys
        where ${after}::text is null
          or (created_at, kid) > (select k.created_at, k.kid from release_keys k where k.kid = ${after})
        order by created_at, kid limit ${limit + 1}`;
      const page = pageOf(rows, limit, (r) => [r.kid]);
      return c.json({
        nextCursor: page.nextCursor,
        items: page.rows.map(keyJson),
      });
    })
    .delete("/:kid", validate("param", kidParam), validate("query", retireKeyQuery), async (c) => {
      const { kid } = c.req.valid("param");
      const force = c.req.valid("query").force === "true";
      const now = deps.clock.now();
      const m = ifMatchOf(c);
      const { rows, affected } = await refusingStale(
        `Release key "${kid}"`,
        m,
        () =>
          deps.db.begin(async (tx) => {
            const [cur] = await tx<{ revision: number }>`
          select revision from release_keys where kid = ${kid} for update`;
            if (cur) expectRevision(m, cur.revision);
            // Once retired, agents refuse what it signed: refused while assignments need it, unless
            // forced (a compromised key), and then the answer names what stops installing.
            await lockAssignments(tx);
            const needs = await releaseKeyDependents(tx, kid);
            if (!force) {
              refuseInUse(
                `Release key "${kid}"`,
                needs,
                "publish those releases signed by another key and assign them first, or retire it " +
                  "at once with ?force=true (a compromised key): agents then refuse what it signed",
              );
            }
            const affected = force && needs.length > 0 ? dependentsBody(needs) : null;
            const r = await tx`
          update release_keys set not_after = least(coalesce(not_after, ${now}), ${now}) where kid = ${kid} returning kid`;
            if (r.length > 0) await bumpCatalogEpoch(tx);
            return { rows: r, affected };
          }),
        async () => {
          const [r] = await deps.db.sql<KeyRow>`
          select kid, public_key, label, created_at, not_after, endorsement, revision
          from release_keys where kid = ${kid}`;
          return r ? keyJson(r) : null;
        },
      );
      if (rows.length === 0) {
        throw new ApiError(404, "not_found", `Release key "${kid}" does not exist`);
      }
      deps.log.warn("release_key_retired", {
        kid,
        by: c.get("admin"),
        ...(affected ? { forced: true, affected: affected.dependents.length + affected.more } : {}),
      });
      // Forced over dependents: 200 naming them; otherwise nothing to say.
      return affected ? c.json({ kid, retired: true, ...affected }) : c.body(null, 204);
    });
}
