/**
 * Release-key endorsements. A release key signs packages and fileinfo, so a new one may only be
 * trusted on the word of a key that already may sign packages: its *endorsement* is an Ed25519
 * signature by such a key over the new key and the latest end date it may have. In
 * release-keys-only mode the NOC's own key has no "package" use, so only an existing release key
 * (offline) can endorse a new one; in normal mode the NOC endorses keys itself.
 *
 * The NOC checks endorsements when a key is registered; {@link adoptablePackageKeys} is the same
 * rule for an appliance taking a new key list: a key gains "package" use only with an endorsement
 * by a key it already pins for "package" use, so whoever holds the NOC's catalog key alone cannot
 * give itself, or a key of its own, the right to run code on appliances.
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
import { fromBase64Url, toBase64Url, utf8 } from "./util/encoding.ts";
import {
  earliestEnd,
  keyId,
  MAX_PINNED_KEYS,
  pinnedCurrentKey,
  type PublishedKey,
  releaseKeysOnlyOf,
} from "./keys.ts";
import { kidSchema, signatureSchema } from "./fileinfo.ts";
import { releaseKeySchema } from "./schemas.ts";

/** The domain-separation tag of an endorsement. */
export const ENDORSEMENT_CONTEXT = "noc-release-key/1";

/** An endorsement of a package-signing key by another. */
export interface Endorsement {
  /** Key id of the endorsing key. */
  signer: string;
  /** The latest end date the endorsed key may have (ISO time), or null for none. */
  notAfter: string | null;
  /** Ed25519 signature over {@link endorsementBytes}, base64url. */
  signature: string;
}

/** An endorsement as JSON carries it (`POST /v1/admin/release-keys`, the key lists agents pin). */
export const endorsementSchema = z.strictObject({
  signer: kidSchema,
  notAfter: z.iso.datetime({ offset: true }).nullable(),
  signature: signatureSchema,
});

/** `POST /v1/admin/release-keys` with an optional endorsement (required in release-keys-only mode). */
export const endorsedReleaseKeySchema = releaseKeySchema.extend({
  endorsement: endorsementSchema.optional(),
});

/** An end date in the one form that is signed (`toISOString`), or null. */
export function canonicalNotAfter(notAfter: string | null | undefined): string | null {
  return notAfter === null || notAfter === undefined ? null : new Date(notAfter).toISOString();
}

/** The exact bytes an endorsement covers: tag, the endorsed public key, its latest end date. */
export function endorsementBytes(
  publicKey: string,
  notAfter: string | null,
): Uint8Array<ArrayBuffer> {
  return utf8(JSON.stringify([ENDORSEMENT_CONTEXT, publicKey, canonicalNotAfter(notAfter)]));
}

/** Endorses `publicKey` (valid until at most `notAfter`) with a package-signing key. */
export async function endorseKey(
  publicKey: string,
  notAfter: string | null,
  by: { kid: string; privateKey: Ed25519Key },
): Promise<Endorsement> {
  const bound = canonicalNotAfter(notAfter);
  return {
    signer: by.kid,
    notAfter: bound,
    signature: toBase64Url(await ed25519Sign(by.privateKey, endorsementBytes(publicKey, bound))),
  };
}

/** Why an endorsement does not count, or null when it does. */
export async function endorsementProblem(
  key: { publicKey: string; notAfter: string | null },
  e: Endorsement | undefined,
  signers: readonly PublishedKey[],
  now: Date,
): Promise<string | null> {
  if (!e) return "it carries no endorsement by a package-signing key";
  const by = signers.find((k) => k.kid === e.signer && k.use.includes("package"));
  if (!by) return `its endorser "${e.signer}" is not a trusted package-signing key`;
  if (by.publicKey === key.publicKey) return "a key cannot endorse itself";
  if (by.notAfter !== null && Date.parse(by.notAfter) <= now.getTime()) {
    return `its endorser "${by.kid}" was retired at ${by.notAfter}`;
  }
  const bound = e.notAfter === null ? Infinity : Date.parse(e.notAfter);
  const end = key.notAfter === null ? Infinity : Date.parse(key.notAfter);
  if (Number.isNaN(bound) || Number.isNaN(end) || end > bound) {
    return `its end date is later than the endorsed one (${e.notAfter})`;
  }
  let ok = false;
  try {
    ok = await ed25519Verify(
      await importEd25519Public(fromBase64Url(by.publicKey)),
      fromBase64Url(e.signature),
      endorsementBytes(key.publicKey, e.notAfter),
    );
  } catch {
    ok = false;
  }
  return ok ? null : `its endorsement by "${by.kid}" does not verify`;
}

