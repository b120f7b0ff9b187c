/**
 * The notice delivery job (every minute, `main.ts`): sends what the outbox
 * holds to the configured webhooks, each webhook a queue of its own served
 * alongside the others, in id order, with retries (see
 * noc/services/notifier.ts for the outbox and its guarantees). `Deno.cron`
 * never overlaps a run with the last, and every statement is bounded by
 * `NOC_DB_TIMEOUT_S`, so a stalled database does not pile runs up.
 *
 * @module
 */
import type { AppDeps } from "../services/deps.ts";

/** One delivery pass over the notice outbox. */
export async function noticeDeliveryJob(deps: Pick<AppDeps, "notifier">): Promise<void> {
  await deps.notifier.deliver();
}
