/**
 * The catalog engine (spec, FIGURE 8): which component versions one appliance
 * should run, from the release assignments that match it — the most specific
 * target wins (appliance, tag, site, channel, model, all), a staged rollout
 * includes an appliance by a deterministic bucket of its UID, a paused
 * rollout keeps only the appliances already sent it, and a hold pins an
 * appliance to what it was last sent — and the signed catalog document.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Sql } from "../db/db.ts";

/** Target kinds, most specific first. */
export const targetOrder = ["appliance", "tag", "site", "channel", "model", "all"] as const;

/** What the engine needs to know about an appliance. */
export interface CatalogSubject {
  /** UID. */
  uid: string;
  /** Model. */
  model: string;
  /** Site, if any. */
  site: string | null;
  /** Channel. */
  channel: string;
  /** Tags. */
  tags: string[];
}

/** A component version chosen for an appliance. */
export interface Chosen {
  /** Component id. */
  id: number;
  /** `package` or `file`. */
  kind: "package" | "file";
  /** Application. */
  app: string;
  /** Name. */
  name: string;
  /** Version. */
  version: string;
  /** Bytes served. */
  size: number;
  /** SHA-256 of the bytes served. */
  sha256: string;
  /** Packages: the signing key id. */
  signerKid: string | null;
  /** Packages: the content key sealed at rest. */
  sealedKey: string | null;
  /** Packages: the ciphertext digest from the signed header (binds a wrapped key to the package). */
  ciphertextSha256: string | null;
  /** The assignment that chose it (null for a hold). */
  assignmentId: number | null;
}

/** The rollout bucket (0–99) of an appliance for a component: fixed, so widening a rollout never drops anyone. */
export function rolloutBucket(uid: string, kind: string, app: string, name: string): number {
  const d = createHash("sha256").update(`${uid}\n${kind}/${app}/${name}`).digest();
  return d.readUInt32BE(0) % 100;
}

interface CandidateRow {
  assignment_id: number;
  target_type: (typeof targetOrder)[number];
  rollout_percent: number;
  paused: boolean;
  created_at: Date;
  id: number;
  kind: "package" | "file";
  app: string;
  name: string;
  version: string;
  size: number;
  sha256: string;
  signer_kid: string | null;
  sealed_key: string | null;
  ciphertext_sha256: string | null;
  delivered: boolean;
}

/** Resolves the component versions `subject` should run now. */
export async function resolveCatalog(tx: Sql, subject: CatalogSubject): Promise<Chosen[]> {
  const rows = await tx<CandidateRow>`
    select a.id as assignment_id, a.target_type, a.rollout_percent, a.paused, a.created_at,
      c.id, c.kind, c.app, c.name, c.version, c.size, c.sha256, c.signer_kid, c.sealed_key,
      c.header->>'ciphertextSha256' as ciphertext_sha256,
      exists (select 1 from deliveries d where d.uid = ${subject.uid} and d.component_id = c.id) as delivered
    from assignments a
    join components c on c.kind = a.kind and c.app = a.app and c.name = a.name and c.version = a.version
    where a.target_type = 'all'
      or (a.target_type = 'model' and a.target_value = ${subject.model})
      or (a.target_type = 'channel' and a.target_value = ${subject.channel})
      or (a.target_type = 'site' and a.target_value = ${subject.site})
      or (a.target_type = 'tag' and a.target_value = any(${subject.tags}::text[]))
      or (a.target_type = 'appliance' and a.target_value = ${subject.uid})`;
  const holds = await tx<{ app: string | null }>`select app from holds where uid = ${subject.uid}`;
  const held = (app: string) => holds.some((h) => h.app === null || h.app === app);
  const byComponent = new Map<string, CandidateRow[]>();
  for (const r of rows) {
    const key = `${r.kind}\n${r.app}\n${r.name}`;
    byComponent.set(key, [...(byComponent.get(key) ?? []), r]);
  }
  const chosen: Chosen[] = [];
  for (const candidates of byComponent.values()) {
    const first = candidates[0]!;
    if (held(first.app)) continue;
    candidates.sort((a, b) =>
      targetOrder.indexOf(a.target_type) - targetOrder.indexOf(b.target_type) ||
      b.created_at.getTime() - a.created_at.getTime() || b.assignment_id - a.assignment_id
    );
    const bucket = rolloutBucket(subject.uid, first.kind, first.app, first.name);
    const pick = candidates.find((c) => c.delivered || (!c.paused && bucket < c.rollout_percent));
    if (pick) chosen.push(toChosen(pick, pick.assignment_id));
  }
  if (holds.length > 0) {
    const pinned = await tx<CandidateRow>`
      select distinct on (c.kind, c.app, c.name) c.id, c.kind, c.app, c.name, c.version, c.size, c.sha256,
        c.signer_kid, c.sealed_key, c.header->>'ciphertextSha256' as ciphertext_sha256
      from deliveries d join components c on c.id = d.component_id
      where d.uid = ${subject.uid}
      order by c.kind, c.app, c.name, d.last_sent_at desc`;
    for (const p of pinned) if (held(p.app)) chosen.push(toChosen(p, null));
  }
  chosen.sort((a, b) =>
    (a.kind === b.kind ? 0 : a.kind === "package" ? -1 : 1) || a.app.localeCompare(b.app) ||
    a.name.localeCompare(b.name)
  );
  return chosen;
}

function toChosen(r: CandidateRow, assignmentId: number | null): Chosen {
  return {
    id: r.id,
    kind: r.kind,
    app: r.app,
    name: r.name,
    version: r.version,
    size: r.size,
    sha256: r.sha256,
    signerKid: r.signer_kid,
    sealedKey: r.sealed_key,
    ciphertextSha256: r.ciphertext_sha256,
    assignmentId,
  };
}
