/**
 * The agent's HTTP client: the system's trusted CAs, plus the certificates in
 * `<state>/ca.pem` when that file exists — the certificate of a site's local
 * component server (self-signed by default) or of a NOC behind a private CA.
 *
 * @module
 */

/** The `fetch` the agent uses for everything, trusting `<state>/ca.pem` as well when it exists. */
export async function agentFetch(state: string): Promise<typeof fetch> {
  let pem: string;
  try {
    pem = await Deno.readTextFile(`${state}/ca.pem`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return fetch;
    throw e;
  }
  const client = Deno.createHttpClient({ caCerts: [pem] });
  return (input, init) => fetch(input, { ...init, client });
}
