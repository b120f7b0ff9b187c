/** `GET /v1/keys`: the NOC public keys appliances pin (current first, then retired ones still accepted). */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "../lib/deps.ts";

/** The public key route. */
export function keyRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().get("/", (c) => c.json({ keys: deps.keys.published }));
}
