/** RFC 9530 `Content-Digest`: computing and checking the digest of a message body. */
import { isInnerList, parseDictionary, StructuredFieldError } from "./structured_fields.ts";
import { toBase64 } from "../util/encoding.ts";
import { createHash } from "node:crypto";

const algorithms = { "sha-256": "SHA-256", "sha-512": "SHA-512" } as const;

/** A digest algorithm this project computes and accepts. */
export type DigestAlgorithm = keyof typeof algorithms;

/** The `Content-Digest` value for `body` (`sha-256=:…:` by default). */
export async function contentDigest(
  body: Uint8Array<ArrayBuffer>,
  algorithm: DigestAlgorithm = "sha-256",
): Promise<string> {
  // Synchronous hashing: request bodies are small, and a worker-thread trip costs more.
  const d = createHash(algorithm === "sha-256" ? "sha256" : "sha512").update(body).digest("base64");
  return await Promise.resolve(`${algorithm}=:${d}:`);
}

/** A `Content-Digest` header that is missing, malformed, or does not match the body. */
export class DigestError extends Error {}

/**
 * Checks a `Content-Digest` header against `body`. At least one supported
 * algorithm must be present, and every supported one present must match.
 */
export async function verifyContentDigest(
  header: string | null,
  body: Uint8Array<ArrayBuffer>,
): Promise<void> {
  if (header === null) throw new DigestError("Content-Digest header is missing");
  let dict;
  try {
    dict = parseDictionary(header);
  } catch (e) {
    if (e instanceof StructuredFieldError) {
      throw new DigestError(`Content-Digest is malformed: ${e.message}`);
    }
    throw e;
  }
  let checked = 0;
  for (const [name, member] of dict) {
    // An own key only: `name` is the sender's text, and "constructor" is `in` every object.
    if (!Object.hasOwn(algorithms, name)) continue;
    if (isInnerList(member) || !(member.value instanceof Uint8Array)) {
      throw new DigestError(`Content-Digest member "${name}" is not a byte sequence`);
    }
    const want = await contentDigest(body, name as DigestAlgorithm);
    const got = `${name}=:${toBase64(member.value)}:`;
    if (want !== got) throw new DigestError(`Content-Digest "${name}" does not match the body`);
    checked++;
  }
  if (checked === 0) throw new DigestError("Content-Digest has no sha-256 or sha-512 member");
}
