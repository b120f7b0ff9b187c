/**
 * The catalog document (spec, FIGURE 8) every program shares: its shape, the
 * bytes its signature covers, the NOC's signing of it, and the appliance's
 * check of it — signed by a pinned NOC key, made for this appliance, not
 * expired (freeze attacks) and not older than the last one accepted
 * (rollback attacks, as in TUF).
 *
 * @module
 */
import { type InstallWindow, installWindowSchema } from "./install_window.ts";
import { z } from "zod";
import { nameSchema } from "./schemas.ts";
import {
  type Ed25519Key,
  ed25519Sign,
  ed25519Verify,
  importEd25519Public,
} from "./crypto/ed25519.ts";
import { fromBase64Url, sha256, toBase64, toBase64Url, toHex, utf8 } from "./util/encoding.ts";
import type { PublishedKey } from "./keys.ts";
import { endorsementSchema } from "./release_keys.ts";
import { isInnerList, parseDictionary } from "./http/structured_fields.ts";

/** fileinfo for a file component. */
export interface FileInfo {
  /** Destination path, relative to the appliance root. */
  destination: string;
  /** File mode, octal text. */
  mode: string;
  /** Follow-up command (argv), if any. */
  action: string[] | null;
  /** The spec's UPLOAD DIR. */
  uploadDir: string | null;
  /** The spec's UPLOAD SERVER. */
  uploadServer: string | null;
  /** Key id of the package-signing key that signed this fileinfo (required when `action` is set). */
  signer?: string;
  /** Ed25519 signature over the fileinfo, base64url (see protocol/fileinfo.ts). */
  signature?: string;
}

/** One component line of a catalog. */
export interface CatalogEntry {
  kind: "package" | "file";
  app: string;
  name: string;
  version: string;
  size: number;
  sha256: string;
  /** Download URLs, in order of preference. */
  urls: string[];
  /** Packages: the key id that signed it. */
  signer?: string;
  /** Packages: the content key, HPKE-wrapped to this appliance. */
  wrappedKey?: string;
  /** Files: install instructions (null when the application has none for this file). */
  fileinfo?: FileInfo | null;
  /**
   * An urgent release (issue 22 item 5): installed even outside the catalog's
   * {@link CatalogDocument.installWindow}. Absent: not urgent.
   */
  urgent?: boolean;
}

/** The catalog document an appliance receives (inside a signed envelope). */
export interface CatalogDocument {
  format: "noc-catalog/1";
  uid: string;
  serial: number;
  issuedAt: string;
  expiresAt: string;
  intervalS: number;
  /**
   * The NOC's limits on what this appliance sends (absent from older NOCs: the agent assumes
   * {@link DEFAULT_REPORT_LIMITS}). Signed with the catalog, so nothing unsigned can shrink them.
   */
  limits?: ReportLimits;
  /**
   * When this appliance may install (protocol/install_window.ts): outside it the agent downloads
   * but defers installs, except urgent ones. Absent: at any time.
   */
  installWindow?: InstallWindow;
  keys: PublishedKey[];
  components: CatalogEntry[];
}

/** What a NOC accepts from an appliance (docs/protocol.md, "The SecureBeat's limits"). */
export interface ReportLimits {
  /** Most bytes of a request body (the SecureBeat's JSON). */
  bodyBytes: number;
  /** Most bytes of one application's data in `apps` (its JSON). */
  appDataBytes: number;
  /** Most entries of `components`. */
  components: number;
}

/** The limits a NOC that announces none applies (the NOC's defaults). */
export const DEFAULT_REPORT_LIMITS: ReportLimits = {
  bodyBytes: 256 * 1024,
  appDataBytes: 16 * 1024,
  components: 2000,
};

/** The signed envelope: `catalog` is the document's exact JSON text, `signature` covers it. */
export interface CatalogEnvelope {
  catalog: string;
  kid: string;
  signature: string;
}

/** The most keys a catalog's key list may carry (the NOC's keys and its release keys together). */
export const CATALOG_KEYS_MAX = 64;

/** The most bytes of a catalog response an appliance reads (the document is at most 16 MiB of JSON). */
export const CATALOG_BODY_LIMIT = 40 * 1024 * 1024;

/** The bytes a catalog signature covers. */
export function catalogSigningBytes(catalog: string): Uint8Array<ArrayBuffer> {
  return utf8(`noc-catalog/1\n${catalog}`);
}

