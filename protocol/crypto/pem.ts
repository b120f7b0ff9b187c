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
 * @module
 */
import { fromBase64, fromBase64Url, toBase64Url } from "../util/encoding.ts";

/** The most characters of key text read (a PEM Ed25519 key is about 120; an RSA one a few KiB). */
export const MAX_KEY_TEXT = 16 * 1024;

/** A key in a form this module does not take; the message says what it is and what to do. */
export class KeyFormatError extends Error {}

/** A command that makes an Ed25519 private key in PEM, for messages. */
export const OPENSSL_GENPKEY = "openssl genpkey -algorithm ed25519 -out release.pem";

const base64Url32 = /^[A-Za-z0-9_-]{43}$/;

/** Algorithm object identifiers (DER content bytes, hex) and what to call them in messages. */
const algorithms: Record<string, string> = {
  "2b6570": "Ed25519",
  "2b6571": "Ed448",
  "2b656e": "X25519",
  "2b656f": "X448",
  "2a864886f70d010101": "RSA",
  "2a864886f70d01010a": "RSA-PSS",
  "2a8648ce3d0201": "EC",
  "2a8648ce380401": "DSA",
  "2a864886f70d010301": "DH",
};

/** One PEM block: its label (`PRIVATE KEY`, …) and the DER bytes it carries. */
interface PemBlock {
  label: string;
  der: Uint8Array<ArrayBuffer>;
  /** Whether it has RFC 1421 headers (`Proc-Type: 4,ENCRYPTED` of a legacy encrypted key). */
  headers: boolean;
}

/** True when `text` holds a PEM armour line (`-----BEGIN …-----`). */
export function looksLikePem(text: string): boolean {
  return /-----BEGIN [A-Z0-9 ]{1,40}-----/.test(text);
}

/**
 * The PEM blocks of `text` (explanatory text around them is ignored, RFC 7468 §2); throws
 * {@link KeyFormatError} for a block that does not end or whose base64 is bad. `what` names the
 * input in messages.
 */
function pemBlocks(text: string, what: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const begin = /-----BEGIN ([A-Z0-9 ]{1,40})-----/g;
  for (let m = begin.exec(text); m; m = begin.exec(text)) {
    const label = m[1]!;
    const endLine = `-----END ${label}-----`;
    const end = text.indexOf(endLine, begin.lastIndex);
    if (end < 0) throw new KeyFormatError(`${what}: its PEM "${label}" block has no END line`);
    let body = text.slice(begin.lastIndex, end);
    const headers = /^\s*[A-Za-z-]+:/.test(body);
    if (headers) body = body.slice(body.search(/\r?\n\s*\r?\n/) + 1);
    let der: Uint8Array<ArrayBuffer>;
    try {
      der = fromBase64(body.replace(/\s+/g, ""));
    } catch {
      throw new KeyFormatError(`${what}: its PEM "${label}" block is not base64`);
    }
    blocks.push({ label, der, headers });
    begin.lastIndex = end + endLine.length;
  }
  return blocks;
}

/** A DER element: tag byte and content bytes. */
interface Der {
  tag: number;
  content: Uint8Array<ArrayBuffer>;
}

/** The DER elements one after another in `bytes` (definite lengths only); throws on a bad one. */
function derElements(bytes: Uint8Array<ArrayBuffer>): Der[] {
  const out: Der[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (out.length >= 16) throw new TypeError("too many DER elements");
    const tag = bytes[at++]!;
    if ((tag & 0x1f) === 0x1f) throw new TypeError("multi-byte DER tag");
    if (at >= bytes.length) throw new TypeError("truncated DER");
    let len = bytes[at++]!;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 3 || at + n > bytes.length) throw new TypeError("bad DER length");
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + bytes[at++]!;
    }
    if (at + len > bytes.length) throw new TypeError("truncated DER");
    out.push({ tag, content: bytes.slice(at, at + len) });
    at += len;
  }
  return out;
}

/** The one element `bytes` holds, which must have tag `tag`. */
function derOne(bytes: Uint8Array<ArrayBuffer>, tag: number): Der {
  const els = derElements(bytes);
  if (els.length !== 1 || els[0]!.tag !== tag) throw new TypeError("unexpected DER structure");
  return els[0]!;
}

const SEQUENCE = 0x30, INTEGER = 0x02, OCTET_STRING = 0x04, BIT_STRING = 0x03, OID = 0x06;

/** The algorithm of an AlgorithmIdentifier: its name, or the OID in hex when unknown. */
function algorithmOf(algorithmIdentifier: Der): { name: string; hasParameters: boolean } {
  if (algorithmIdentifier.tag !== SEQUENCE) throw new TypeError("no AlgorithmIdentifier");
  const [oid, ...params] = derElements(algorithmIdentifier.content);
  if (oid?.tag !== OID) throw new TypeError("no algorithm OID");
  const hex = Array.from(oid.content, (b) => b.toString(16).padStart(2, "0")).join("");
  return { name: algorithms[hex] ?? `OID ${hex}`, hasParameters: params.length > 0 };
}

/** "a" or "an" before an algorithm's name as it is spoken ("an RSA", "a DSA"). */
const article = (name: string) => /^(DSA|DH)/.test(name) ? "a" : "an";

