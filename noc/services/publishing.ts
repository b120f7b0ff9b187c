/**
 * Publishing components: packages signed by the NOC (encrypted here as they
 * stream in), packages signed offline with a release key (verified and fully
 * test-decrypted before they are accepted), and files. A name and version
 * can be published again only with the same content.
 *
 * Everything publishing needs is measured while the upload streams into the
 * database, never by reading the blob back — with one exception: the served
 * digest of a package the NOC encrypts itself covers the prefix, which signs
 * the ciphertext's digest and so exists only once the ciphertext is stored.
 *
 * Every package's plaintext payload is checked in the same pass, as the agent
 * will unpack it (protocol/package/payload.ts: gzip, a tar the agent's rules
 * accept, an executable `install` at its top, within the agent's limits): a
 * payload that fails is refused with a `PayloadError` (answered
 * `400 bad_payload`) and nothing is kept. Files are not checked.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { AppDeps } from "./deps.ts";
import type { Sql } from "../db/db.ts";
import { ApiError } from "../../protocol/http/errors.ts";
import { type BlobInfo, completeBlob, deleteBlob, readBlob, writeBlob } from "./blobs.ts";
import {
  checkCiphertextDigest,
  ChunkOpener,
  defaultChunkSize,
  encryptChunks,
  importContentKey,
  newContentKey,
  PackageError,
  packageFormat,
  type PackageHeader,
  packagePrefix,
  unwrapContentKey,
  verifyPackagePrefix,
} from "../../protocol/package/format.ts";
import { splitPackagePrefix } from "../../protocol/package/scan.ts";
import { PayloadInspector } from "../../protocol/package/payload.ts";
import { type NocKeys, openAtRest, sealAtRest } from "./signing_keys.ts";
import { type PublishedKey } from "../../protocol/keys.ts";
import type { Endorsement } from "../../protocol/release_keys.ts";
import { toBase64Url } from "../../protocol/util/encoding.ts";
import {
  type ComponentRef,
  type ComponentVersion,
  componentVersionOf,
} from "../../protocol/schemas.ts";

/** A stored component, as the admin API shows it. */
export interface ComponentRow extends ComponentVersion {
  content_sha256: string;
  signer_kid: string | null;
  created_at: Date;
}

/** The admin API's JSON for a component. */
export function componentJson(r: ComponentRow): Record<string, unknown> {
  return {
    ...componentVersionOf(r),
    contentSha256: r.content_sha256,
    signerKid: r.signer_kid,
    createdAt: r.created_at.toISOString(),
  };
}

/** The keys that may sign packages now: the NOC's (unless release keys are required) and registered release keys. */
export async function packageSigners(deps: Pick<AppDeps, "db" | "keys">): Promise<PublishedKey[]> {
  return (await publishedKeys(deps)).filter((k) => k.use.includes("package"));
}

/**
 * How long a retired release key stays in catalogs' key lists (days). Every appliance that checked
 * in meanwhile has pinned its end date; one that did not treats a key a list leaves out as retired
 * (docs/protocol.md), so dropping it then changes nothing, and keeps the list within
 * CATALOG_KEYS_MAX however many keys were ever retired.
 */
export const RETIRED_KEY_LISTED_DAYS = 30;

/**
 * Every key appliances should pin: the NOC's keys, then registered release keys, each with the
 * endorsement that vouched for it when it has one (protocol/release_keys.ts).
 * Release keys retired more than RETIRED_KEY_LISTED_DAYS ago are left out.
 */
export async function publishedKeys(
  deps: Pick<AppDeps, "db" | "keys">,
): Promise<Array<PublishedKey & { endorsement?: Endorsement }>> {
  const rows = await deps.db.sql<
    { kid: string; public_key: string; not_after: Date | null; endorsement: string | null }
  >`
    select kid, public_key, not_after, endorsement from release_keys
    where not_after is null or not_after > now() - make_interval(days => ${RETIRED_KEY_LISTED_DAYS})
    order by created_at`;
  return [
    ...deps.keys.published,
    ...rows.map((r): PublishedKey & { endorsement?: Endorsement } => ({
      kid: r.kid,
      alg: "ed25519",
      use: ["package"],
      publicKey: r.public_key,
      notAfter: r.not_after?.toISOString() ?? null,
      ...(r.endorsement ? { endorsement: JSON.parse(r.endorsement) as Endorsement } : {}),
    })),
  ];
}