/** Signs a catalog document. */
export async function signCatalog(
  doc: CatalogDocument,
  signer: { kid: string; privateKey: Ed25519Key },
): Promise<CatalogEnvelope> {
  const catalog = JSON.stringify(doc);
  const sig = await ed25519Sign(signer.privateKey, catalogSigningBytes(catalog));
  return { catalog, kid: signer.kid, signature: toBase64Url(sig) };
}

/** A catalog that must not be used; `reason` is a stable code. */
export class CatalogError extends Error {
  /** Creates an error with a stable reason code. */
  constructor(
    readonly reason:
      | "malformed"
      | "unknown_key"
      | "bad_signature"
      | "wrong_appliance"
      | "expired"
      | "rollback"
      | "unbound"
      | "bad_binding",
    message: string,
  ) {
    super(message);
  }
}

const envelopeSchema = z.strictObject({
  catalog: z.string().max(16 * 1024 * 1024),
  kid: z.string().max(32),
  signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
});

const documentSchema = z.object({
  format: z.literal("noc-catalog/1"),
  uid: z.string(),
  serial: z.number().int().min(1),
  issuedAt: z.string(),
  expiresAt: z.iso.datetime({ offset: true }),
  intervalS: z.number().int().min(1),
  limits: z.object({
    bodyBytes: z.number().int().min(1024),
    appDataBytes: z.number().int().min(1),
    components: z.number().int().min(1),
  }).optional(),
  installWindow: installWindowSchema.optional(),
  keys: z.array(z.object({
    kid: z.string().max(64),
    alg: z.literal("ed25519"),
    use: z.array(z.enum(["catalog", "package"])).max(2),
    publicKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
    notAfter: z.iso.datetime({ offset: true }).nullable(),
    // A release key's endorsement by the key that vouched for it (protocol/release_keys.ts).
    endorsement: endorsementSchema.optional(),
  })).max(CATALOG_KEYS_MAX),
  // Names become paths on the appliance and fileinfo says where files go: checked here, once.
  components: z.array(z.object({
    kind: z.enum(["package", "file"]),
    app: nameSchema,
    name: nameSchema,
    version: z.string().min(1).max(128),
    size: z.number().int().min(0),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    urls: z.array(z.url()).min(1),
    signer: z.string().optional(),
    wrappedKey: z.string().optional(),
    fileinfo: z.object({
      destination: z.string().min(1),
      mode: z.string().regex(/^0?[0-7]{3,4}$/),
      action: z.array(z.string().min(1)).min(1).nullable(),
      uploadDir: z.string().nullable(),
      uploadServer: z.string().nullable(),
      signer: z.string().max(64).optional(),
      signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/).optional(),
    }).nullable().optional(),
    urgent: z.boolean().optional(),
  })),
});

/**
 * The key that may sign a catalog and its binding: the pinned *current* NOC key (catalog use, no
 * end date). A retired NOC key, even inside its end date, signs no catalog once its successor is
 * pinned: its remaining time serves only the packages it signed (a stolen retired key cannot take
 * over appliances that moved on). Throws {@link CatalogError} `unknown_key` (the agent then walks
 * the key chain).
 */
export function catalogKey(
  pinned: readonly PublishedKey[],
  kid: string,
  what: string,
): PublishedKey {
  const key = pinned.find((k) => k.kid === kid && k.use.includes("catalog"));
  if (key && key.notAfter === null) return key;
  throw new CatalogError(
    "unknown_key",
    key
      ? `${what} is signed by key "${
        kid.slice(0, 64)
      }", which was retired: only the current NOC key signs catalogs`
      : `${what} is signed by key "${kid.slice(0, 64)}", which is not pinned`,
  );
}

/** Verifies a catalog response body and returns its document; throws {@link CatalogError}. */
export async function verifyCatalog(body: string, options: {
  pinned: readonly PublishedKey[];
  uid: string;
  lastSerial: number;
  now: Date;
}): Promise<CatalogDocument> {
  let envelope;
  try {
    envelope = envelopeSchema.parse(JSON.parse(body));
  } catch {
    throw new CatalogError("malformed", "Catalog response is not a signed catalog envelope");
  }
  const key = catalogKey(options.pinned, envelope.kid, "Catalog");
  let signature: Uint8Array<ArrayBuffer>;
  try {
    signature = fromBase64Url(envelope.signature);
  } catch {
    // Found by the property tests: a signature that is not canonical base64url is a bad one.
    throw new CatalogError("bad_signature", "Catalog signature is not base64url");
  }
  const ok = await ed25519Verify(
    await importEd25519Public(fromBase64Url(key.publicKey)),
    signature,
    catalogSigningBytes(envelope.catalog),
  );
  if (!ok) throw new CatalogError("bad_signature", "Catalog signature does not verify");
  let doc: CatalogDocument;
  try {
    doc = documentSchema.parse(JSON.parse(envelope.catalog)) as CatalogDocument;
  } catch {
    throw new CatalogError("malformed", "Catalog document is malformed");
  }
  if (doc.uid !== options.uid) {
    throw new CatalogError(
      "wrong_appliance",
      `Catalog is for appliance "${doc.uid}", not "${options.uid}"`,
    );
  }
  if (Date.parse(doc.expiresAt) <= options.now.getTime()) {
    throw new CatalogError("expired", `Catalog expired at ${doc.expiresAt}`);
  }
  if (doc.serial < options.lastSerial) {
    throw new CatalogError(
      "rollback",
      `Catalog serial ${doc.serial} is older than ${options.lastSerial}`,
    );
  }
  return doc;
}

