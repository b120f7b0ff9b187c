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
import type { PublishedKey } from "./keys.ts";
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

/**
 * The key list an appliance may pin from `next` (a catalog's key list, signed by a pinned catalog
 * key), given what it pins now. A list can only hand on what its signer holds: while a pinned,
 * unexpired NOC (catalog) key may sign packages (normal mode), the list is taken as it is. When
 * none may (release-keys-only mode), a key keeps "package" use only if it was already pinned with
 * that use (same public key, an end date no later), or it carries an endorsement that verifies
 * under a key pinned now for "package" use. Any other key loses "package" use (and is dropped when
 * nothing is left). Returns the list and the key ids that lost "package" use.
 */
export async function adoptablePackageKeys(
  pinned: readonly PublishedKey[],
  next: ReadonlyArray<PublishedKey & { endorsement?: Endorsement }>,
  now: Date,
): Promise<{ keys: PublishedKey[]; refused: string[] }> {
  const nocSignsPackages = pinned.some((k) =>
    k.use.includes("catalog") && k.use.includes("package") &&
    (k.notAfter === null || Date.parse(k.notAfter) > now.getTime())
  );
  const keys: PublishedKey[] = [];
  const refused: string[] = [];
  for (const k of next) {
    const { endorsement, ...key } = k;
    if (!key.use.includes("package") || nocSignsPackages) {
      keys.push(key);
      continue;
    }
    const before = pinned.find((p) =>
      p.kid === key.kid && p.publicKey === key.publicKey && p.use.includes("package")
    );
    const notLater = before !== undefined &&
      (before.notAfter === null ||
        (key.notAfter !== null && Date.parse(key.notAfter) <= Date.parse(before.notAfter)));
    if (notLater || (await endorsementProblem(key, endorsement, pinned, now)) === null) {
      keys.push(key);
      continue;
    }
    refused.push(key.kid);
    const use = key.use.filter((u) => u !== "package");
    if (use.length > 0) keys.push({ ...key, use });
  }
  return { keys, refused };
}

/**
 * The keys an appliance pins after walking a NOC key chain (a rotation statement is signed by the
 * NOC key it replaces, and lists the NOC's catalog keys). "package" use passes down the chain only
 * from a NOC key that had it: when the NOC key pinned before the walk signed packages (normal
 * mode), its successors do too; in release-keys-only mode the pinned NOC key has no "package" use,
 * so a rotation — even one made with a stolen NOC key — gives no key "package" use (a key already
 * pinned for it keeps it). Returns the keys and the ids that were refused "package" use.
 */
export function rotatedPackageKeys(
  before: readonly PublishedKey[],
  walked: readonly PublishedKey[],
): { keys: PublishedKey[]; refused: string[] } {
  const nocSignedPackages = before.some((k) =>
    k.use.includes("catalog") && k.use.includes("package")
  );
  const keys: PublishedKey[] = [];
  const refused: string[] = [];
  for (const k of walked) {
    const had = before.some((p) =>
      p.kid === k.kid && p.publicKey === k.publicKey && p.use.includes("package")
    );
    if (nocSignedPackages && k.use.includes("catalog")) {
      keys.push(k.use.includes("package") ? k : { ...k, use: [...k.use, "package"] });
    } else if (!k.use.includes("package") || had) {
      keys.push(k);
    } else {
      refused.push(k.kid);
      const use = k.use.filter((u) => u !== "package");
      if (use.length > 0) keys.push({ ...k, use });
    }
  }
  return { keys, refused };
}
