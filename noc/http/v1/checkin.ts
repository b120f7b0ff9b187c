/**
 * `POST /v1/checkin`: a whole check-in cycle in one signed request (issue 23 item 3) — the
 * SecureBeat of `POST /v1/beats` and the catalog request of `GET /v1/catalog`, answered together:
 *
 * ```
 * POST /v1/checkin                 (signed as every appliance request; body: the SecureBeat)
 * If-None-Match: "<the ETag of the catalog the appliance holds>"      (optional)
 *
 * 200 {"receipt": {…the beat answer…}, "catalog": "<the envelope's exact text>" | null}
 * ETag: "<sha256 of the envelope>"          Catalog-Binding: <bound to this request's nonce>
 * ```
 *
 * `catalog` is null when the ETag sent is the current one (the appliance's copy stands, as a
 * 304 would say); it is absent, with no binding, when the catalog server runs apart
 * (`NOC_CATALOG_URL`: the receipt names it, and the agent asks it with `GET /v1/catalog`). The
 * route is served by a process that is both status monitor and catalog server (role `all`); a
 * NOC whose roles are split answers 404, and the agent then sends the two requests.
 *
 * One signature is verified and one statement run per cycle instead of two of each (and two
 * appliance lookups): the beat's statement spends the nonce, records the beat, archives the
 * catalog request and reads the catalog's row (noc/services/checkins.ts), and the appliance's
 * key is read once per instance, the statement checking it again; every check of the two routes holds (signature and digest before the body is read, the
 * skew window, replays refused across instances by the spent nonce, the binding over the nonce and
 * the body's SHA-256). The beat is recorded before the catalog is answered: an error in the
 * catalog part leaves the beat recorded, as two requests would.
 *
 * @module
 */
import { Hono } from "hono";
import { applianceAuth } from "../middleware/appliance_auth.ts";
import { beatSchema } from "../../../protocol/schemas.ts";
import type { AppDeps } from "../../services/deps.ts";
import type { AppEnv } from "../env.ts";
import { acceptBeat } from "./beats.ts";
import { catalogFor } from "./catalog.ts";

/** The combined check-in route. */
export function checkinRoutes(deps: AppDeps) {
  const schema = beatSchema(deps.settings.maxAppDataBytes);
  return new Hono<AppEnv>().post(
    "/",
    applianceAuth(deps, { routeSpendsNonce: true }),
    async (c) => {
      const apart = deps.settings.catalogUrl !== null;
      const { answer: receipt, catalog: touched } = await acceptBeat(deps, c, schema, {
        touchCatalog: !apart,
      });
      if (apart) {
        c.header("cache-control", "no-store");
        return c.json({ receipt });
      }
      // The row the beat's statement read (the request archived with the beat).
      const answer = await catalogFor(deps, c, touched);
      // The envelope's text goes as a JSON string: its bytes are what the binding's digest covers.
      const catalog = answer.status === 304 ? "null" : JSON.stringify(answer.body);
      return c.body(`{"receipt":${JSON.stringify(receipt)},"catalog":${catalog}}`, 200, {
        "content-type": "application/json",
      });
    },
  );
}