/** The report intervals a NOC hands out, seconds (`NOC_REPORT_INTERVAL_S`, the admin API's range). */
export const INTERVAL_RANGE_S = { min: 10, max: 86400 } as const;

/** An interval clamped to {@link INTERVAL_RANGE_S}: what an appliance sleeps, whatever it was told. */
export function clampIntervalS(s: number): number {
  if (!Number.isFinite(s)) return INTERVAL_RANGE_S.max;
  return Math.min(INTERVAL_RANGE_S.max, Math.max(INTERVAL_RANGE_S.min, Math.round(s)));
}

/** The response header carrying the catalog binding. */
export const CATALOG_BINDING_HEADER = "catalog-binding";

/**
 * The bytes a catalog binding signature covers (as Omaha's CUP): the appliance,
 * the nonce of the request that asked (its RFC 9421 signature's `nonce`), and
 * the SHA-256 of the catalog response body the appliance will use — the body
 * of a 200, or the cached body a 304 confirms.
 */
export function catalogBindingBytes(
  uid: string,
  nonce: string,
  bodySha256Hex: string,
): Uint8Array<ArrayBuffer> {
  return utf8(`noc-catalog-binding/1\n${uid}\n${nonce}\n${bodySha256Hex}`);
}

/**
 * Signs a catalog binding; returns the `Catalog-Binding` header value, an
 * RFC 9651 dictionary: `kid="<key id>", sig=:<base64 Ed25519 signature>:`.
 */
export async function signCatalogBinding(
  signer: { kid: string; privateKey: Ed25519Key },
  uid: string,
  nonce: string,
  bodySha256Hex: string,
): Promise<string> {
  const sig = await ed25519Sign(signer.privateKey, catalogBindingBytes(uid, nonce, bodySha256Hex));
  return `kid="${signer.kid}", sig=:${toBase64(sig)}:`;
}

/**
 * Checks a `Catalog-Binding` header: signed by a pinned, unexpired catalog
 * key over this appliance, the nonce it sent and the SHA-256 of `body`.
 * Throws {@link CatalogError} (`unbound`, `unknown_key`, `bad_binding`).
 */
export async function verifyCatalogBinding(header: string | null, options: {
  pinned: readonly PublishedKey[];
  uid: string;
  nonce: string;
  body: string;
  now: Date;
}): Promise<void> {
  if (header === null || header.length > 512) {
    throw new CatalogError(
      "unbound",
      "Catalog answer carries no Catalog-Binding: it is not shown to answer this request",
    );
  }
  let kid: unknown;
  let sig: unknown;
  try {
    const dict = parseDictionary(header);
    const k = dict.find(([n]) => n === "kid")?.[1];
    const s = dict.find(([n]) => n === "sig")?.[1];
    kid = k && !isInnerList(k) ? k.value : undefined;
    sig = s && !isInnerList(s) ? s.value : undefined;
  } catch {
    // Malformed: refused below.
  }
  if (typeof kid !== "string" || !(sig instanceof Uint8Array) || sig.length !== 64) {
    throw new CatalogError("unbound", "Catalog-Binding is malformed");
  }
  const key = catalogKey(options.pinned, kid, "Catalog binding");
  const digest = toHex(await sha256(options.body));
  const ok = await ed25519Verify(
    await importEd25519Public(fromBase64Url(key.publicKey)),
    new Uint8Array(sig),
    catalogBindingBytes(options.uid, options.nonce, digest),
  );
  if (!ok) {
    throw new CatalogError(
      "bad_binding",
      "Catalog binding does not verify: the answer was not made for this request (a replay?)",
    );
  }
}