async function* hashing(input: AsyncIterable<Uint8Array>, hash: ReturnType<typeof createHash>) {
  for await (const p of input) {
    hash.update(p);
    yield p;
  }
}

async function* counting(input: AsyncIterable<Uint8Array>, counter: { n: number }) {
  for await (const p of input) {
    counter.n += p.length;
    yield p;
  }
}

/**
 * The SHA-256 of a served package: its prefix, then its ciphertext blob, read
 * back (only for packages the NOC encrypts: their prefix exists only after).
 */
async function packageDigest(deps: AppDeps, prefix: Uint8Array, blobId: number): Promise<string> {
  const h = createHash("sha256");
  h.update(prefix);
  for await (const p of readBlob(deps.db, blobId)) h.update(p);
  return h.digest("hex");
}

async function insertComponent(
  deps: AppDeps,
  blobId: number,
  values: ComponentRef & {
    size: number;
    sha256: string;
    contentSha256: string;
    header?: PackageHeader;
    prefix?: Uint8Array;
    signerKid?: string;
    contentKey?: Uint8Array<ArrayBuffer>;
  },
): Promise<{ row: ComponentRow; created: boolean }> {
  const now = deps.clock.now();
  const ctx = `${values.kind}/${values.app}/${values.name}/${values.version}`;
  const sealed = values.contentKey ? await sealAtRest(deps.keys, values.contentKey, ctx) : null;
  const existing = async (tx: Sql) =>
    (await tx<ComponentRow>`
      select id, kind, app, name, version, size, sha256, content_sha256, signer_kid, created_at from components
      where kind = ${values.kind} and app = ${values.app} and name = ${values.name} and version = ${values.version}`)[
      0
    ];
  const result = await deps.db.begin(async (tx) => {
    const old = await existing(tx);
    if (old) return { row: old, created: false };
    await completeBlob(tx, blobId);
    const inserted = await tx<ComponentRow>`
      insert into components (kind, app, name, version, blob_id, size, sha256, content_sha256, header, prefix,
        signer_kid, sealed_key, created_at)
      values (${values.kind}, ${values.app}, ${values.name}, ${values.version}, ${blobId}, ${values.size},
        ${values.sha256}, ${values.contentSha256}, ${values.header ?? null}, 
        ${values.prefix ? toBase64Url(values.prefix) : null}, ${
      values.signerKid ?? null
    }, ${sealed}, ${now})
      on conflict (kind, app, name, version) do nothing
      returning id, kind, app, name, version, size, sha256, content_sha256, signer_kid, created_at`;
    if (inserted[0]) return { row: inserted[0], created: true };
    return { row: (await existing(tx))!, created: false };
  });
  if (!result.created) {
    await deleteBlob(deps.db, blobId);
    if (result.row.content_sha256 !== values.contentSha256) {
      throw new ApiError(
        409,
        "version_exists",
        `${values.kind} ${values.app}/${values.name} version "${values.version}" already exists with different content`,
      );
    }
  }
  return result;
}

/**
 * A {@link PayloadInspector} fed as a payload streams by. Each piece is handed on only once the
 * inspector has taken it (backpressure: nothing piles up). `failFast` (the NOC-signed path) ends
 * the stream at the first failure the inspector reports; otherwise (signed packages, whose own
 * refusals come first) the failure is kept for {@link PayloadCheck.end} and the rest of the
 * payload streams by uninspected.
 */
class PayloadCheck {
  #inspector = new PayloadInspector();
  #failure: unknown = null;
  #ended = false;
  #failFast: boolean;

  constructor(opts: { failFast: boolean }) {
    this.#failFast = opts.failFast;
  }

