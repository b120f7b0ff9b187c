/**
 * The specification's separate servers (FIGURE 2): the NOC (status monitor,
 * status daemon, admin API, console), the catalog server and the component
 * server as three processes on one PostgreSQL database, each behind its own
 * URL, and a real agent converging through them as it does through `all`.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { type NocProcess, startNocRole } from "./_process.ts";
import { agentBox } from "./_agent.ts";
import { payload } from "./_components.ts";
import { newSeed } from "../protocol/keys.ts";
import { scratchDatabase } from "./_harness.ts";

const pgUrl = Deno.env.get("TEST_DATABASE_URL");
if (!pgUrl) {
  console.log("roles e2e test skipped: it needs TEST_DATABASE_URL (three processes, one database)");
}

Deno.test({
  name: "noc, catalog and component roles as three processes: an agent converges through them",
  ignore: !pgUrl,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const scratch = await scratchDatabase(pgUrl!, "roles");
    const dirs: string[] = [];
    const procs: NocProcess[] = [];
    const box = await agentBox();
    const shared = {
      DATABASE_URL: scratch.url,
      NOC_SIGNING_KEY: newSeed(),
      NOC_MASTER_KEY: newSeed(),
      NOC_REQUEST_LOG: "all",
    };
    const start = async (role: "noc" | "catalog" | "component", env: Record<string, string>) => {
      const dir = await Deno.makeTempDir({ prefix: `noc-${role}-` });
      dirs.push(dir);
      const p = await startNocRole(role, { ...shared, NOC_DATA_DIR: dir, ...env }, ["--dev"]);
      procs.push(p);
      return p;
    };
    try {
      const component = await start("component", {});
      const catalog = await start("catalog", { NOC_COMPONENT_URL: component.url });
      const noc = await start("noc", { NOC_CATALOG_URL: catalog.url });
      assert.ok(noc.adminToken && noc.enrollmentToken, "the noc role prints its tokens");

      // Each role serves its own part only.
      const status = async (base: string, path: string) => {
        const r = await fetch(`${base}${path}`);
        await r.body?.cancel();
        return r.status;
      };
      assert.equal(await status(component.url, "/v1/admin/appliances"), 404, "no admin surface");
      assert.equal(await status(component.url, "/ui"), 404, "no console");
      assert.equal(await status(component.url, "/v1/catalog"), 404);
      assert.equal(await status(catalog.url, "/v1/components/1"), 404);
      assert.equal(await status(catalog.url, "/v1/admin/appliances"), 404);
      assert.equal(await status(noc.url, "/v1/catalog"), 404);
      assert.equal(await status(noc.url, "/v1/components/1"), 404);
      for (const p of [noc, catalog, component]) {
        assert.equal(await status(p.url, "/healthz"), 200);
      }

      const headers = { authorization: `Bearer ${noc.adminToken}` };
      const up = await fetch(`${noc.url}/v1/admin/packages?app=demo&name=demo&version=1.0.0`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/gzip" },
        body: await payload({
          install: '#!/bin/sh\nmkdir -p "$NOC_ROOT/demo" && echo 1.0.0 > "$NOC_ROOT/demo/v"\n',
        }),
      });
      assert.equal(up.status, 201, await up.text());
      const as = await fetch(`${noc.url}/v1/admin/assignments`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify({
          kind: "package",
          app: "demo",
          name: "demo",
          version: "1.0.0",
          target: { type: "all" },
        }),
      });
      assert.equal(as.status, 201, await as.text());

      // A root that does not exist yet is made at enrolment (the first cycle reads its free space).
      await Deno.remove(box.root, { recursive: true });
      const enrolled = await box.run(["enroll", "--noc", noc.url, "--token", noc.enrollmentToken]);
      assert.equal(enrolled.code, 0, enrolled.stderr);
      assert.ok((await Deno.stat(box.root)).isDirectory, "enrol made the appliance root");
      const once = await box.run(["once"]);
      assert.equal(once.code, 0, once.stdout + once.stderr);
      const finished = once.events.find((e) => e.event === "cycle_finished");
      assert.ok(finished, "the cycle logged its end");
      assert.equal(finished.problems, 0, JSON.stringify(finished));
      assert.equal(await box.readRoot("demo/v"), "1.0.0\n", "the package's install program ran");
      const cur = await box.catalogCur();
      assert.equal(JSON.stringify(cur).includes('"1.0.0"'), true, JSON.stringify(cur));

      // Each request went to the server of its role.
      const paths = (p: NocProcess) =>
        p.output().split("\n").filter((l) => l.includes('"event":"request"')).map((l) =>
          `${JSON.parse(l).method} ${JSON.parse(l).path.replace(/\/\d+$/, "/:id")}`
        );
      assert.ok(paths(noc).includes("POST /v1/beats"), paths(noc).join("\n"));
      assert.ok(paths(catalog).includes("GET /v1/catalog"), paths(catalog).join("\n"));
      assert.ok(paths(catalog).includes("POST /v1/installs"), paths(catalog).join("\n"));
      assert.ok(paths(component).includes("GET /v1/components/:id"), paths(component).join("\n"));

      const db = postgres(scratch.url, { max: 1, onnotice: () => {} });
      try {
        const [d] = await db`select count(*)::int as n from deliveries`;
        assert.equal(d!.n, 1, "the component server recorded the download");
        const [o] = await db`select count(*)::int as n from install_outcomes`;
        assert.equal(o!.n, 1, "the catalog server recorded the install outcome");
      } finally {
        await db.end();
      }
    } finally {
      for (const p of procs.reverse()) await p.stop();
      await box.remove();
      for (const d of dirs) await Deno.remove(d, { recursive: true });
      await scratch.drop();
    }
  },
});
