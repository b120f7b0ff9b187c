/**
 * Ed25519 keys as OpenSSL and other tools write them, read next to this project's own forms.
 *
 * - Private keys: PEM (RFC 7468) `PRIVATE KEY` around PKCS#8 (RFC 5958, RFC 8410), as
 *   `openssl genpkey -algorithm ed25519` writes; or the 32-byte seed in unpadded base64url, as
 *   `noc keygen` writes.
 * - Public keys: PEM `PUBLIC KEY` around a SubjectPublicKeyInfo (RFC 5280, RFC 8410), as
 *   `openssl pkey -in k.pem -pubout` writes; or the raw 32 bytes in unpadded base64url.
 *
 * Both forms of one key are the same key: the seed and the raw public key read from PEM are the
 * bytes the base64url forms carry, so its key id (protocol/keys.ts) is the same. Anything else
 * (an encrypted PEM, an RSA, EC, X25519 or OpenSSH key, a certificate, bytes that are no key) is
 * refused with a {@link KeyFormatError} saying what it is and what to do; a message never quotes
 * the text of a private key.
 *
 * The DER inside is read by `node:crypto` (`createPrivateKey`, `createPublicKey`): it decodes
 * PKCS#8 and SPKI, names the algorithm (`asymmetricKeyType`) and gives the key bytes as a JWK
 * (`d` the seed, `x` the public key). The little done here by hand is what it cannot tell:
 * - which PEM block: it reads only a bare block (no text around it, RFC 7468 §2, and one block),
 *   so the block is cut out here, and several blocks or one without its END line are named;
 * - what the label says: `createPublicKey` takes a private key or a certificate and answers its
 *   public half, where a private key given for a public one must be refused and a certificate is
 *   no key; an `ENCRYPTED PRIVATE KEY` (or `Proc-Type: 4,ENCRYPTED` header) is refused by its
 *   label, before `node:crypto` is asked, because what that throws without a passphrase differs
 *   between Node (`ERR_MISSING_PASSPHRASE`) and Deno (`ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED`;
 *   it never prompts, tests/pem_test.ts); OpenSSH and `RSA`/`EC`/`DSA` labels name their kind;
 * - "not base64": its errors (`DECODER routines::unsupported`) do not say so; a character check.
 *
 * @module
 */
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { fromBase64Url } from "../util/encoding.ts";

/** The most characters of key text read (a PEM Ed25519 key is about 120; an RSA one a few KiB). */
export const MAX_KEY_TEXT = 16 * 1024;

/** A key in a form this module does not take; the message says what it is and what to do. */
export class KeyFormatError extends Error {}

/** A command that makes an Ed25519 private key in PEM, for messages. */
export const OPENSSL_GENPKEY = "openssl genpkey -algorithm ed25519 -out release.pem";

const base64Url32 = /^[A-Za-z0-9_-]{43}$/;

/** `node:crypto`'s `asymmetricKeyType` names as they are written in messages. */
const algorithmNames: Record<string, string> = {
  ed448: "Ed448",
  x25519: "X25519",
  x448: "X448",
  rsa: "RSA",
  "rsa-pss": "RSA-PSS",
  ec: "EC",
  dsa: "DSA",
  dh: "DH",
};

/** True when `text` holds a PEM armour line (`-----BEGIN …-----`). */
export function looksLikePem(text: string): boolean {
  return /-----BEGIN [A-Z0-9 ]{1,40}-----/.test(text);
}

/** One PEM block: its label and its text from BEGIN to END line, what `node:crypto` reads. */
interface PemBlock {
  label: string;
  pem: string;
}

/**
 * The single PEM block of `text` (explanatory text around it ignored, RFC 7468 §2); throws
 * {@link KeyFormatError} when there are several, one has no END line or its body is not base64
 * (RFC 1421 headers aside). `what` names the input in messages.
 */
function onePemBlock(text: string, what: string): PemBlock {
  const labels = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]{1,40})-----/g)].map((m) => m[1]!);
  if (labels.length > 1) {
    throw new KeyFormatError(
      `${what} holds ${labels.length} PEM blocks (${labels.slice(0, 4).join(", ")}${
        labels.length > 4 ? ", …" : ""
      }); give one key`,
    );
  }
  const label = labels[0]!;
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(text);
  if (!m) throw new KeyFormatError(`${what}: its PEM "${label}" block has no END line`);
  const body = m[1]!.replace(/^(\s*[A-Za-z-]+:.*\r?\n)+/, "");
  if (!/^[A-Za-z0-9+/=\s]*$/.test(body)) {
    throw new KeyFormatError(`${what}: its PEM "${label}" block is not base64`);
  }
  return { label, pem: m[0] };
}

/** "a" or "an" before an algorithm's name as it is spoken ("an RSA", "a DSA"). */
const article = (name: string) => /^(DSA|DH)/.test(name) ? "a" : "an";

function notEd25519(what: string, algorithm: string, kind: "private" | "public"): KeyFormatError {
  return new KeyFormatError(
    `${what} is ${article(algorithm)} ${algorithm} ${kind} key, not Ed25519: release keys are ` +
      `Ed25519 (make one with \`${OPENSSL_GENPKEY}\`)`,
  );
}

