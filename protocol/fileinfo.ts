/**
 * Signed fileinfo. A fileinfo says where an application's file is written on the appliance, with
 * which mode, and which command runs after it (spec, FIGURE 12): each of those can make the
 * appliance execute something (a destination in a cron or plug-in folder, an executable mode, an
 * action). So every fileinfo an agent honours carries an Ed25519 signature by a key the agent pins
 * for "package" use: in normal mode the NOC signs it itself when it is saved; in release-keys-only
 * mode the NOC key has no "package" use, so only an offline release key can sign one.
 *
 * The signed bytes are a domain-separated, canonical encoding of every field of the instruction
 * and the component it is for — application, file name, destination, mode (four octal digits),
 * action, upload folder and upload server — so a signature made for one file, one place or one
 * command is worth nothing for another.
 *
 * The file's digest and version are deliberately not signed: a fileinfo is per application file,
 * across versions (FIGURE 12), and files are the spec's frequently updated, unsigned channel
 * (their digest travels in the signed catalog). Signing the digest would make every file version
 * need an offline signature, which is what packages are for. A release-key holder therefore
 * approves a place and a command, not a content: a fileinfo whose destination or action executes
 * the file's content must not be signed — ship such content as a package.
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
import { fileinfoSchema } from "./schemas.ts";

/** The domain-separation tag: the first element of every signed fileinfo encoding. */
export const FILEINFO_SIGNATURE_CONTEXT = "noc-fileinfo/1";

/** What a fileinfo signature covers: the instruction and the file it is for. */
export interface FileinfoStatement {
  /** The application. */
  app: string;
  /** The file's name within the application. */
  name: string;
  /** Destination, relative to the appliance root. */
  destination: string;
  /** File mode, octal text (`644` and `0644` are the same mode). */
  mode: string;
  /** Follow-up command (argv), or null. */
  action: readonly string[] | null;
  /** The spec's UPLOAD DIR, or null. */
  uploadDir: string | null;
  /** The spec's UPLOAD SERVER, or null. */
  uploadServer: string | null;
}

/** A fileinfo signature: the signing key's id and the Ed25519 signature, base64url. */
export interface FileinfoSignature {
  /** Key id of the signing key (16 hex digits). */
  signer: string;
  /** Ed25519 signature over {@link fileinfoSigningBytes}, base64url (86 characters). */
  signature: string;
}

/** A key id as published (16 lowercase hex digits). */
export const kidSchema = z.string().regex(/^[0-9a-f]{16}$/, {
  message: "must be a key id (16 hex digits)",
});

/** An Ed25519 signature in unpadded base64url. */
export const signatureSchema = z.string().regex(/^[A-Za-z0-9_-]{86}$/, {
  message: "must be an Ed25519 signature in unpadded base64url (86 characters)",
});

/**
 * `PUT /v1/admin/apps/:app/fileinfo/:name` with an optional offline signature (required in
 * release-keys-only mode): the fileinfo fields plus `signer` and `signature`, both or neither.
 */
export const signedFileinfoSchema = fileinfoSchema.extend({
  signer: kidSchema.optional(),
  signature: signatureSchema.optional(),
}).refine((f) => (f.signer === undefined) === (f.signature === undefined), {
  message: "signer and signature go together",
  path: ["signature"],
});

/** The mode as four octal digits (`644` → `0644`), the form that is signed. */
export function canonicalMode(mode: string): string {
  return mode.padStart(4, "0");
}

/** The exact bytes a fileinfo signature covers: a JSON array, tag first, every field in order. */
export function fileinfoSigningBytes(s: FileinfoStatement): Uint8Array<ArrayBuffer> {
  return utf8(JSON.stringify([
    FILEINFO_SIGNATURE_CONTEXT,
    s.app,
    s.name,
    s.destination,
    canonicalMode(s.mode),
    s.action === null ? null : [...s.action],
    s.uploadDir,
    s.uploadServer,
  ]));
}

/** Signs a fileinfo with a package-signing key (a release key, or the NOC's own in normal mode). */
export async function signFileinfo(
  s: FileinfoStatement,
  key: { kid: string; privateKey: Ed25519Key },
): Promise<FileinfoSignature> {
  return {
    signer: key.kid,
    signature: toBase64Url(await ed25519Sign(key.privateKey, fileinfoSigningBytes(s))),
  };
}

/** A fileinfo whose signature does not let it be used; `reason` is a stable code. */
export class FileinfoSignatureError extends Error {
  /** Creates an error with a stable reason code. */
  constructor(
    readonly reason: "unsigned" | "unknown_key" | "expired_key" | "bad_signature",
    message: string,
  ) {
    super(message);
  }
}

/**
 * Checks a fileinfo's signature against `trusted` keys: the signer must be one of them with
 * "package" use, not past its end date, and the signature must verify over this statement.
 * Returns the signing key; throws {@link FileinfoSignatureError}.
 */
export async function verifyFileinfo(
  s: FileinfoStatement & { signer?: string | null; signature?: string | null },
  trusted: readonly PublishedKey[],
  now: Date,
): Promise<PublishedKey> {
  const label = `fileinfo of ${s.app}/${s.name}`;
  if (!s.signer || !s.signature) {
    throw new FileinfoSignatureError("unsigned", `The ${label} is not signed`);
  }
  const key = trusted.find((k) => k.kid === s.signer && k.use.includes("package"));
  if (!key) {
    throw new FileinfoSignatureError(
      "unknown_key",
      `The ${label} is signed by key "${s.signer}", which is not a trusted package-signing key`,
    );
  }
  if (key.notAfter !== null && Date.parse(key.notAfter) <= now.getTime()) {
    throw new FileinfoSignatureError(
      "expired_key",
      `The ${label} is signed by key "${key.kid}", retired at ${key.notAfter}`,
    );
  }
  let sig: Uint8Array<ArrayBuffer>;
  let pub: CryptoKey;
  try {
    sig = fromBase64Url(s.signature);
    pub = await importEd25519Public(fromBase64Url(key.publicKey));
  } catch {
    throw new FileinfoSignatureError("bad_signature", `The ${label} signature is not base64url`);
  }
  if (!(await ed25519Verify(pub, sig, fileinfoSigningBytes(s)))) {
    throw new FileinfoSignatureError(
      "bad_signature",
      `The ${label} signature by key "${key.kid}" does not verify over this fileinfo`,
    );
  }
  return key;
}
