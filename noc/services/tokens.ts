/** Bearer tokens (admin and enrolment): generated with 256 bits of entropy, stored only as hashes. */
import { sha256, toBase64Url, toHex } from "../../protocol/util/encoding.ts";

/** The kinds of token and their prefixes. */
export const tokenPrefixes = { admin: "noc_adm_", enrollment: "noc_enr_" } as const;

/** A new random token of `kind`. */
export function newToken(kind: keyof typeof tokenPrefixes): string {
  return tokenPrefixes[kind] + toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/** The hash a token is stored and looked up by (hex SHA-256). */
export async function hashToken(token: string): Promise<string> {
  return toHex(await sha256(token));
}
