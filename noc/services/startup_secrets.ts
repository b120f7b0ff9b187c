/**
 * Start-up secrets: the NOC signing key, the admin token and (in dev mode) an
 * enrolment token — from configuration, or created once and kept in the data
 * folder when the NOC may write local files (no DATABASE_URL, or dev mode).
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { AppDeps } from "./deps.ts";
import { ensureAdminToken, revokeOtherAdminTokens } from "./admin_tokens.ts";
import { newSeed } from "../../protocol/keys.ts";
import { type NocKeys, nocKeysFromSeed } from "./signing_keys.ts";
import { hashToken, newToken } from "./tokens.ts";
import { createEnrollmentToken } from "./enrollment_tokens.ts";
import type { Db } from "../db/db.ts";
import { currentChainKid, KeyChainError, recordKeyChain } from "./key_chain.ts";

/** Whether this configuration may keep secrets in the data folder. */
export function mayWriteDataDir(config: Config): boolean {
  return config.dev || !config.databaseUrl;
}

async function readOrCreateSecret(
  path: string,
  create: () => string,
  beforeCreate?: () => Promise<void>,
): Promise<{ value: string; created: boolean }> {
  try {
    return { value: (await Deno.readTextFile(path)).trim(), created: false };
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await beforeCreate?.();
  const value = create();
  await Deno.writeTextFile(path, value + "\n", { mode: 0o600, createNew: true });
  return { value, created: true };
}

/** A secret and where it came from, named as the operator would (for messages). */
interface Sourced {
  value: string;
  /** `NOC_SIGNING_KEY`, `NOC_SIGNING_KEY_FILE (<path>)` or `the data folder's file <path>`. */
  source: string;
}

async function secret(
  config: Config,
  value: string | undefined,
  file: string | undefined,
  name: string,
  dataFile: string,
  beforeCreate?: (path: string) => Promise<void>,
): Promise<Sourced> {
  if (value) return { value, source: name };
  if (file) {
    return { value: (await Deno.readTextFile(file)).trim(), source: `${name}_FILE (${file})` };
  }
  if (!mayWriteDataDir(config)) {
    throw new Error(
      `${name} (or ${name}_FILE) is required when DATABASE_URL is set; create one with: deno task keygen`,
    );
  }
  await Deno.mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const path = `${config.dataDir}/${dataFile}`;
  const made = await readOrCreateSecret(path, newSeed, beforeCreate && (() => beforeCreate(path)));
  return { value: made.value, source: `the data folder's file ${path}` };
}

/** The key-list statement of a rotation (NOC_KEY_STATEMENT or its file), parsed, or null. */
async function keyStatement(config: Config): Promise<unknown | null> {
  const text = config.keyStatement ??
    (config.keyStatementFile ? await Deno.readTextFile(config.keyStatementFile) : undefined);
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(
      "NOC_KEY_STATEMENT is not JSON (give the output of deno task keygen statement)",
    );
  }
}

/**
 * Loads the NOC keys: the signing key (NOC_SIGNING_KEY, NOC_SIGNING_KEY_FILE,
 * or the data folder) and the master secret (NOC_MASTER_KEY, …_FILE, or the
 * data folder). With `db`, the signing key is recorded in the key chain (a
 * rotation needs NOC_KEY_STATEMENT; see noc/services/key_chain.ts) and the
 * chain's earlier keys are published.
 */
export async function loadNocKeys(config: Config, db?: Db): Promise<NocKeys> {
  const signing = await secret(
    config,
    config.signingKey,
    config.signingKeyFile,
    "NOC_SIGNING_KEY",
    "noc-signing-key",
    // A database that already has a key chain has a key its appliances pin: a fresh random key
    // in its data folder would only be refused (no statement can make it current), so none is
    // written and the operator is told where the seed belongs.
    db && (async (path) => {
      const tip = await currentChainKid(db);
      if (tip !== null) {
        throw new KeyChainError(
          `The data folder's file ${path} is missing, but the database already has a key chain ` +
            `(current key "${tip}"): no new key is made, appliances would refuse it. Put the ` +
            `current key's seed in ${path}, or give it in NOC_SIGNING_KEY_FILE`,
        );
      }
    }),
  );
  const master = await secret(
    config,
    config.masterKey,
    config.masterKeyFile,
    "NOC_MASTER_KEY",
    "noc-master-key",
  );
  const keys = await nocKeysFromSeed(signing.value, {
    retired: config.retiredKeys,
    master: master.value,
    releaseKeysOnly: config.releaseKeysOnly,
  });
  return db ? await recordKeyChain(db, keys, await keyStatement(config), signing.source) : keys;
}

/** The admin token to print, if this start-up may show one. */
export interface AdminBootstrap {
  /** The token's text (dev mode), or null. */
  token: string | null;
  /** Where it is kept, when in the data folder. */
  path: string | null;
  /** Whether the database holds any unrevoked admin token now (false: nobody can administer). */
  stored: boolean;
}

/** Registers NOC_ADMIN_TOKEN, or the data folder's admin token (created once). */
export async function bootstrapAdminToken(deps: AppDeps, config: Config): Promise<AdminBootstrap> {
  const now = deps.clock.now();
  if (config.adminToken) {
    await ensureAdminToken(deps.db, config.adminToken, "NOC_ADMIN_TOKEN", now);
    // Rotation: a previous NOC_ADMIN_TOKEN stops working once the NOC starts with a new one.
    await revokeOtherAdminTokens(deps.db, "NOC_ADMIN_TOKEN", config.adminToken, now);
    return { token: config.dev ? config.adminToken : null, path: null, stored: true };
  }
  if (!mayWriteDataDir(config)) {
    const [row] = await deps.db.sql<{ n: number }>`
      select count(*)::int as n from admin_tokens where revoked_at is null`;
    return { token: null, path: null, stored: (row?.n ?? 0) > 0 };
  }
  await Deno.mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const path = `${config.dataDir}/admin-token`;
  const { value } = await readOrCreateSecret(path, () => newToken("admin"));
  await ensureAdminToken(deps.db, value, "data folder", now);
  await revokeOtherAdminTokens(deps.db, "data folder", value, now);
  return { token: config.dev ? value : null, path, stored: true };
}

/**
 * Dev mode: an unused enrolment token kept in the data folder, replaced when
 * it has been used, revoked or has expired.
 */
export async function devEnrollmentToken(
  deps: AppDeps,
  config: Config,
): Promise<{ token: string; expiresAt: Date }> {
  await Deno.mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const path = `${config.dataDir}/enrollment-token`;
  try {
    const token = (await Deno.readTextFile(path)).trim();
    const [row] = await deps.db.sql<{ expires_at: Date }>`
      select expires_at from enrollment_tokens
      where token_hash = ${await hashToken(token)} and used_at is null and revoked_at is null
        and expires_at > ${deps.clock.now()}`;
    if (row) return { token, expiresAt: row.expires_at };
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const { token, row } = await createEnrollmentToken(deps, {
    ttlS: 7 * 86400,
    label: "deno task dev",
  });
  await Deno.writeTextFile(path, token + "\n", { mode: 0o600 });
  return { token, expiresAt: row.expires_at };
}
