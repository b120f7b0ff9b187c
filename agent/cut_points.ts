/**
 * Power cuts on cue, for tests: at a named point of a download or an install the agent SIGKILLs
 * itself when `NOC_AGENT_CUT_AT` names that point, so a test can cut a real agent process exactly
 * where a power loss could. The agent reads that variable only when its permissions let it
 * (`--allow-env` naming it), which the shipped permissions (agent/permissions.ts) never do: in
 * the field this is a no-op.
 *
 * Points: `download` (a download has written its first bytes), `unpacked` (the package is
 * unpacked in its staging folder, its install not yet run), `installed` (its install ran; the
 * payload not yet kept), `kept` (the payload was moved aside; its health check not yet run),
 * `file_copy` (a file copied to a temporary file beside its destination, not yet renamed).
 *
 * @module
 */

/**
 * An environment variable the agent may read only when its permissions name it (never in the
 * shipped ones): null otherwise, without a permission prompt. Read at each call: no module state.
 */
export function testOnlyEnv(name: string): string | null {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return null;
    }
    return Deno.env.get(name) ?? null;
  } catch {
    return null;
  }
}

/** SIGKILLs this process when `NOC_AGENT_CUT_AT` is `point` (tests only). */
export function cutPoint(point: string): void {
  const cutAt = testOnlyEnv("NOC_AGENT_CUT_AT");
  if (cutAt === point) Deno.kill(Deno.pid, "SIGKILL");
}
