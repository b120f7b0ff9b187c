// deno-lint-ignore-file no-explicit-any
/** Helpers for component tests: building payloads, publishing, fetching catalogs as an appliance. */
import assert from "node:assert/strict";
import { createTar, gzip } from "../protocol/package/tar.ts";
import { collectBytes } from "../protocol/util/bytes.ts";
import type { TestAppliance, TestNoc } from "./_harness.ts";
import { verifyCatalog } from "../protocol/catalog.ts";
import type { CatalogDocument } from "../protocol/catalog.ts";
import { createHash } from "node:crypto";
import {
  defaultChunkSize,
  encryptChunks,
  importContentKey,
  newContentKey,
  packageFormat,
  type PackageHeader,
  packagePrefix,
  wrapContentKey,
} from "../protocol/package/format.ts";
import { completeBlob, readBlob, writeBlob } from "../noc/services/blobs.ts";
import { type NocKeys, sealAtRest } from "../noc/services/signing_keys.ts";
import { fromBase64Url, toBase64Url } from "../protocol/util/encoding.ts";
import { buildPackage } from "../protocol/package/file.ts";

/** Builds a package payload (gzip tar) from files given as path → content. */
export async function payload(
  files: Record<string, string | Uint8Array>,
): Promise<Uint8Array<ArrayBuffer>> {
  const dir = await Deno.makeTempDir();
  try {
    for (const [path, content] of Object.entries(files)) {
      const full = `${dir}/${path}`;
      await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
      if (typeof content === "string") await Deno.writeTextFile(full, content, { mode: 0o755 });
      else await Deno.writeFile(full, content);
    }
    return await collectBytes(gzip(createTar(dir)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Uploads through the admin API; returns status and JSON. */
export async function upload(
  noc: TestNoc,
  path: string,
  body: Uint8Array<ArrayBuffer>,
  contentType: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const res = await noc.app.request(`https://noc.test${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${noc.adminToken}`, "content-type": contentType, ...headers },
    body,
  });
  return { status: res.status, body: await res.json() };
}

/** Publishes a NOC-signed package and assigns it to every appliance. */
export async function publishAndAssign(
  noc: TestNoc,
  ref: { app: string; name: string; version: string },
  files: Record<string, string | Uint8Array> = { install: "#!/bin/sh\nexit 0\n" },
  target: Record<string, unknown> = { type: "all" },
  extra: Record<string, unknown> = {},
): Promise<{ componentId: number; assignmentId: number }> {
  const up = await upload(
    noc,
    `/v1/admin/packages?app=${ref.app}&name=${ref.name}&version=${ref.version}`,
    await payload(files),
    "application/gzip",
  );
  if (up.status !== 201 && up.status !== 200) {
    throw new Error(`publish failed: ${JSON.stringify(up.body)}`);
  }
  const as = await noc.admin("POST", "/v1/admin/assignments", {
    kind: "package",
    ...ref,
    target,
    ...extra,
  });
  if (as.status !== 201) throw new Error(`assign failed: ${JSON.stringify(as.body)}`);
  return { componentId: up.body.id, assignmentId: as.body.id };
}

/** A package signed offline, as `noc package --out` writes it, and what its upload needs. */
export interface SignedPackage {
  /** The whole package file: signed prefix and ciphertext. */
  bytes: Uint8Array<ArrayBuffer>;
  /** Its content key wrapped to the NOC (HPKE), for the `x-noc-wrapped-key` header. */
  wrapped: string;
  /** Its signed header. */
  header: PackageHeader;
  /** Its content key (32 bytes). */
  contentKey: Uint8Array<ArrayBuffer>;
}

/**
 * Builds a package of `plain` (a payload, checked by nobody here) in 16 KiB chunks, signed offline
 * by `signer` (default: the NOC's own key, a signer it trusts), and wraps its content key to the
 * NOC. For `POST /v1/admin/packages` with `content-type: application/vnd.noc-package`.
 */
export async function signedPackage(
  noc: TestNoc,
  ref: { app: string; name: string; version: string },
  plain: Uint8Array<ArrayBuffer>,
  signer: Pick<NocKeys, "kid" | "privateKey"> = noc.deps.keys,
): Promise<SignedPackage> {
  const dir = await Deno.makeTempDir();
  try {
    const built = await buildPackage({
      plaintext: ReadableStream.from([plain]),
      ...ref,
      signer: { kid: signer.kid, privateKey: signer.privateKey },
      out: `${dir}/p`,
      now: noc.clock.now(),
      chunkSize: 16 * 1024,
    });
    const wrapped = await wrapContentKey(
      built.contentKey,
      fromBase64Url(noc.deps.keys.hpke.publicKey),
      built.header,
    );
    const bytes = await Deno.readFile(`${dir}/p`);
    return { bytes, wrapped, header: built.header, contentKey: built.contentKey };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Uploads a package signed offline through the admin API; returns status and JSON. */
export function uploadSigned(
  noc: TestNoc,
  pkg: Pick<SignedPackage, "bytes" | "wrapped">,
): Promise<{ status: number; body: any }> {
  return upload(noc, "/v1/admin/packages", pkg.bytes, "application/vnd.noc-package", {
    "x-noc-wrapped-key": pkg.wrapped,
  });
}

/**
 * Assigns `kind` `ref` to every appliance through the admin API; asserts it answered 201.
 * Returns the assignment's id.
 */
export async function assignToAll(
  noc: TestNoc,
  kind: "package" | "file",
  ref: { app: string; name: string; version: string },
): Promise<number> {
  const as = await noc.admin("POST", "/v1/admin/assignments", {
    kind,
    ...ref,
    target: { type: "all" },
  });
  assert.equal(as.status, 201, JSON.stringify(as.body));
  return as.body.id;
}

/** Fetches and verifies the appliance's catalog (https). */
export async function fetchCatalog(
  noc: TestNoc,
  a: TestAppliance,
  opts: { etag?: string; lastSerial?: number } = {},
): Promise<{ status: number; etag: string | null; doc: CatalogDocument | null; body: string }> {
  const req = await a.request("GET", "/v1/catalog");
  const url = req.url.replace("http://", "https://");
  const h = new Headers(req.headers);
  if (opts.etag) h.set("if-none-match", opts.etag);
  const res = await noc.app.request(new Request(url, { headers: h }));
  const body = await res.text();
  if (res.status !== 200) {
    return { status: res.status, etag: res.headers.get("etag"), doc: null, body };
  }
  const doc = await verifyCatalog(body, {
    pinned: a.enrollment.nocKeys,
    uid: a.uid,
    lastSerial: opts.lastSerial ?? 0,
    now: noc.clock.now(),
  });
  return { status: 200, etag: res.headers.get("etag"), doc, body };
}

/**
 * What a NOC whose database and signing key an attacker holds could serve: a package of `gz` (any
 * bytes, unchecked) encrypted and signed with the NOC's own key, stored as publishing would store
 * it but without publishing's payload check. Only for tests of the agent's own defences:
 * `POST /v1/admin/packages` refuses such payloads with `bad_payload`.
 */
export async function plantPackage(
  noc: TestNoc,
  ref: { app: string; name: string; version: string },
  gz: Uint8Array,
): Promise<void> {
  const { db, keys, clock } = noc.deps;
  const now = clock.now();
  const contentKey = newContentKey();
  const blob = await writeBlob(
    db,
    encryptChunks(once(gz), await importContentKey(contentKey)),
    now,
  );
  const header: PackageHeader = {
    format: packageFormat,
    ...ref,
    size: gz.length,
    chunkSize: defaultChunkSize,
    ciphertextSize: blob.size,
    ciphertextSha256: blob.sha256,
    kid: keys.kid,
    createdAt: now.toISOString(),
  };
  const prefix = await packagePrefix(header, { kid: keys.kid, privateKey: keys.privateKey });
  const served = createHash("sha256").update(prefix);
  for await (const p of readBlob(db, blob.id)) served.update(p);
  const sealed = await sealAtRest(
    keys,
    contentKey,
    `package/${ref.app}/${ref.name}/${ref.version}`,
  );
  await db.begin(async (tx) => {
    await completeBlob(tx, blob.id);
    await tx`
      insert into components (kind, app, name, version, blob_id, size, sha256, content_sha256, header,
        prefix, signer_kid, sealed_key, created_at)
      values ('package', ${ref.app}, ${ref.name}, ${ref.version}, ${blob.id}, ${
      prefix.length + blob.size
    },
        ${served.digest("hex")}, ${createHash("sha256").update(gz).digest("hex")}, ${header},
        ${toBase64Url(prefix)}, ${keys.kid}, ${sealed}, ${now})`;
  });
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}