/** The refusal of a PEM label neither reader takes; `null` for `PRIVATE KEY` and `PUBLIC KEY`. */
function otherLabel(what: string, label: string): KeyFormatError | null {
  const legacy = /^(RSA|EC|DSA) (PRIVATE|PUBLIC) KEY$/.exec(label);
  if (legacy) {
    return notEd25519(what, legacy[1]!, legacy[2]!.toLowerCase() as "private" | "public");
  }
  if (label === "OPENSSH PRIVATE KEY") {
    return new KeyFormatError(
      `${what} is an OpenSSH private key; give an Ed25519 key in PEM (make one with ` +
        `\`${OPENSSL_GENPKEY}\`)`,
    );
  }
  if (label === "CERTIFICATE") return new KeyFormatError(`${what} is a certificate, not a key`);
  if (label === "PRIVATE KEY" || label === "PUBLIC KEY" || label === "ENCRYPTED PRIVATE KEY") {
    return null;
  }
  return new KeyFormatError(`${what} holds a PEM "${label}", not an Ed25519 key`);
}

/** The key `read` makes of `block`, which must be Ed25519; throws {@link KeyFormatError}. */
function ed25519Of(
  block: PemBlock,
  what: string,
  kind: "private" | "public",
  read: (pem: string) => KeyObject,
): Record<string, unknown> {
  let key: KeyObject;
  try {
    key = read(block.pem);
  } catch (e) {
    const form = kind === "private" ? "a PKCS#8 Ed25519 key" : "an Ed25519 public key";
    throw new KeyFormatError(
      `${what}: its PEM "${block.label}" is not ${form} (${(e as Error).message})`,
    );
  }
  const type = key.asymmetricKeyType ?? "unknown";
  if (type !== "ed25519") throw notEd25519(what, algorithmNames[type] ?? type, kind);
  return key.export({ format: "jwk" }) as Record<string, unknown>;
}

/**
 * The 32-byte Ed25519 seed in `text`: a PEM `PRIVATE KEY` (PKCS#8, as
 * `openssl genpkey -algorithm ed25519` writes) or the seed in unpadded base64url (as
 * `noc keygen` writes), surrounding white space ignored. `what` names the input in messages
 * (e.g. `Key file "release.key"`). Throws {@link KeyFormatError} naming the problem: an encrypted
 * key (with the `openssl pkey` command that decrypts it), a key of another algorithm, a public
 * key, anything else; the message never quotes the text.
 */
export function readEd25519Seed(text: string, what: string): Uint8Array<ArrayBuffer> {
  if (text.length > MAX_KEY_TEXT) {
    throw new KeyFormatError(`${what} is longer than ${MAX_KEY_TEXT} characters: not a key`);
  }
  const trimmed = text.trim();
  if (base64Url32.test(trimmed)) {
    try {
      return fromBase64Url(trimmed);
    } catch {
      throw new KeyFormatError(`${what} is not canonical base64url`);
    }
  }
  if (!looksLikePem(text)) {
    throw new KeyFormatError(
      `${what} is not an Ed25519 private key: give one in PEM (\`${OPENSSL_GENPKEY}\`) ` +
        `or one made by \`noc keygen\``,
    );
  }
  const block = onePemBlock(text, what);
  const other = otherLabel(what, block.label);
  if (other) throw other;
  if (block.label === "ENCRYPTED PRIVATE KEY" || /Proc-Type: *4, *ENCRYPTED/.test(block.pem)) {
    throw new KeyFormatError(
      `${what} is encrypted: decrypt it to a file kept as offline as the key itself, ` +
        `\`openssl pkey -in <encrypted.pem> -out <plain.pem>\` (it asks for the pass phrase), ` +
        `and give that file`,
    );
  }
  if (block.label === "PUBLIC KEY") {
    throw new KeyFormatError(`${what} is a public key: signing needs the private key`);
  }
  const jwk = ed25519Of(block, what, "private", (pem) => createPrivateKey(pem));
  return fromBase64Url(jwk.d as string);
}

/**
 * The raw Ed25519 public key in `text`, as unpadded base64url (the form the NOC stores and
 * appliances pin): `text` is a PEM `PUBLIC KEY` (SubjectPublicKeyInfo, as
 * `openssl pkey -pubout` writes) or already the raw key in unpadded base64url. Only the form is
 * checked here: whether the key is a usable one (not of small order, …) is `parsePublicKey`'s
 * (protocol/crypto/ed25519.ts). Throws {@link KeyFormatError} naming the problem; a private key
 * is refused with the command that gives its public half, and never quoted.
 */
export function readEd25519PublicKey(text: string, what: string): string {
  if (text.length > MAX_KEY_TEXT) {
    throw new KeyFormatError(`${what} is longer than ${MAX_KEY_TEXT} characters: not a key`);
  }
  const trimmed = text.trim();
  if (base64Url32.test(trimmed)) return trimmed;
  if (!looksLikePem(text)) {
    throw new KeyFormatError(
      `${what} is not an Ed25519 public key: give it in PEM (\`openssl pkey -in <key.pem> ` +
        `-pubout\`) or as 43 base64url characters (what \`noc keygen\` prints)`,
    );
  }
  const block = onePemBlock(text, what);
  if (/PRIVATE KEY$/.test(block.label)) {
    throw new KeyFormatError(
      `${what} is a private key; keep it offline and give its public half ` +
        `(\`openssl pkey -in <key.pem> -pubout\`)`,
    );
  }
  const other = otherLabel(what, block.label);
  if (other) throw other;
  return ed25519Of(block, what, "public", (pem) => createPublicKey(pem)).x as string;
}
