/**
 * Issue 16, item 9: a signature binds the request to this NOC's authority
 * (RFC 9421 `@authority`), directly and behind a proxy; and `Content-Digest`
 * members are looked up as the sender names them, never as inherited object
 * keys.
 */
import assert from "node:assert/strict";
import { count, dbTest, sampleBeat } from "./_harness.ts";
import { serveNoc } from "./_agent.ts";
import { sendWithHost } from "./_raw_http.ts";
import { signedRequest } from "../protocol/client.ts";
import { generateEd25519 } from "../protocol/crypto/ed25519.ts";
import { createAuthorities } from "../noc/services/authorities.ts";
import { loadConfig, publicHostsOf } from "../noc/config.ts";
import { createHash } from "node:crypto";

/** A beat of appliance `a` signed for `baseUrl` (whatever server it is then sent to). */
function beatFor(
  a: { uid: string; keys: { signing: CryptoKey | unknown } },
  baseUrl: string,
  now: Date,
  headers: Record<string, string> = {},
): Promise<Request> {
  return signedRequest({
    baseUrl,
    uid: a.uid,
    key: a.keys.signing as never,
    method: "POST",
    path: "/v1/beats",
    body: sampleBeat(1, now),
    now,
    headers,
  });
}

dbTest(
  "a beat signed for, and sent with, Host evil.example:9999 is refused by a served NOC, and nothing is written",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const port = Number(new URL(noc.url).port);
      const a = await noc.enrollAppliance();
      // Development mode (no public host configured): the listener's own address is this NOC.
      const own = await sendWithHost(
        port,
        await beatFor(a, noc.url, noc.clock.now()),
        `127.0.0.1:${port}`,
      );
      assert.equal(own.status, 200, own.text);
      const evil = await sendWithHost(
        port,
        await beatFor(a, "http://evil.example:9999", noc.clock.now()),
        "evil.example:9999",
      );
      assert.equal(evil.status, 401, evil.text);
      assert.equal(JSON.parse(evil.text).error, "wrong_authority");
      // Another port of this very machine is another server.
      const otherPort = await sendWithHost(
        port,
        await beatFor(a, `http://127.0.0.1:${port + 1}`, noc.clock.now()),
        `127.0.0.1:${port + 1}`,
      );
      assert.equal(JSON.parse(otherPort.text).error, "wrong_authority");
      assert.equal(await count(db, "beats"), 1, "only the beat signed for this NOC");
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "with public hosts configured, only a signature for one of them is accepted",
  async ({ db }) => {
    const noc = await serveNoc(db, {
      publicHosts: publicHostsOf({ NOC_PUBLIC_URL: "https://noc.example.net/" }),
      // The NOC's catalog role, at its own name: also this NOC.
      catalogUrl: "https://catalog.example.net:8443",
    });
    try {
      const port = Number(new URL(noc.url).port);
      const a = await noc.enrollAppliance();
      for (
        const [base, host, want] of [
          ["https://noc.example.net", "noc.example.net", 200],
          ["https://catalog.example.net:8443", "catalog.example.net:8443", 200],
          ["https://NOC.Example.NET", "NOC.EXAMPLE.net", 200],
          // The listener's own address is not one of the configured names.
          [noc.url, `127.0.0.1:${port}`, 401],
          ["https://noc.example.net:444", "noc.example.net:444", 401],
          ["http://evil.example:9999", "evil.example:9999", 401],
        ] as const
      ) {
        const res = await sendWithHost(port, await beatFor(a, base, noc.clock.now()), host);
        assert.equal(res.status, want, `${host}: ${res.text}`);
        if (want === 401) assert.equal(JSON.parse(res.text).error, "wrong_authority", host);
      }
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "behind a trusted proxy the signed authority is X-Forwarded-Host, and only then",
  async ({ db }) => {
    const proxied = await serveNoc(db, { publicHosts: ["noc.example.net"], trustProxy: true });
    const direct = await serveNoc(db, { publicHosts: ["noc.example.net"], trustProxy: false });
    try {
      const a = await proxied.enrollAppliance();
      const portOf = (n: { url: string }) => Number(new URL(n.url).port);
      // The proxy rewrote Host to its upstream and said what the client asked for.
      const forwarded = await sendWithHost(
        portOf(proxied),
        await beatFor(a, "https://noc.example.net", proxied.clock.now()),
        `127.0.0.1:${portOf(proxied)}`,
        { "x-forwarded-host": "noc.example.net", "x-forwarded-proto": "https" },
      );
      assert.equal(forwarded.status, 200, forwarded.text);
      // A client's own X-Forwarded-Host cannot name a host the NOC does not have.
      const evil = await sendWithHost(
        portOf(proxied),
        await beatFor(a, "http://evil.example:9999", proxied.clock.now()),
        `127.0.0.1:${portOf(proxied)}`,
        { "x-forwarded-host": "evil.example:9999" },
      );
      assert.equal(JSON.parse(evil.text).error, "wrong_authority");
      // Without NOC_TRUST_PROXY the header is ignored: the authority is the Host the NOC saw.
      const ignored = await sendWithHost(
        portOf(direct),
        await beatFor(a, "https://noc.example.net", direct.clock.now()),
        `127.0.0.1:${portOf(direct)}`,
        { "x-forwarded-host": "noc.example.net" },
      );
      assert.equal(ignored.status, 401);
      assert.equal(JSON.parse(ignored.text).error, "wrong_authority");
    } finally {
      await proxied.close();
      await direct.close();
    }
  },
);

dbTest(
  "local-server requests are held to the same authority, before their key is looked up",
  async ({ db }) => {
    const noc = await serveNoc(db, { publicHosts: ["noc.example.net"] });
    try {
      const port = Number(new URL(noc.url).port);
      const key = await generateEd25519();
      for (const path of ["/v1/local/sync", "/v1/local/deliveries"]) {
        const req = await signedRequest({
          baseUrl: "http://evil.example:9999",
          uid: crypto.randomUUID(),
          key: key.privateKey,
          method: "POST",
          path,
          body: {},
          now: noc.clock.now(),
        });
        const res = await sendWithHost(port, req, "evil.example:9999");
        assert.equal(res.status, 401, `${path}: ${res.text}`);
        assert.equal(JSON.parse(res.text).error, "wrong_authority", path);
      }
    } finally {
      await noc.close();
    }
  },
);

dbTest(
  "a Content-Digest member named constructor, __proto__ or toString is no digest at all",
  async ({ db }) => {
    const noc = await serveNoc(db);
    try {
      const a = await noc.enrollAppliance();
      const body = JSON.stringify(sampleBeat(1, noc.clock.now()));
      // The body's true SHA-512, under a name an object inherits: it must not count as sha-512.
      const sha512 = createHash("sha512").update(body).digest("base64");
      for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
        const req = await beatFor(a, noc.url, noc.clock.now(), {
          "content-digest": `${name}=:${sha512}:`,
        });
        const res = await fetch(req);
        const json = await res.json();
        assert.equal(res.status, 401, name);
        assert.equal(json.error, "bad_digest", name);
      }
      assert.equal(await count(db, "beats"), 0);
    } finally {
      await noc.close();
    }
  },
);

Deno.test("createAuthorities() with nothing configured accepts the listener's names and loopback at its port", () => {
  const some = createAuthorities([]);
  assert.ok(some.accepts("localhost:1234"), "before a listener is known: loopback, any port");
  assert.ok(!some.accepts("evil.example:1234"));
  const dev = createAuthorities([]);
  dev.listening({ hostname: "0.0.0.0", port: 8000 });
  for (
    const yes of [
      "localhost:8000",
      "127.0.0.1:8000",
      "[::1]:8000",
      `${Deno.hostname().toLowerCase()}:8000`,
    ]
  ) {
    assert.ok(dev.accepts(yes), yes);
  }
  for (const no of ["localhost:8001", "evil.example:8000", "localhost", "evil.example:9999"]) {
    assert.ok(!dev.accepts(no), no);
  }
  assert.match(dev.describe(), /port 8000/);
  const configured = createAuthorities(["noc.example.net"], ["http://files.example.net:8080/"]);
  configured.listening({ hostname: "127.0.0.1", port: 8000 });
  assert.ok(configured.accepts("noc.example.net"));
  assert.ok(configured.accepts("files.example.net:8080"), "the component role's name");
  assert.ok(!configured.accepts("127.0.0.1:8000"), "configured: only the configured names");
  // A catalog role's URL alone (split roles, as tests/roles_e2e_test.ts runs them) does not
  // name this server: its listener is still accepted.
  const split = createAuthorities([], ["http://127.0.0.1:9001"]);
  split.listening({ hostname: "127.0.0.1", port: 9000 });
  assert.ok(split.accepts("127.0.0.1:9000") && split.accepts("127.0.0.1:9001"));
  assert.ok(!split.accepts("127.0.0.1:9002"));
});

Deno.test("NOC_PUBLIC_HOSTS and the public URLs make the accepted authorities; a bad entry is refused", () => {
  const c = loadConfig({
    NOC_PUBLIC_URL: "https://noc.example.net",
    NOC_COMPONENT_URL: "http://files.example.net:8080/",
    NOC_PUBLIC_HOSTS: "NOC-2.example.net, 10.0.0.5:8000 [fd00::1]:8443",
  });
  assert.deepEqual(c.settings.publicHosts.sort(), [
    "10.0.0.5:8000",
    "[fd00::1]:8443",
    "noc-2.example.net",
    "noc.example.net",
  ]);
  assert.deepEqual(loadConfig({}).settings.publicHosts, []);
  for (const bad of ["https://noc.example.net", "noc.example.net/x", "a b:99999", "evil:0"]) {
    assert.throws(() => loadConfig({ NOC_PUBLIC_HOSTS: bad }), /NOC_PUBLIC_HOSTS/, bad);
  }
});