function notEd25519(what: string, algorithm: string, kind: "private" | "public"): KeyFormatError {
  return new KeyFormatError(
    `${what} is ${article(algorithm)} ${algorithm} ${kind} key, not Ed25519: release keys are ` +
      `Ed25519 (make one with \`${OPENSSL_GENPKEY}\`)`,
  );
}

/** The 32-byte seed of a PKCS#8 (v1 or v2) Ed25519 private key; throws {@link KeyFormatError}. */
function seedOfPkcs8(der: Uint8Array<ArrayBuffer>, what: string): Uint8Array<ArrayBuffer> {
  let els: Der[];
  try {
    els = derElements(derOne(der, SEQUENCE).content);
    const [version, algorithm, privateKey] = els;
    if (version?.tag !== INTEGER || algorithm === undefined || privateKey?.tag !== OCTET_STRING) {
      throw new TypeError("not a PKCS#8 PrivateKeyInfo");
    }
    const alg = algorithmOf(algorithm);
    if (alg.name !== "Ed25519") throw notEd25519(what, alg.name, "private");
    if (alg.hasParameters) throw new TypeError("Ed25519 AlgorithmIdentifier with parameters");
    if (version.content.length !== 1 || version.content[0]! > 1) {
      throw new TypeError("unknown PKCS#8 version");
    }
    const seed = derOne(privateKey.content, OCTET_STRING).content;
    if (seed.length !== 32) throw new TypeError(`Ed25519 private key of ${seed.length} bytes`);
    return seed;
  } catch (e) {
    if (e instanceof KeyFormatError) throw e;
    throw new KeyFormatError(
      `${what}: its PEM "PRIVATE KEY" is not a PKCS#8 Ed25519 key (${(e as Error).message})`,
    );
  }
}

/** The raw 32 bytes of an SPKI Ed25519 public key; throws {@link KeyFormatError}. */
function rawOfSpki(der: Uint8Array<ArrayBuffer>, what: string): Uint8Array<ArrayBuffer> {
  try {
    const [algorithm, key, ...rest] = derElements(derOne(der, SEQUENCE).content);
    if (algorithm === undefined || key?.tag !== BIT_STRING || rest.length > 0) {
      throw new TypeError("not a SubjectPublicKeyInfo");
    }
    const alg = algorithmOf(algorithm);
    if (alg.name !== "Ed25519") throw notEd25519(what, alg.name, "public");
    if (alg.hasParameters) throw new TypeError("Ed25519 AlgorithmIdentifier with parameters");
    if (key.content.length !== 33 || key.content[0] !== 0) {
      throw new TypeError(`Ed25519 public key of ${key.content.length - 1} bytes`);
    }
    return key.content.slice(1);
  } catch (e) {
    if (e instanceof KeyFormatError) throw e;
    throw new KeyFormatError(
      `${what}: its PEM "PUBLIC KEY" is not an Ed25519 public key (${(e as Error).message})`,
    );
  }
}

/** What a PEM label holds, for a message when it is not the block asked for. */
function describeLabel(label: string): string {
  if (/^(RSA|EC|DSA) (PRIVATE|PUBLIC) KEY$/.test(label)) {
    const [alg, kind] = label.split(" ") as [string, string];
    return `is ${article(alg)} ${alg} ${kind.toLowerCase()} key, not Ed25519: release keys are ` +
      `Ed25519 (make one with \`${OPENSSL_GENPKEY}\`)`;
  }
  if (label === "OPENSSH PRIVATE KEY") {
    return `is an OpenSSH private key; give an Ed25519 key in PEM (make one with \`${OPENSSL_GENPKEY}\`)`;
  }
  if (label === "CERTIFICATE") return "is a certificate, not a key";
  return `holds a PEM "${label}", not an Ed25519 key`;
}

/** The single PEM block of `text`; throws {@link KeyFormatError} when there is none or several. */
function onePemBlock(text: string, what: string): PemBlock {
  const blocks = pemBlocks(text, what);
  if (blocks.length === 0) throw new KeyFormatError(`${what} has a BEGIN line but no PEM block`);
  if (blocks.length > 1) {
    throw new KeyFormatError(
      `${what} holds ${blocks.length} PEM blocks (${
        blocks.map((b) => b.label).join(", ")
      }); give one key`,
    );
  }
  return blocks[0]!;
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
  if (
    block.label === "ENCRYPTED PRIVATE KEY" || (block.label === "PRIVATE KEY" && block.headers)
  ) {
    throw new KeyFormatError(
      `${what} is encrypted: decrypt it to a file kept as offline as the key itself, ` +
        `\`openssl pkey -in <encrypted.pem> -out <plain.pem>\` (it asks for the pass phrase), ` +
        `and give that file`,
    );
  }
  if (block.label === "PUBLIC KEY") {
    throw new KeyFormatError(`${what} is a public key: signing needs the private key`);
  }
  if (block.label !== "PRIVATE KEY") {
    throw new KeyFormatError(`${what} ${describeLabel(block.label)}`);
  }
  return seedOfPkcs8(block.der, what);
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
  if (block.label !== "PUBLIC KEY") {
    throw new KeyFormatError(`${what} ${describeLabel(block.label)}`);
  }
  return toBase64Url(rawOfSpki(block.der, what));
}
