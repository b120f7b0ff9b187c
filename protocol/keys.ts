/**
 * The NOC's public keys as appliances, local servers and the CLI see them:
 * the published key record, its key id, a fresh signing seed, and the signed
 * key-list statements that carry a rotation to appliances.
 *
 * @module
 */
import { z } from "zod";
import {
  type Ed25519Key,
  ed25519Sign,
  ed25519Verify,
  importEd25519Public,
} from "./crypto/ed25519.ts";
import { fromBase64Url, sha256, toBase64Url, toHex, utf8 } from "./util/encoding.ts";

/** A public key as published to appliances. */
export interface PublishedKey {
  /** What the key may sign: catalogs (the NOC key), packages (the NOC key unless release keys are required; release keys). */
  use: Array<"catalog" | "package">;
  /** Key id: the first 16 hex digits of SHA-256 of the raw public key. */
  kid: string;
  /** Always `ed25519`. */
  alg: "ed25519";
  /** Raw public key, base64url. */
  publicKey: string;
  /** When the key stops being accepted (ISO time), or null for the current key. */
  notAfter: string | null;
}

/** The key id for a raw Ed25519 public key. */
export async function keyId(raw: Uint8Array<ArrayBuffer>): Promise<string> {
  return toHex(await sha256(raw)).slice(0, 16);
}

