/**
 * Which `@authority` values name this NOC (RFC 9421 §2.2.3): a request an
 * appliance or local server signed for another server — another NOC, a local
 * component server, a host a man in the middle made it use — is refused here,
 * even with a valid signature and a fresh nonce.
 *
 * - This server's own names, when configured (`NOC_PUBLIC_URL`,
 *   `NOC_PUBLIC_HOSTS`): exactly those authorities (host, and port unless it
 *   is the scheme's default).
 * - When they are not (development, or a NOC reached directly): the names of
 *   the address it listens on, at its port — the bound address, or for a
 *   wildcard listener the machine's host name and interface addresses — and
 *   loopback (`localhost`, `127.0.0.0/8`, `[::1]`). Until a listener is
 *   known (an app used in process), loopback at any port.
 * - In both cases, the hosts of `NOC_CATALOG_URL` and `NOC_COMPONENT_URL`: the
 *   same NOC's other roles (their paths are their own, and the nonce store is
 *   shared).
 *
 * @module
 */

/** The authority policy of one NOC instance (built by `createDeps()`). */
export interface Authorities {
  /** Whether `authority` (`host[:port]`, lower case, as signed) names this NOC. */
  accepts(authority: string): boolean;
  /**
   * Registers an address this instance is reached at directly (its listener); used only when
   * no public host is configured.
   */
  listening(addr: { hostname: string; port: number }): void;
  /** What is accepted, in words (the start-up banner, refusal messages). */
  describe(): string;
}

const wildcard = new Set(["0.0.0.0", "::", "[::]", ""]);

/** True for a loopback host: `localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost") || host === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Splits `host[:port]` (IPv6 in brackets) into host and port (null when absent). */
export function splitAuthority(authority: string): { host: string; port: string | null } {
  const m = /^(\[[0-9a-f:.]+\]|[^:\[\]]*)(?::(\d{1,5}))?$/.exec(authority);
  if (!m) return { host: authority, port: null };
  return { host: m[1]!, port: m[2] ?? null };
}

/** `hostname` as it appears in an authority: IPv6 addresses in brackets, lower case. */
function hostForm(hostname: string): string {
  const h = hostname.toLowerCase();
  return h.includes(":") && !h.startsWith("[") ? `[${h}]` : h;
}

/** The machine's own names (host name, interface addresses), as far as it may read them. */
function machineNames(): string[] {
  const names: string[] = [];
  try {
    names.push(hostForm(Deno.hostname()));
  } catch {
    // no --allow-sys: the host name is not known
  }
  try {
    for (const i of Deno.networkInterfaces()) names.push(hostForm(i.address.split("%")[0]!));
  } catch {
    // no --allow-sys: interface addresses are not known
  }
  return names;
}

/**
 * The authority policy for this server's configured names `publicHosts` (normalised
 * authorities, see `publicHostsOf` in noc/config.ts; empty: none configured) and the NOC's
 * other roles' URLs `roleUrls` (see the module notes).
 */
export function createAuthorities(
  publicHosts: readonly string[],
  roleUrls: ReadonlyArray<string | null> = [],
): Authorities {
  const configured = new Set(publicHosts.map((h) => h.toLowerCase()));
  const roles = new Set(
    roleUrls.filter((u): u is string => u !== null && URL.canParse(u)).map((u) =>
      new URL(u).host.toLowerCase()
    ),
  );
  const direct = new Set<string>();
  const ports = new Set<string>();
  return {
    accepts(authority) {
      const a = authority.toLowerCase();
      if (roles.has(a)) return true;
      if (configured.size > 0) return configured.has(a);
      if (direct.has(a)) return true;
      const { host, port } = splitAuthority(a);
      if (!isLoopbackHost(host)) return false;
      // A default port is elided from the authority, so a loopback listener on 80 or 443
      // is named without one.
      return ports.size === 0 || ports.has(port ?? "80") || ports.has(port ?? "443");
    },
    listening({ hostname, port }) {
      if (configured.size > 0) return;
      const p = String(port);
      ports.add(p);
      const hosts = wildcard.has(hostname) ? machineNames() : [hostForm(hostname)];
      for (const h of hosts) {
        direct.add(`${h}:${p}`);
        if (p === "80" || p === "443") direct.add(h);
      }
    },
    describe() {
      const others = roles.size > 0 ? `; other roles: ${[...roles].join(", ")}` : "";
      if (configured.size > 0) return [...configured].join(", ") + others;
      const named = [...direct].filter((d) => !isLoopbackHost(splitAuthority(d).host));
      const at = ports.size === 0 ? "any port" : `port ${[...ports].join(", ")}`;
      return `loopback at ${at}${
        named.length ? `, ${named.join(", ")}` : ""
      } (no NOC_PUBLIC_URL or NOC_PUBLIC_HOSTS)${others}`;
    },
  };
}