export { MAX_PINNED_KEYS } from "./keys.ts";

/**
 * The key list an appliance pins from `next`, a catalog's key list (signed by its pinned current
 * NOC key), given what it pins now and the mode it pinned (`releaseKeysOnly`). A catalog's list
 * can only take trust away, and add release keys:
 *
 * - a key already pinned keeps its public key; its uses can shrink, never grow (but "package" use
 *   with an endorsement that verifies under a key pinned for "package" use); its end date can come
 *   earlier, never later. The current NOC key's end date changes only through the key chain.
 * - a pinned key the list leaves out (or lists with another public key) is retired now, and kept:
 *   an appliance remembers the earliest end date it has seen for every key, so no list can bring a
 *   retired key back, whatever endorsement it carries. The current NOC key is never dropped.
 * - a new key never gets "catalog" use (NOC keys change only through the key chain); it gets
 *   "package" use with an endorsement by a pinned package key, or without one only outside
 *   release-keys-only mode (there the current NOC key signs packages itself).
 * - no pinned key is ever dropped, whatever the bound: at {@link MAX_PINNED_KEYS} keys a new key
 *   is refused instead (`full`). Forgetting a retired key would forget its retirement, and its old
 *   endorsement would bring it back as new.
 *
 * Returns the keys (pinned ones first, in their order), the key ids of entries not taken as
 * listed, and whether a new key was refused for want of room.
 */
export async function adoptablePackageKeys(
  pinned: readonly PublishedKey[],
  next: ReadonlyArray<PublishedKey & { endorsement?: Endorsement }>,
  now: Date,
  releaseKeysOnly: boolean = releaseKeysOnlyOf(pinned),
): Promise<{ keys: PublishedKey[]; refused: string[]; full: boolean }> {
  const current = pinnedCurrentKey(pinned);
  let full = false;
  const nocSignsPackages = !releaseKeysOnly && (current?.use.includes("package") ?? false);
  const refused = new Set<string>();
  const listed = new Map<string, PublishedKey & { endorsement?: Endorsement }>();
  for (const k of next) {
    if (listed.has(k.kid)) refused.add(k.kid);
    else listed.set(k.kid, k);
  }
  const endorsed = async (k: PublishedKey & { endorsement?: Endorsement }) =>
    (await endorsementProblem(k, k.endorsement, pinned, now)) === null;
  const nowIso = now.toISOString();
  const keys: PublishedKey[] = [];
  for (const p of pinned) {
    const k = listed.get(p.kid);
    const isCurrent = p === current;
    if (!k || k.publicKey !== p.publicKey || k.alg !== p.alg) {
      if (k) refused.add(k.kid);
      keys.push(isCurrent ? p : { ...p, notAfter: earliestEnd(p.notAfter, nowIso) });
      continue;
    }
    const use = p.use.filter((u) => k.use.includes(u));
    if (k.use.includes("catalog") && !p.use.includes("catalog")) refused.add(k.kid);
    if (k.use.includes("package") && !p.use.includes("package")) {
      if (await endorsed(k)) use.push("package");
      else refused.add(k.kid);
    }
    let notAfter = isCurrent ? p.notAfter : earliestEnd(p.notAfter, k.notAfter);
    if (!isCurrent && !sameEnd(notAfter, k.notAfter)) refused.add(k.kid);
    if (isCurrent && k.notAfter !== null) refused.add(k.kid);
    if (use.length === 0) {
      // Every use taken away: retired now (a current NOC key keeps "catalog" use).
      if (isCurrent) {
        keys.push({ ...p, use: ["catalog"] });
        continue;
      }
      notAfter = earliestEnd(p.notAfter, nowIso);
      keys.push({ ...p, notAfter });
      continue;
    }
    keys.push({ ...p, use, notAfter });
  }
  const known = new Set(pinned.flatMap((p) => [p.kid, p.publicKey]));
  for (const k of listed.values()) {
    if (known.has(k.kid) || known.has(k.publicKey)) continue;
    const { endorsement: _, ...key } = k;
    let use = key.use.filter((u) => u !== "catalog");
    if (use.length !== key.use.length) refused.add(k.kid);
    if (use.includes("package") && !nocSignsPackages && !(await endorsed(k))) {
      refused.add(k.kid);
      use = use.filter((u) => u !== "package");
    }
    if (use.length === 0) continue;
    if (await keyId(fromBase64Url(key.publicKey)).catch(() => "") !== key.kid) {
      refused.add(k.kid);
      continue;
    }
    if (keys.length >= MAX_PINNED_KEYS) {
      // No room: the new key is refused; no pinned key is forgotten to make room.
      refused.add(k.kid);
      full = true;
      continue;
    }
    keys.push({ ...key, use });
  }
  return { keys, refused: [...refused], full };
}

