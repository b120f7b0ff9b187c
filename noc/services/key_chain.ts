/**
 * The NOC's key chain (key rotation as TUF's root rotation): every signing key
 * the NOC has run with, in order, each after the first made current by a
 * signed key-list statement (`noc-keys/1`, protocol/keys.ts) that the key
 * before it signed. The operator makes the statement offline with both seeds
 * (`deno task keygen statement`) and starts the NOC with the new key and the
 * statement (`NOC_KEY_STATEMENT` or `NOC_KEY_STATEMENT_FILE`); the NOC checks
 * it, records it here, and serves the whole chain in `GET /v1/keys`. An
 * appliance that pins any earlier key walks the chain to the current one.
 *
 * Fails closed at start-up: a signing key that is not the chain's last key
 * needs a statement from that key, and going back to an earlier key is
 * refused — either would lock every enrolled appliance out.
 *
 * @module
 */
import type { Db } from "../db/db.ts";
import type { NocKeys } from "./signing_keys.ts";
import {
  currentKeyOf,
  type KeyStatement,
  type KeyStatementEnvelope,
  KeyStatementError,
  MAX_KEY_CHAIN,
  parseKeyStatement,
  type PublishedKey,
  verifyKeyStatement,
} from "../../protocol/keys.ts";

interface ChainRow {
  seq: number;
  kid: string;
  public_key: string;
  envelope: string | null;
}

/** A start-up refusal: the signing key, the statement and the recorded chain do not agree. */
export class KeyChainError extends Error {}

async function rows(db: Db): Promise<ChainRow[]> {
  return await db.sql<ChainRow>`
    select seq, kid, public_key, envelope from noc_key_chain order by seq`;
}

/** The kid of the key chain's last (current) key, or null when no key is recorded yet. */
export async function currentChainKid(db: Db): Promise<string | null> {
  const [row] = await db.sql<{ kid: string }>`
    select kid from noc_key_chain order by seq desc limit 1`;
  return row?.kid ?? null;
}

async function check(
  envelope: unknown,
  previous: { kid: string; publicKey: string },
  current: string,
  source: string,
): Promise<KeyStatement> {
  let statement: KeyStatement;
  try {
    statement = await verifyKeyStatement(envelope, previous);
  } catch (e) {
    if (e instanceof KeyStatementError) {
      throw new KeyChainError(`NOC_KEY_STATEMENT is refused: ${e.message}`);
    }
    throw e;
  }
  const next = currentKeyOf(statement).kid;
  if (next !== current) {
    throw new KeyChainError(
      `NOC_KEY_STATEMENT makes key "${next}" current, but ${source} holds key "${current}"`,
    );
  }
  return statement;
}

/**
 * Records the NOC's signing key in the chain (with `statement`, the parsed
 * JSON of NOC_KEY_STATEMENT, when it rotates to a new key) and returns the
 * keys with the chain and every earlier key published (retired, with the end
 * date its statement gave). `source` names where the signing key came from, as
 * the operator would recognise it (`NOC_SIGNING_KEY`, `NOC_SIGNING_KEY_FILE
 * (<path>)` or the data folder's file). Throws {@link KeyChainError} naming
 * what to fix.
 */
export async function recordKeyChain(
  db: Db,
  keys: NocKeys,
  statement: unknown | null,
  source = "NOC_SIGNING_KEY",
): Promise<NocKeys> {
  const current = keys.published[0]!;
  let chain = await rows(db);
  if (chain.length === 0) {
    // The first start (or the first since the chain was introduced): this key is the first,
    // unless a statement says which key it replaces (a rotation on that same start).
    const first: Array<Omit<ChainRow, "seq">> = [];
    if (statement !== null) {
      let parsed;
      try {
        parsed = parseKeyStatement(statement);
      } catch (e) {
        throw new KeyChainError(
          `NOC_KEY_STATEMENT is refused: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
      const prev = parsed.statement.keys.find((k) => k.kid === parsed.statement.previous)!;
      await check(statement, prev, current.kid, source);
      first.push({ kid: prev.kid, public_key: prev.publicKey, envelope: null });
      first.push({
        kid: current.kid,
        public_key: current.publicKey,
        envelope: JSON.stringify(parsed.envelope),
      });
    } else {
      first.push({ kid: current.kid, public_key: current.publicKey, envelope: null });
    }
    await db.begin(async (tx) => {
      for (const [i, r] of first.entries()) {
        await tx`
          insert into noc_key_chain (seq, kid, public_key, envelope)
          values (${i + 1}, ${r.kid}, ${r.public_key}, ${r.envelope})
          on conflict do nothing`;
      }
    });
    chain = await rows(db);
  }
  let tip = chain[chain.length - 1]!;
  if (tip.kid !== current.kid) {
    if (chain.some((r) => r.kid === current.kid)) {
      throw new KeyChainError(
        `${source} holds key "${current.kid}", which the key chain already replaced by ` +
          `"${tip.kid}": going back to an earlier key is refused (appliances would refuse it); ` +
          `give the seed of key "${tip.kid}" there instead`,
      );
    }
    if (statement === null) {
      throw new KeyChainError(
        `${source} holds key "${current.kid}", but the NOC's current key is "${tip.kid}": ` +
          `to rotate, give NOC_KEY_STATEMENT_FILE, a key-list statement signed with both keys ` +
          `(deno task keygen statement --from <old seed file> --to <new seed file>); ` +
          `see docs/operations.md, "Rotating the NOC signing key"`,
      );
    }
    if (chain.length >= MAX_KEY_CHAIN) {
      throw new KeyChainError(`The key chain holds ${MAX_KEY_CHAIN} keys, the most it may`);
    }
    await check(statement, { kid: tip.kid, publicKey: tip.public_key }, current.kid, source);
    const { envelope } = parseKeyStatement(statement);
    await db.sql`
      insert into noc_key_chain (seq, kid, public_key, envelope)
      values (${tip.seq + 1}, ${current.kid}, ${current.publicKey}, ${JSON.stringify(envelope)})
      on conflict do nothing`;
    chain = await rows(db);
    tip = chain[chain.length - 1]!;
    if (tip.kid !== current.kid) {
      throw new KeyChainError(
        `Another NOC instance recorded key "${tip.kid}" as current meanwhile; start every ` +
          `instance with the same signing key (${source} holds "${current.kid}")`,
      );
    }
  }
  const envelopes = chain.flatMap((r) =>
    r.envelope === null ? [] : [JSON.parse(r.envelope) as KeyStatementEnvelope]
  );
  // Every earlier key stays published, retired at the end date its successor's statement gave:
  // packages it signed are still checked against it (while a current catalog vouches for them).
  const retired = new Map<string, PublishedKey>();
  for (const env of envelopes) {
    for (const k of parseKeyStatement(env).statement.keys) {
      if (k.kid !== current.kid && k.notAfter !== null) retired.set(k.kid, k);
    }
  }
  const listed = new Set(keys.published.map((k) => k.kid));
  const published = [
    ...keys.published,
    ...[...retired.values()].filter((k) => !listed.has(k.kid)).map((k): PublishedKey => ({
      ...k,
      use: current.use,
    })),
  ];
  return { ...keys, published, chain: envelopes };
}
