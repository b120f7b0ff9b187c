import * as assert from "node:assert/strict";
import { openPostgres, postgresTarget } from "../noc/db/db.ts";

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
  const db = openPostgres(u.href);
  try {
    const [row] = await db.sql<{ addr: string | null; db: string }>`
      select inet_server_addr()::text as addr, current_database() as db`;
    assert.equal(row!.addr, null, "a Unix socket has no server address");
    assert.equal(row!.db, u.pathname.slice(1));
  } finally {
    await db.close();
  }
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