function sameEnd(a: string | null, b: string | null): boolean {
  return a === null || b === null ? a === b : Date.parse(a) === Date.parse(b);
}

/**
 * The keys an appliance pins after walking a NOC key chain, checked against what it pinned before
 * (`before`) and the mode it pinned: a key pinned before keeps its public key, gains no use and no
 * later end date; a new key must be a NOC (catalog) key — the chain names nothing else — and gets
 * "package" use only when the NOC key pinned before the walk had it and the appliance is not in
 * release-keys-only mode. A key pinned before and missing from `walked` is kept. So a rotation —
 * even one made with a stolen NOC key — gives no key "package" use in release-keys-only mode, and
 * brings no retired key back. Nor does it make the appliance forget one: every key pinned before
 * is kept, and a walk that would pin more than {@link MAX_PINNED_KEYS} keys is refused whole
 * (`full`; the keys pinned before are returned). Returns the keys and the ids of keys not taken
 * as walked.
 */
export function rotatedPackageKeys(
  before: readonly PublishedKey[],
  walked: readonly PublishedKey[],
  releaseKeysOnly: boolean = releaseKeysOnlyOf(before),
): { keys: PublishedKey[]; refused: string[]; full: boolean } {
  const nocSignedPackages = !releaseKeysOnly &&
    (pinnedCurrentKey(before)?.use.includes("package") ?? false);
  const keys: PublishedKey[] = [];
  const refused: string[] = [];
  const seen = new Set<string>();
  // Room for new keys: the bound less every key pinned before (all are kept).
  let room = MAX_PINNED_KEYS - before.length;
  const crowded: string[] = [];
  for (const k of walked) {
    if (seen.has(k.kid)) continue;
    seen.add(k.kid);
    const p = before.find((b) => b.kid === k.kid);
    if (p) {
      // A NOC key keeps its uses through a rotation in normal mode (statements list catalog keys).
      const keepUses = nocSignedPackages && p.use.includes("catalog");
      const use = keepUses ? [...p.use] : p.use.filter((u) => k.use.includes(u));
      const notAfter = earliestEnd(p.notAfter, k.notAfter);
      if (
        p.publicKey !== k.publicKey || k.use.some((u) => !use.includes(u)) ||
        !sameEnd(notAfter, k.notAfter)
      ) {
        refused.push(k.kid);
      }
      keys.push(
        p.publicKey !== k.publicKey ? p : { ...p, use: use.length > 0 ? use : p.use, notAfter },
      );
      continue;
    }
    if (!k.use.includes("catalog") || before.some((b) => b.publicKey === k.publicKey)) {
      refused.push(k.kid);
      continue;
    }
    if (room <= 0) {
      crowded.push(k.kid);
      continue;
    }
    room--;
    const use: PublishedKey["use"] = nocSignedPackages ? ["catalog", "package"] : ["catalog"];
    if (k.use.includes("package") && !nocSignedPackages) refused.push(k.kid);
    keys.push({ ...k, use });
  }
  // No room for a new key: the rotation is refused whole (the pins stay as they were, so the
  // current key is not retired for a successor that is not pinned).
  if (crowded.length > 0) return { keys: [...before], refused: crowded, full: true };
  for (const p of before) if (!seen.has(p.kid)) keys.push(p);
  return { keys, refused, full: false };
}
