import * as assert from "node:assert/strict";
import { DbTimeoutError, openPglite, openPostgres, postgresTarget } from "../noc/db/db.ts";

const pg = Deno.env.get("TEST_DATABASE_URL");

Deno.test("openPostgres() connects through the Unix socket folder named by ?host=", async () => {
  const u = pg ? new URL(pg) : null;
  const dir = ["/var/run/postgresql", "/tmp"].find((d) => {
    try {
      return u !== null && Deno.statSync(`${d}/.s.PGSQL.${u.port || "5432"}`).isFile !== undefined;
    } catch {
      return false;
    }
  });
  if (!u || !dir || !["localhost", "127.0.0.1"].includes(u.hostname)) {
    console.log("skipped: needs TEST_DATABASE_URL on this machine and its Unix socket");
    return;
  }
  u.searchParams.set("host", dir);
  // Unbounded (the driver's own sockets) and bounded (the watchdog's sockets).
  for (const timeoutS of [undefined, 5]) {
    const db = openPostgres(u.href, { timeoutS });
    try {
      const [row] = await db.sql<{ addr: string | null; db: string }>`
        select inet_server_addr()::text as addr, current_database() as db`;
      assert.equal(row!.addr, null, "a Unix socket has no server address");
      assert.equal(row!.db, u.pathname.slice(1));
    } finally {
      await db.close();
    }
  }
});

Deno.test({
  name:
    "a bounded handle fails a statement past its bound with a 503 code, keeps working, and runs scripts unbounded",
  ignore: !pg,
  fn: async () => {
    const db = openPostgres(pg!, { timeoutS: 1, max: 2 });
    try {
      const [setting] = await db.sql<
        { v: string }
      >`select current_setting('statement_timeout') as v`;
      assert.equal(setting!.v, "800ms", "the server bounds runaway statements too");
      await assert.rejects(db.sql`select pg_sleep(3)`, (e: unknown) => {
        assert.ok(e instanceof DbTimeoutError);
        assert.equal(e.code, "ETIMEDOUT");
        return true;
      });
      await assert.rejects(
        db.begin(async (tx) => await tx`select pg_sleep(3)`),
        (e: unknown) => e instanceof DbTimeoutError,
      );
      const [row] = await db.sql<{ n: number }>`select 1 as n`;
      assert.equal(row!.n, 1);
      // Migrations run as scripts in a transaction: not cut at the bound.
      const got = await db.begin(async (tx) => {
        await tx.script("select pg_sleep(1.3)");
        return await tx<{ n: number }>`select 2 as n`;
      });
      assert.equal(got[0]!.n, 2);
    } finally {
      await db.close();
    }
  },
});

Deno.test("postgresTarget() takes a socket folder out of the URL and leaves the rest", () => {
  assert.deepEqual(
    postgresTarget("postgres://noc@localhost:5432/noc?host=/var/run/postgresql&options=-c%20x%3D1"),
    { url: "postgres://noc@localhost:5432/noc?options=-c+x%3D1", socketDir: "/var/run/postgresql" },
  );
  assert.deepEqual(postgresTarget("postgres://noc@db.example:5432/noc"), {
    url: "postgres://noc@db.example:5432/noc",
    socketDir: null,
  });
  // A host that is not a folder is not a socket: left for the driver (and the server) to judge.
  assert.deepEqual(postgresTarget("postgres://noc@localhost/noc?host=db"), {
    url: "postgres://noc@localhost/noc?host=db",
    socketDir: null,
  });
});

interface InfoDependency {
  specifier: string;
  code?: { specifier: string };
  isDynamic?: boolean;
}

/** Every module `root` loads before it runs: static code imports, not types or dynamic imports. */
async function staticCodeGraph(root: string): Promise<{ loaded: Set<string>; dynamic: string[] }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    cwd: new URL("../", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: { specifier: string; dependencies?: InfoDependency[] }[];
    redirects: Record<string, string>;
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const resolve = (s: string) => info.redirects[s] ?? s;
  const loaded = new Set<string>();
  const dynamic: string[] = [];
  const todo = info.roots.map(resolve);
  while (todo.length > 0) {
    const spec = todo.pop()!;
    if (loaded.has(spec)) continue;
    loaded.add(spec);
    for (const d of bySpecifier.get(spec)?.dependencies ?? []) {
      if (!d.code) continue;
      if (d.isDynamic) dynamic.push(resolve(d.code.specifier));
      else todo.push(resolve(d.code.specifier));
    }
  }
  return { loaded, dynamic };
}

Deno.test("a NOC on PostgreSQL never loads PGlite: db.ts and main.ts import it only dynamically", async () => {
  for (const root of ["noc/db/db.ts", "main.ts"]) {
    const { loaded, dynamic } = await staticCodeGraph(root);
    assert.ok([...loaded].some((s) => s.includes("/postgres@")), `${root} loads npm:postgres`);
    assert.deepEqual([...loaded].filter((s) => s.includes("pglite")), [], `${root} loads PGlite`);
    assert.ok(dynamic.some((s) => s.includes("@electric-sql/pglite")), `${root} can import PGlite`);
  }
});

Deno.test("openPglite() without an instance loads PGlite on demand and opens it in memory", async () => {
  const db = await openPglite();
  try {
    assert.equal(db.kind, "pglite");
    const [row] = await db.sql<{ n: number }>`select 40 + ${2}::int as n`;
    assert.equal(row!.n, 42);
  } finally {
    await db.close();
  }
});
