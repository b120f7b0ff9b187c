/**
 * The notice delivery job (every minute, `main.ts`): sends what the outbox
 * holds to the configured webhooks, in id order, with retries (see
 * noc/services/notifier.ts for the outbox and its guarantees).
 *
 * @module
 */
import type { AppDeps } from "../services/deps.ts";

/** One delivery pass over the notice outbox. */
export async function noticeDeliveryJob(deps: Pick<AppDeps, "notifier">): Promise<void> {
  await deps.notifier.deliver();
}
