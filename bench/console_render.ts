/**
 * The console with a big fleet: 100,000 appliances (every one with a last
 * report listing its components) and a day of beats for 10,000 of them are
 * seeded, then the fleet page (its first render, which counts a day of beats,
 * and later ones), the appliance list (first page, filtered, by version,
 * search) and an appliance page are rendered on the server through the app,
 * timed as the median of five runs.
 *
 *   deno run -A bench/console_render.ts [appliances]
 *
 * On PostgreSQL when TEST_DATABASE_URL is set, on PGlite otherwise.
 *
 * @module
 */
import postgres from "postgres";
import { PGlite } from "@electric-sql/pglite";
import { type Db, openPglite, openPostgres } from "../noc/db/db.ts";
import { migrate } from "../noc/db/migrate.ts";
import { testNoc } from "../tests/_harness.ts";
import { type Figure, medianMs } from "./figure.ts";

/** Seeds `n` appliances and renders the console's pages; returns the figures. */
export async function consoleRender(n = 100_000): Promise<Figure[]> {
  const pgUrl = Deno.env.get("TEST_DATABASE_URL");
  const schema = `bench_${crypto.randomUUID().replace(/-/g, "")}`;
  let db: Db;
  let cleanup: () => Promise<void>;
  if (pgUrl) {
    const admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create schema "${schema}"`);
    db = openPostgres(pgUrl, { schema, max: 4 });
    cleanup = async () => {
      await db.close();
      await admin.unsafe(`drop schema "${schema}" cascade`);
      await admin.end();
    };
  } else {
    const pg = new PGlite();
    await pg.waitReady;
    db = await openPglite({ instance: pg, schema: "public" });
    cleanup = async () => await pg.close();
  }
  const backend = pgUrl ? "PostgreSQL" : "PGlite";
  try {
    await migrate(db);
    const noc = await testNoc(db);
    const now = noc.clock.now();
    const seedStart = performance.now();
    await db.sql`
      insert into appliances (uid, model, hostname, site, channel, tags, sign_key, enc_key, interval_s,
        enrolled_at, next_due_at, last_beat_at, missing_since, last_report)
      select gen_random_uuid(), 'vs-' || (i % 4), 'gw-' || lpad(i::text, 6, '0'), 'site-' || (i % 200),
        case when i % 10 = 0 then 'beta' else 'stable' end, array['rack-' || (i % 50)],
        'k' || i, 'e' || i, 909, ${now}::timestamptz - interval '30 days',
        ${now}::timestamptz + ((i % 900) || ' seconds')::interval
          - case when i % 100 = 0 then interval '2 hours' else interval '0' end,
        ${now}::timestamptz - interval '5 minutes',
        case when i % 100 = 0 then ${now}::timestamptz - interval '1 hour' end,
        jsonb_build_object('components', jsonb_build_array(
          jsonb_build_object('kind', 'package', 'app', 'vscreen', 'name', 'vscreen',
            'version', case when i % 3 = 0 then '4.2.1' else '4.2.0' end),
          jsonb_build_object('kind', 'file', 'app', 'vscreen', 'name', 'rules.conf', 'version', '7')),
          'health', jsonb_build_object('load', jsonb_build_array(0.1, 0.2, 0.3)))
      from generate_series(1, ${n}) i`;
    await db.sql`
      insert into beats (uid, received_at, seq, sent_at, report)
      select a.uid, ${now}::timestamptz - (s * interval '15 minutes'), s, ${now}::timestamptz - (s * interval '15 minutes'),
        '{"health":{"load":[0.1,0.2,0.3],"disks":[]}}'::jsonb
      from (select uid from appliances order by hostname limit ${Math.min(n, 10_000)}) a,
        generate_series(1, 96) s`;
    await db.sql`analyze`;
    const seedMs = performance.now() - seedStart;

    // A signed-in console session.
    const base = "http://noc.bench";
    let r = await noc.app.request(`${base}/ui/login`);
    const cookie = r.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = (await r.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
    r = await noc.app.request(`${base}/ui/login`, {
      method: "POST",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: csrf, token: noc.adminToken, next: "/ui" }),
    });
    const session = r.headers.getSetCookie().find((h) => h.startsWith("noc_session="))!
      .split(";")[0]!;
    const page = async (path: string) => {
      const res = await noc.app.request(`${base}${path}`, { headers: { cookie: session } });
      const body = await res.text();
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${body.slice(0, 200)}`);
      return body;
    };
    const [first] = await db.sql<
      { uid: string }
    >`select uid from appliances order by hostname limit 1`;
    const coldStart = performance.now();
    await page("/ui");
    const coldMs = performance.now() - coldStart;
    const figures: Array<[string, string]> = [
      ["fleet page", "/ui"],
      ["appliance list, first page of 50", "/ui/appliances"],
      [
        "appliance list, filtered (state=missing, site)",
        "/ui/appliances?state=missing&site=site-0",
      ],
      ["appliance list, by version", "/ui/appliances?app=vscreen&version=4.2.1"],
      ["appliance list, search", "/ui/appliances?q=gw-09999"],
      ["appliance page (96 beats of history)", `/ui/appliances/${first!.uid}`],
    ];
    const out: Figure[] = [{
      name: `console: seed ${n.toLocaleString("en")} appliances + ${
        Math.min(n, 10_000) * 96
      } beats (${backend})`,
      value: seedMs,
      unit: "ms",
      note: "setup, not a target",
    }, {
      name: `console: fleet page, first render after start (${backend})`,
      value: coldMs,
      unit: "ms",
      note: `counts a day of beats once: ${(coldMs / 1000 * 100).toFixed(1)}% of a second`,
    }];
    for (const [name, path] of figures) {
      const ms = await medianMs(5, async () => {
        await page(path);
      });
      out.push({
        name: `console: ${name}, ${n.toLocaleString("en")} appliances (${backend})`,
        value: ms,
        unit: "ms",
        note: `target well under 1000 ms: ${(ms / 1000 * 100).toFixed(1)}% of a second` +
          (path === "/ui" ? " (beat buckets counted once, versions in the field ≤ 30 s old)" : ""),
      });
    }
    return out;
  } finally {
    await cleanup();
  }
}

if (import.meta.main) {
  for (const f of await consoleRender(Number(Deno.args[0] ?? 100_000))) {
    console.log(`${f.name}: ${f.value.toFixed(1)} ${f.unit} (${f.note})`);
  }
}
