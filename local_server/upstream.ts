/**
 * The local server's calls to the NOC: enrolment, sync, component fetches
 * and download records, each signed (RFC 9421) with its own key.
 *
 * @module
 */
import { z } from "zod";
import {
  type Ed25519Key,
  exportEd25519Seed,
  exportRawPublic,
  generateEd25519,
} from "../protocol/crypto/ed25519.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { readNocAnswer, signedRequest } from "../protocol/client.ts";
import type { PublishedKey } from "../protocol/keys.ts";
import type { DownloadRecord } from "./records.ts";

/** The most bytes of a successful NOC answer a local server reads (a sync lists a whole site). */
const ANSWER_LIMIT = 64 * 1024 * 1024;

const publishedKeySchema = z.object({
  kid: z.string().max(64),
  alg: z.literal("ed25519"),
  use: z.array(z.string().max(32)).max(8),
  publicKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  notAfter: z.string().nullable(),
});

/** The NOC's description of a component (stage lists, `x-noc-component`). */
export const stageItemSchema = z.strictObject({
  id: z.number().int().min(1),
  kind: z.enum(["package", "file"]),
  app: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
  version: z.string().min(1).max(128),
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

const enrolledSchema = z.object({
  id: z.uuid(),
  site: z.string(),
  syncS: z.number().int().min(1),
  nocKeys: z.array(publishedKeySchema).min(1),
});

const syncAnswerSchema = z.object({
  syncS: z.number().int().min(1),
  keys: z.array(publishedKeySchema).min(1),
  stage: z.array(stageItemSchema),
  /** Appliances revoked while grants of theirs may still verify: their grants are refused. */
  revoked: z.array(z.uuid()).max(10_000_000),
});

const ackSchema = z.object({
  acked: z.number().int().min(0),
  refusedRecords: z.array(z.object({
    seq: z.number().int(),
    uid: z.string().max(64),
    componentId: z.number().int(),
    reason: z.string().max(64),
  })).max(500).optional(),
});

/** What the NOC said of a batch of download records. */
export type RecordsAck = z.infer<typeof ackSchema>;

/** What a local server reports about itself at each sync. */
export interface LocalStatus {
  url: string;
  version: string;
  cache: { bytes: number; limit: number; entries: number };
  hits: number;
  misses: number;
  servedBytes: number;
  pendingRecords: number;
  problems: Array<{ code: string; message: string; componentId?: number; at: string }>;
}

/** The NOC's answer to a sync. */
export type SyncAnswer = z.infer<typeof syncAnswerSchema>;

/** A local server's identity, as kept in its data folder. */
export interface LocalIdentity {
  format: "noc-local-identity/1";
  id: string;
  site: string;
  upstream: string;
  signingSeed: string;
  signingPublic: string;
  keys: PublishedKey[];
}

/** The version a local server reports. */
export const localServerVersion = "1.0.0";

async function answer<T>(res: Response, schema: z.ZodType<T>): Promise<T> {
  const r = schema.safeParse(await readNocAnswer(res, ANSWER_LIMIT));
  if (!r.success) throw new Error(`NOC answer is not what was expected: ${r.error.message}`);
  return r.data;
}

/** Enrols a new local server with a one-time token; returns its identity. */
export async function enrollLocalServer(
  fetcher: typeof fetch,
  input: { upstream: string; token: string; name: string; url: string },
): Promise<LocalIdentity> {
  const pair = await generateEd25519();
  const signingPublic = toBase64Url(await exportRawPublic(pair.publicKey));
  const res = await fetcher(new URL("/v1/local/enroll", input.upstream), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      token: input.token,
      name: input.name,
      url: input.url,
      signingKey: signingPublic,
      version: localServerVersion,
    }),
    signal: AbortSignal.timeout(30_000),
  });
  const e = await answer(res, enrolledSchema);
  return {
    format: "noc-local-identity/1",
    id: e.id,
    site: e.site,
    upstream: input.upstream,
    signingSeed: toBase64Url(await exportEd25519Seed(pair.privateKey)),
    signingPublic,
    keys: e.nocKeys as PublishedKey[],
  };
}

/** Signed calls to the NOC as local server `identity`. */
export interface Upstream {
  /** Reports status; returns what to stage and the NOC's keys. */
  sync(status: LocalStatus): Promise<SyncAnswer>;
  /** Fetches component `id` (with an appliance's grant when it is not staged). */
  fetchComponent(id: number, grant: string | undefined, signal: AbortSignal): Promise<Response>;
  /**
   * Sends download records of journal `epoch`; returns the highest sequence number the NOC
   * applied, and the records it refused (with their reason).
   */
  sendRecords(
    epoch: string,
    records: ReadonlyArray<Omit<DownloadRecord, "epoch">>,
  ): Promise<RecordsAck>;
}

/** Builds the signed client for `identity`. */
export function upstreamClient(
  identity: LocalIdentity,
  key: Ed25519Key,
  fetcher: typeof fetch,
): Upstream {
  const request = (method: string, path: string, body?: unknown) =>
    signedRequest({
      baseUrl: identity.upstream,
      uid: identity.id,
      key,
      method,
      path,
      ...(body === undefined ? {} : { body }),
    });
  return {
    async sync(status) {
      const res = await fetcher(await request("POST", "/v1/local/sync", status), {
        signal: AbortSignal.timeout(60_000),
      });
      return await answer(res, syncAnswerSchema) as SyncAnswer;
    },
    async fetchComponent(id, grant, signal) {
      const q = grant === undefined ? "" : `?grant=${encodeURIComponent(grant)}`;
      return await fetcher(await request("GET", `/v1/local/components/${id}${q}`), { signal });
    },
    async sendRecords(epoch, records) {
      const res = await fetcher(await request("POST", "/v1/local/deliveries", { epoch, records }), {
        signal: AbortSignal.timeout(60_000),
      });
      return await answer(res, ackSchema);
    },
  };
}
