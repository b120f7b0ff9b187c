/** `enroll`: generates the appliance's key pairs, enrols with a one-time token, pins the NOC keys. */
import { AgentError } from "./errors.ts";
import type { AgentConfig } from "./config.ts";
import { agentVersion, hostnameGivenExplicitly } from "./config.ts";
import {
  freshState,
  type Identity,
  loadIdentity,
  saveIdentity,
  saveState,
  statePaths,
} from "./state.ts";
import { enroll, generateApplianceKeys } from "../protocol/client.ts";
import { agentFetch } from "./http.ts";
import { releaseKeysOnlyOf } from "../protocol/keys.ts";
import { clampIntervalS } from "../protocol/catalog.ts";

/**
 * Enrols this appliance with `noc` using `token`; refuses to replace an identity unless `force`.
 * Returns the identity saved, and the UIDs of the records of this host name the enrolment
 * retired (see docs/operations.md, "Re-imaging an appliance").
 */
export async function enrollAgent(
  config: AgentConfig,
  options: { noc: string; token: string; force: boolean; now: Date },
): Promise<{ identity: Identity; supersedes: string[] }> {
  if (!options.force && (await loadIdentity(config.state).catch(() => null))) {
    throw new AgentError(
      "already_enrolled",
      `"${config.state}" already holds an identity; use --force to enrol again as a new appliance`,
    );
  }
  await Deno.mkdir(config.state, { recursive: true, mode: 0o700 });
  await Deno.chmod(config.state, 0o700);
  // The appliance root files and packages install under: made now, so the first cycle can read
  // its free space and install into it.
  await Deno.mkdir(config.root, { recursive: true });
  const keys = await generateApplianceKeys();
  const e = await enroll(
    async (req) => (await agentFetch(config.state))(req, { signal: AbortSignal.timeout(30_000) }),
    options.noc,
    {
      token: options.token,
      model: config.model,
      hostname: config.hostname,
      keys,
      agentVersion,
    },
  );
  const identity: Identity = {
    format: "noc-agent-identity/1",
    noc: options.noc.replace(/\/+$/, ""),
    uid: e.uid,
    signingSeed: keys.signingSeed,
    signingPublic: keys.signingPublic,
    encryptionPrivate: keys.encryptionPrivate,
    encryptionPublic: keys.encryptionPublic,
    pinnedKeys: e.nocKeys,
    // The mode is pinned with the keys: no later key list can take the appliance out of it.
    releaseKeysOnly: releaseKeysOnlyOf(e.nocKeys),
    enrolledAt: options.now.toISOString(),
    // Kept so that `run`/`once` without --hostname beat under the name the NOC enrolled, not the
    // system's (which would rename the appliance at its first beat). A --force enrolment replaces
    // it, or drops it when given no name.
    ...(hostnameGivenExplicitly(config) ? { hostname: config.hostname } : {}),
  };
  await saveIdentity(config.state, identity);
  // A new identity is a new appliance (a cloned copy re-enrolled, say): the old identity's cycle
  // state (its seq, its last catalog serial — the new UID's catalogs start at 1 — its ETag and
  // failures), its stored catalog and its unsent outcomes would be wrong for it and are dropped.
  // What is installed (catalog.cur) is true of this device and stays.
  const paths = statePaths(config.state);
  // The enrolment answer's interval, until the first signed catalog says it: it bounds the
  // back-off and a Retry-After before that catalog (review 23a: a first catalog answered 503 held
  // a new agent 909 s, the default, on a NOC of 20 s); what no number can be stays the default.
  const intervalS = typeof e.intervalS === "number" && Number.isFinite(e.intervalS)
    ? clampIntervalS(e.intervalS)
    : freshState().intervalS;
  await saveState(config.state, { ...freshState(), intervalS });
  await Deno.remove(paths.catalog).catch(() => {});
  await Deno.remove(paths.outcomes, { recursive: true }).catch(() => {});
  return { identity, supersedes: e.supersedes ?? [] };
}
