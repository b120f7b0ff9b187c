/** A refusal or failure with a stable code, reported to the NOC as a problem. */
export class AgentError extends Error {
  /** Creates an error with a stable `code` (e.g. `digest_mismatch`, `bad_signature`). */
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** The stable code and message of any error. */
export function describe(e: unknown): { code: string; message: string } {
  if (e instanceof AgentError) return { code: e.code, message: e.message };
  const reason = (e as { reason?: unknown })?.reason;
  const message = e instanceof Error ? e.message : String(e);
  if (typeof reason === "string") return { code: reason, message };
  return { code: "error", message };
}