/** A fresh random seed, base64url. */
export function newSeed(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * A key-list statement (`noc-keys/1`): the NOC's signing keys after a rotation —
 * the new current key (`notAfter` null) and the key it replaces, retired at a
 * date — signed by the key it replaces (which appliances already pin) and by
 * the new key. Statements chain, as TUF's root versions do: an appliance that
 * pins key A walks A→B, then B→C, whatever it missed.
 */
export interface KeyStatement {
  format: "noc-keys/1";
  /** Key id of the catalog key this statement replaces (it signs the statement). */
  previous: string;
  /** When the statement was made (ISO time). */
  issuedAt: string;
  /** The NOC's catalog keys from now on: the new current key first, then retired ones. */
  keys: PublishedKey[];
}

/** A signed key-list statement: `statement` is its exact JSON text. */
export interface KeyStatementEnvelope {
  statement: string;
  /** One signature by the previous key, one by the new current key (base64url Ed25519). */
  signatures: Array<{ kid: string; signature: string }>;
}

/** The most statements a key chain may hold (a bound on what an appliance walks). */
export const MAX_KEY_CHAIN = 64;

/**
 * The most keys an appliance pins, retired ones included. The bound never makes it forget a key:
 * a retired key stays pinned as the record of its retirement (so no list can bring it back), and a
 * valid one stays valid. At the bound the appliance pins no *new* key — from a catalog's key list
 * or from a key chain — and logs `keys_refused`: whoever fills it (only a holder of the current
 * NOC key can) blocks new keys, a denial of service, and gains no trust. Re-enrolment starts over.
 */
export const MAX_PINNED_KEYS = 128;

/** A key-list statement that must not be used; `reason` is a stable code. */
export class KeyStatementError extends Error {
  /** Creates an error with a stable reason code. */
  constructor(
    readonly reason: "malformed_statement" | "wrong_previous" | "bad_statement_signature",
    message: string,
  ) {
    super(message);
  }
}

const keySchema = z.strictObject({
  kid: z.string().regex(/^[0-9a-f]{16}$/),
  alg: z.literal("ed25519"),
  use: z.array(z.enum(["catalog", "package"])).min(1).max(2),
  publicKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  notAfter: z.iso.datetime({ offset: true }).nullable(),
});

const statementSchema = z.strictObject({
  format: z.literal("noc-keys/1"),
  previous: z.string().regex(/^[0-9a-f]{16}$/),
  issuedAt: z.iso.datetime({ offset: true }),
  keys: z.array(keySchema).min(2).max(16),
});

const envelopeSchema = z.strictObject({
  statement: z.string().max(16 * 1024),
  signatures: z.array(z.strictObject({
    kid: z.string().max(64),
    signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
  })).min(2).max(4),
});

/** The bytes a key-list statement's signatures cover. */
export function keyStatementSigningBytes(statement: string): Uint8Array<ArrayBuffer> {
  return utf8(`noc-keys/1\n${statement}`);
}

/** Signs a key-list statement with the previous key and the new current key. */
export async function signKeyStatement(
  statement: KeyStatement,
  signers: ReadonlyArray<{ kid: string; privateKey: Ed25519Key }>,
): Promise<KeyStatementEnvelope> {
  const text = JSON.stringify(statement);
  const signatures = [];
  for (const s of signers) {
    const sig = await ed25519Sign(s.privateKey, keyStatementSigningBytes(text));
    signatures.push({ kid: s.kid, signature: toBase64Url(sig) });
  }
  return { statement: text, signatures };
}

/** The new current key of a statement (the one with no end date). */
export function currentKeyOf(s: KeyStatement): PublishedKey {
  return s.keys.find((k) => k.notAfter === null)!;
}

/** Parses a statement envelope's shape and its statement (no signature checked). */
export function parseKeyStatement(
  envelope: unknown,
): { envelope: KeyStatementEnvelope; statement: KeyStatement } {
  const fail = (why: string): never => {
    throw new KeyStatementError("malformed_statement", `Key statement ${why}`);
  };
  const e = envelopeSchema.safeParse(envelope);
  if (!e.success) fail(`envelope is malformed: ${e.error.issues[0]?.message ?? ""}`);
  let raw: unknown;
  try {
    raw = JSON.parse(e.data!.statement);
  } catch {
    fail("is not JSON");
  }
  const s = statementSchema.safeParse(raw);
  if (!s.success) {
    fail(
      `is malformed: field "${s.error.issues[0]?.path.join(".")}" ${s.error.issues[0]?.message}`,
    );
  }
  const statement = s.data! as KeyStatement;
  const current = statement.keys.filter((k) => k.notAfter === null);
  if (current.length !== 1 || !current[0]!.use.includes("catalog")) {
    fail("must name exactly one current catalog key (notAfter null)");
  }
  if (current[0]!.kid === statement.previous) fail("replaces a key by itself");
  const prev = statement.keys.find((k) => k.kid === statement.previous);
  if (!prev || prev.notAfter === null) {
    fail(`must list the key it replaces ("${statement.previous}") with its end date`);
  }
  if (new Set(statement.keys.map((k) => k.kid)).size !== statement.keys.length) {
    fail("lists a key twice");
  }
  return { envelope: e.data!, statement };
}

async function checkSignature(
  env: KeyStatementEnvelope,
  key: { kid: string; publicKey: string },
): Promise<void> {
  const sig = env.signatures.find((s) => s.kid === key.kid);
  const ok = sig !== undefined && await ed25519Verify(
    await importEd25519Public(fromBase64Url(key.publicKey)),
    fromBase64Url(sig.signature),
    keyStatementSigningBytes(env.statement),
  );
  if (!ok) {
    throw new KeyStatementError(
      "bad_statement_signature",
      `Key statement has no valid signature by key "${key.kid}"`,
    );
  }
}

/**
 * Verifies a statement envelope against the key it must replace (`previous`,
 * as the verifier pins it): its shape, every key id against its public key,
 * a signature by `previous` and one by the new current key. Returns the
 * statement; throws {@link KeyStatementError}. A key's end date does not stop
 * it from vouching for its successor (TUF does the same): a statement is made
 * while the key it replaces is current, and may be read long after.
 */
export async function verifyKeyStatement(
  envelope: unknown,
  previous: { kid: string; publicKey: string },
): Promise<KeyStatement> {
  const { envelope: env, statement } = parseKeyStatement(envelope);
  if (statement.previous !== previous.kid) {
    throw new KeyStatementError(
      "wrong_previous",
      `Key statement replaces key "${statement.previous}", not "${previous.kid}"`,
    );
  }
  for (const k of statement.keys) {
    if (await keyId(fromBase64Url(k.publicKey)) !== k.kid) {
      throw new KeyStatementError(
        "malformed_statement",
        `Key statement names key "${k.kid}" with another key's public half`,
      );
    }
  }
  const listedPrevious = statement.keys.find((k) => k.kid === previous.kid)!;
  if (listedPrevious.publicKey !== previous.publicKey) {
    throw new KeyStatementError(
      "wrong_previous",
      `Key statement lists another public key for "${previous.kid}"`,
    );
  }
  await checkSignature(env, previous);
  await checkSignature(env, currentKeyOf(statement));
  return statement;
}

/** The current catalog key of a pinned list: the catalog key with no end date. */
export function pinnedCurrentKey(pinned: readonly PublishedKey[]): PublishedKey | undefined {
  return pinned.find((k) => k.use.includes("catalog") && k.notAfter === null);
}

/** The earlier of two end dates (null: none). An end date an appliance has seen never moves later. */
export function earliestEnd(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  if (Number.isNaN(tb)) return a;
  if (Number.isNaN(ta)) return b;
  return tb < ta ? b : a;
}

/**
 * One step of a key chain, applied to the keys an appliance pins: `statement`
 * (verified against the pinned current key) names the new current NOC key.
 * Only that key is new: it is pinned for "catalog" use, and for "package" use
 * too only when the key it replaces had it and the appliance is not in
 * release-keys-only mode. Every key already pinned stays pinned: the statement
 * may give it an earlier end date and take uses away, never add a use or move
 * an end date later (the key it replaces keeps its uses and gets its end
 * date). Any other key the statement names is ignored: release keys reach an
 * appliance only in a catalog's key list, with an endorsement. Returns null
 * when the statement cannot be applied (its new key is one already pinned: a
 * key never comes back), or when the appliance already pins {@link MAX_PINNED_KEYS} keys (it
 * forgets none to make room).
 */
export function applyKeyStatement(
  pinned: readonly PublishedKey[],
  statement: KeyStatement,
  options: { releaseKeysOnly: boolean },
): PublishedKey[] | null {
  const next = currentKeyOf(statement);
  if (pinned.length >= MAX_PINNED_KEYS) return null;
  if (pinned.some((k) => k.kid === next.kid || k.publicKey === next.publicKey)) return null;
  const previous = pinned.find((k) => k.kid === statement.previous);
  if (!previous) return null;
  const listed = new Map(statement.keys.map((k) => [k.kid, k]));
  const kept = pinned.map((p): PublishedKey => {
    const k = listed.get(p.kid);
    if (!k || k.publicKey !== p.publicKey) return p;
    const notAfter = earliestEnd(p.notAfter, k.notAfter);
    if (p.kid === previous.kid) return { ...p, notAfter };
    const use = p.use.filter((u) => k.use.includes(u));
    return { ...p, use: use.length > 0 ? use : p.use, notAfter };
  });
  const withPackage = !options.releaseKeysOnly && previous.use.includes("package");
  return [
    { ...next, use: withPackage ? ["catalog", "package"] : ["catalog"], notAfter: null },
    ...kept,
  ];
}

/**
 * Whether an appliance with these pins is in release-keys-only mode as far as the pins tell: its
 * current NOC key has no "package" use. (An agent pins the mode itself too, and never leaves it.)
 */
export function releaseKeysOnlyOf(pinned: readonly PublishedKey[]): boolean {
  return !(pinnedCurrentKey(pinned)?.use.includes("package") ?? false);
}

/**
 * Walks a key chain from the keys an appliance pins: while some statement
 * replaces the pinned current key and verifies, it is applied
 * ({@link applyKeyStatement}: the new current key is added, every pinned key
 * is kept, no use is added and no end date moves later). Statements that do
 * not link, or fail, are skipped; returns the new pinned list, the key ids
 * walked to (empty when nothing changed), and `full`: true when the walk
 * stopped at a valid link because the appliance pins {@link MAX_PINNED_KEYS}
 * keys (it pins no new key then, and forgets none). `releaseKeysOnly` is the
 * mode the appliance pinned (by default, as its pins tell).
 */
export async function walkKeyChain(
  pinned: readonly PublishedKey[],
  chain: readonly unknown[],
  options: { releaseKeysOnly?: boolean } = {},
): Promise<{ keys: PublishedKey[]; walked: string[]; full: boolean }> {
  const releaseKeysOnly = options.releaseKeysOnly ?? releaseKeysOnlyOf(pinned);
  let keys = [...pinned];
  const walked: string[] = [];
  const seen = new Set<string>();
  let full = false;
  for (let step = 0; step < Math.min(chain.length, MAX_KEY_CHAIN); step++) {
    const current = pinnedCurrentKey(keys);
    if (!current || seen.has(current.kid)) break;
    seen.add(current.kid);
    let next: PublishedKey[] | null = null;
    for (const envelope of chain.slice(0, MAX_KEY_CHAIN)) {
      try {
        const statement = await verifyKeyStatement(envelope, current);
        next = applyKeyStatement(keys, statement, { releaseKeysOnly });
        if (next) break;
        // A valid link to a key not pinned yet, refused for want of room.
        const to = currentKeyOf(statement);
        if (
          keys.length >= MAX_PINNED_KEYS &&
          !keys.some((k) => k.kid === to.kid || k.publicKey === to.publicKey)
        ) full = true;
      } catch {
        // Not the link from this key, or not a valid one.
      }
    }
    if (!next) break;
    keys = next;
    walked.push(pinnedCurrentKey(keys)!.kid);
  }
  return { keys, walked, full };
}
