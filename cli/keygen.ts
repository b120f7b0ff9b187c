/**
 * `deno task keygen`: prints a new 32-byte secret (base64url) for `NOC_SIGNING_KEY` or
 * `NOC_MASTER_KEY`. The key id and public key of the seed, taken as a signing key, go to stderr.
 *
 * `deno run --allow-read=old.key,new.key cli/keygen.ts statement --from old.key --to new.key
 * [--until <ISO time>]`: prints the key-list statement (`noc-keys/1`) that rotates the NOC from
 * the signing key in `old.key` to the one in `new.key`, signed with both, the old key retired at
 * `--until` (7 days from now by default). The NOC is started with the new key and this statement
 * (`NOC_KEY_STATEMENT_FILE`); see docs/operations.md, "Rotating the NOC signing key".
 *
 * @module
 */
import { keyId, type KeyStatementEnvelope, newSeed, signKeyStatement } from "../protocol/keys.ts";
import {
  ed25519KeyObject,
  ed25519PublicOf,
  exportRawPublic,
  importEd25519Seed,
} from "../protocol/crypto/ed25519.ts";
import { fromBase64Url, toBase64Url } from "../protocol/util/encoding.ts";
import { parseCommandLine, UsageError, usageExitCode } from "../protocol/util/args.ts";

const usage = `Usage:
  deno task keygen
  deno task keygen statement --from <old seed file> --to <new seed file> [--until <ISO time>]

Commands:
  (none)       print a new 32-byte secret (base64url) on stdout, for NOC_SIGNING_KEY or
               NOC_MASTER_KEY (or a file NOC_SIGNING_KEY_FILE / NOC_MASTER_KEY_FILE names);
               its key id and public key, taken as a signing key, go to stderr
  statement    print the key-list statement (noc-keys/1) rotating the NOC signing key from the
               seed in <old> to the seed in <new>, signed with both; start the NOC with the new
               key and this statement (NOC_KEY_STATEMENT_FILE). See docs/operations.md,
               "Rotating the NOC signing key"

Flags:
  --from <file>      statement: the seed file of the current signing key
  --to <file>        statement: the seed file of the new signing key
  --until <time>     statement: when the old key is retired (ISO 8601; default 7 days from now)
  -h, --help         this help

Outside the task: deno run --allow-read=<old>,<new> cli/keygen.ts statement ...
A usage error exits 64.`;

/** A signing key read from its seed: key id, raw public key (base64url) and the prepared key. */
async function signingKey(seedText: string, what: string) {
  let seed: Uint8Array<ArrayBuffer>;
  try {
    seed = fromBase64Url(seedText.trim());
  } catch {
    throw new UsageError(`${what} is not a base64url seed`);
  }
  if (seed.length !== 32) throw new UsageError(`${what} has ${seed.length} bytes, not 32`);
  const priv = await importEd25519Seed(seed);
  const raw = new Uint8Array(await exportRawPublic(await ed25519PublicOf(priv)));
  return { kid: await keyId(raw), publicKey: toBase64Url(raw), privateKey: ed25519KeyObject(priv) };
}

/**
 * Makes the statement rotating from seed `from` to seed `to` (both base64url), the old key
 * retired at `until`; signed with both keys.
 */
export async function rotationStatement(
  from: string,
  to: string,
  until: Date,
  now: Date = new Date(),
): Promise<KeyStatementEnvelope> {
  const old = await signingKey(from, "--from");
  const next = await signingKey(to, "--to");
  if (old.kid === next.kid) throw new UsageError("--from and --to hold the same key");
  return await signKeyStatement({
    format: "noc-keys/1",
    previous: old.kid,
    issuedAt: now.toISOString(),
    keys: [
      // "package" too: an agent keeps it only where its pinned NOC key had it (not in
      // release-keys-only mode; see protocol/release_keys.ts rotatedPackageKeys).
      {
        kid: next.kid,
        alg: "ed25519",
        use: ["catalog", "package"],
        publicKey: next.publicKey,
        notAfter: null,
      },
      {
        kid: old.kid,
        alg: "ed25519",
        use: ["catalog", "package"],
        publicKey: old.publicKey,
        notAfter: until.toISOString(),
      },
    ],
  }, [old, next]);
}

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(args, {
    from: { type: "string" },
    to: { type: "string" },
    until: { type: "string" },
  }, { positionals: true });
  if (values.help) {
    console.log(usage);
    return;
  }
  if (positionals.length === 0) {
    const seed = newSeed();
    const { kid, publicKey } = await signingKey(seed, "seed");
    console.error(`Key id ${kid}, public key ${publicKey}`);
    console.log(seed);
    return;
  }
  if (positionals[0] !== "statement" || positionals.length > 1) {
    throw new UsageError(`Unknown command "${positionals.join(" ")}"\n${usage}`);
  }
  if (!values.from || !values.to) throw new UsageError(`statement needs --from and --to\n${usage}`);
  const until = values.until === undefined
    ? new Date(Date.now() + 7 * 86400_000)
    : new Date(values.until);
  if (Number.isNaN(until.getTime())) {
    throw new UsageError(`--until "${values.until}" is not an ISO time`);
  }
  const envelope = await rotationStatement(
    await Deno.readTextFile(values.from),
    await Deno.readTextFile(values.to),
    until,
  );
  const { previous, keys } = JSON.parse(envelope.statement);
  console.error(
    `Key statement: ${previous} -> ${keys[0].kid}, ${previous} retired at ${until.toISOString()}`,
  );
  console.log(JSON.stringify(envelope));
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`keygen: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(e instanceof UsageError ? usageExitCode : 1);
  }
}
