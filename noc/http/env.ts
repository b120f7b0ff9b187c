/** The Hono environment of the NOC's routes: the identities and values a request carries. */
/** An authenticated appliance, as the appliance routes see it. */
export interface ApplianceIdentity {
  /** Its UID (also its signature key id). */
  uid: string;
  /** Its host name. */
  hostname: string;
  /** Its model. */
  model: string;
  /** Its site, if any. */
  site: string | null;
  /** Its report interval, seconds. */
  intervalS: number;
}

/** An authenticated local component server, as its routes see it. */
export interface LocalServerIdentity {
  /** Its id (also its signature key id). */
  id: string;
  /** The site it serves. */
  site: string;
  /** Its name. */
  name: string;
  /** The base URL appliances reach it at. */
  url: string;
}

/** Hono environment of the app: per-request variables. */
export interface AppEnv {
  /** Request-scoped values. */
  Variables: {
    /** The signed-in appliance (appliance routes). */
    appliance: ApplianceIdentity;
    /** The verified raw body (appliance routes). */
    body: Uint8Array<ArrayBuffer>;
    /**
     * The verified nonce of the appliance's request signature (appliance routes): spent, unless
     * the route spends it itself (`nonceToSpend`).
     */
    nonce: string;
    /**
     * Set by `applianceAuth(deps, { routeSpendsNonce: true })`: the nonce the route's own
     * statement spends, and until when it is kept.
     */
    nonceToSpend: { value: string; expiresAt: Date };
    /** The signed-in local component server (local server routes). */
    localServer: LocalServerIdentity;
    /** The admin token's label (admin routes). */
    admin: string;
    /** This request's id (`hono/request-id`: the client's `X-Request-Id` when well-formed). */
    requestId: string;
    /** Milliseconds it waited for admission (noc/http/middleware/admission.ts). */
    queuedMs: number;
    /** Why admission shed it (`noc_shed_total`'s reason), when it did. */
    shed: string;
  };
}