  /** Inspects `piece` (a view the inspector may keep: the caller must not modify it). */
  async push(piece: Uint8Array): Promise<void> {
    if (this.#failure !== null) return;
    try {
      await this.#inspector.push(piece);
    } catch (e) {
      this.#failure = e;
      if (this.#failFast) throw e;
    }
  }

  /** Yields `input`'s pieces, each once inspected. */
  async *inspect(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const piece of input) {
      await this.push(piece);
      yield piece;
    }
  }

  /** The payload ended: throws the `PayloadError` naming what is wrong with it, if anything. */
  async end(): Promise<void> {
    this.#ended = true;
    if (this.#failure !== null) {
      await this.#inspector.end().catch(() => {});
      throw this.#failure;
    }
    await this.#inspector.end();
  }

  /** Stops inspecting a payload that will not be published anyway (frees the inspector). */
  async abandon(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    await this.#inspector.end().catch(() => {});
  }
}

/**
 * Publishes a package from its plaintext payload: the NOC checks it (refusing, with a
 * `PayloadError`, a payload no agent could install as soon as that shows), encrypts it and
 * signs it with its own key.
 */
export async function publishPayload(
  deps: AppDeps,
  ref: Omit<ComponentRef, "kind">,
  payload: AsyncIterable<Uint8Array>,
): Promise<{ row: ComponentRow; created: boolean }> {
  const nocKey = deps.keys.published[0]!;
  if (!nocKey.use.includes("package")) {
    throw new ApiError(
      400,
      "release_key_required",
      "This NOC accepts only packages signed with a release key: build with `deno task noc package --key`",
    );
  }
  const contentKey = newContentKey();
  const key = await importContentKey(contentKey);
  const plainHash = createHash("sha256");
  const plain = { n: 0 };
  const now = deps.clock.now();
  const check = new PayloadCheck({ failFast: true });
  let blob: BlobInfo | null = null;
  try {
    blob = await writeBlob(
      deps.db,
      encryptChunks(
        counting(hashing(check.inspect(payload), plainHash), plain),
        key,
        defaultChunkSize,
      ),
      now,
    );
    await check.end();
    const header: PackageHeader = {
      format: packageFormat,
      app: ref.app,
      name: ref.name,
      version: ref.version,
      size: plain.n,
      chunkSize: defaultChunkSize,
      ciphertextSize: blob.size,
      ciphertextSha256: blob.sha256,
      kid: deps.keys.kid,
      createdAt: now.toISOString(),
    };
    const prefix = await packagePrefix(header, {
      kid: deps.keys.kid,
      privateKey: deps.keys.privateKey,
    });
    return await insertComponent(deps, blob.id, {
      kind: "package",
      ...ref,
      size: prefix.length + blob.size,
      sha256: await packageDigest(deps, prefix, blob.id),
      contentSha256: plainHash.digest("hex"),
      header,
      prefix,
      signerKid: deps.keys.kid,
      contentKey,
    });
  } catch (e) {
    await check.abandon();
    if (blob) await deleteBlob(deps.db, blob.id).catch(() => {});
    throw e;
  }
}

/**
 * Why an upload's `X-NOC-Wrapped-Key` did not unwrap, for whoever wrapped it: on upload the
 * content key is sealed to the NOC itself (its `encryptionKey`), not to an appliance, with HPKE
 * `info` naming this package (docs/protocol.md, "Publishing packages"). Reason `decrypt_failed`.
 */
function uploadKeyError(deps: AppDeps, h: PackageHeader): PackageError {
  const info = [`${packageFormat} content key`, h.app, h.name, h.version, h.ciphertextSha256]
    .join("\\n");
  return new PackageError(
    "decrypt_failed",
    `X-NOC-Wrapped-Key does not unwrap with this NOC's key: it must be the content key sealed (HPKE) to this NOC's encryptionKey ${deps.keys.hpke.publicKey} (GET /v1/keys), not to an appliance's, with info "${info}" (from this package's header). A key wrapped for another NOC (or before its master key changed), or for another name, version or ciphertext, does not open; \`deno task noc package --key\` wraps it so`,
  );
}

/**
 * Publishes a package built and signed elsewhere (`noc package --key`): the
 * signature must be a trusted package signer's, and the content key, wrapped
 * to the NOC, must decrypt the whole ciphertext before it is accepted. One
 * pass: as the ciphertext streams into the database it is hashed twice (the
 * served bytes, prefix first; the ciphertext alone, against the signed
 * digest), counted, and test-decrypted chunk by chunk; the plaintext is
 * hashed and checked as the agent will unpack it, never kept. Refusals keep
 * their order: a ciphertext longer than its header says fails as it arrives;
 * then its size, its digest, a chunk that did not decrypt, and only then a
 * payload no agent could install (`PayloadError`). A refused upload
 * leaves no blob.
 */
export async function publishSignedPackage(
  deps: AppDeps,
  body: AsyncIterable<Uint8Array>,
  wrappedKey: string,
): Promise<{ row: ComponentRow; created: boolean }> {
  const { prefix, prefixBytes, header: h, rest } = await splitPackagePrefix(body);
  await verifyPackagePrefix(prefix, await packageSigners(deps), deps.clock.now());
  const contentKey = await unwrapContentKey(wrappedKey, deps.keys.hpke.privateKey, h).catch(
    (e: unknown) => {
      throw e instanceof PackageError ? uploadKeyError(deps, h) : e;
    },
  );
  const opener = new ChunkOpener(await importContentKey(contentKey), h);
  const served = createHash("sha256").update(prefixBytes);
  const plainHash = createHash("sha256");
  const check = new PayloadCheck({ failFast: false });
  async function* inspected(): AsyncGenerator<Uint8Array> {
    let n = 0;
    for await (const piece of rest) {
      n += piece.length;
      if (n > h.ciphertextSize) {
        throw new PackageError(
          "size_mismatch",
          "Package ciphertext is longer than its header says",
        );
      }
      served.update(piece);
      for (const plain of await opener.push(piece)) {
        plainHash.update(plain);
        await check.push(plain);
      }
      yield piece;
    }
  }
  let blob: BlobInfo | null = null;
  try {
    blob = await writeBlob(deps.db, inspected(), deps.clock.now());
    // The blob's size and SHA-256 were measured on the way in: they are the ciphertext's.
    checkCiphertextDigest(blob, h);
    opener.end();
    await check.end();
    return await insertComponent(deps, blob.id, {
      kind: "package",
      app: h.app,
      name: h.name,
      version: h.version,
      size: prefixBytes.length + blob.size,
      sha256: served.digest("hex"),
      contentSha256: plainHash.digest("hex"),
      header: h,
      prefix: prefixBytes,
      signerKid: h.kid,
      contentKey,
    });
  } catch (e) {
    await check.abandon();
    if (blob) await deleteBlob(deps.db, blob.id).catch(() => {});
    throw e;
  }
}

/** Publishes a file (files are neither signed nor encrypted; their digest travels in the signed catalog). */
export async function publishFile(
  deps: AppDeps,
  ref: Omit<ComponentRef, "kind">,
  content: AsyncIterable<Uint8Array>,
): Promise<{ row: ComponentRow; created: boolean }> {
  const blob = await writeBlob(deps.db, content, deps.clock.now());
  try {
    return await insertComponent(deps, blob.id, {
      kind: "file",
      ...ref,
      size: blob.size,
      sha256: blob.sha256,
      contentSha256: blob.sha256,
    });
  } catch (e) {
    await deleteBlob(deps.db, blob.id).catch(() => {});
    throw e;
  }
}

/** Packages' content keys, unsealed once and kept (bounded) in memory; built by `createDeps()`. */
export interface ContentKeyCache {
  /** A package's content key, unsealed (a copy the caller may keep). */
  get(
    c: { kind: string; app: string; name: string; version: string; sealed_key: string },
  ): Promise<Uint8Array<ArrayBuffer>>;
}

/**
 * Every appliance's catalog wraps the same content key: this cache unseals it once per process
 * (at most `max` keys, oldest dropped first; a failed unseal is not kept).
 */
export function contentKeyCache(keys: NocKeys, max = 10_000): ContentKeyCache {
  const cache = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();
  return {
    async get(c) {
      const id = `${c.kind}/${c.app}/${c.name}/${c.version}\n${c.sealed_key}`;
      let key = cache.get(id);
      if (!key) {
        key = openAtRest(keys, c.sealed_key, `${c.kind}/${c.app}/${c.name}/${c.version}`);
        key.catch(() => cache.delete(id));
        if (cache.size >= max) cache.delete(cache.keys().next().value!);
        cache.set(id, key);
      }
      return (await key).slice();
    },
  };
}
