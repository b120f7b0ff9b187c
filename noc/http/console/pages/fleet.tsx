/** `/ui`: the fleet at a glance — counts by state, beats per minute, open alerts, versions in the field. */
import { Hono } from "hono";
import { Layout, State, Time } from "../layout.tsx";
import { LineChart } from "../charts.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { html } from "../page.ts";
import { alertListSchema } from "./alerts.tsx";

/** `GET /ui`. */
export function fleetPage(p: PageDeps) {
  return new Hono<ConsoleEnv>().get("/", p.signedIn, async (c) => {
    const [fleetRes, openRes] = await Promise.all([
      c.var.api.fleet.$get(),
      c.var.api.alerts.$get({ query: { status: "open", limit: "20" } }),
    ]);
    const fleet = await fleetRes.json();
    const alerts = alertListSchema.parse(await openRes.json()).items;
    const counts = fleet.states;
    const rate = fleet.beatsPerMinute.map((b) => ({ t: Date.parse(b.at), v: b.perMinute }));
    const versions = fleet.versions;
    return await html(
      c,
      <Layout title="Fleet" ctx={c.var.page} live>
        <div class="cards" id="counts">
          {(["ok", "late", "missing", "revoked"] as const).map((s) => (
            <a class="card" href={`/ui/appliances?state=${s}`} data-state={s}>
              <State state={s} />
              <b>{counts[s]}</b>
            </a>
          ))}
          <a class="card" href="/ui/alerts">
            open alerts<b>{fleet.openAlerts}</b>
          </a>
        </div>
        <h2>Beats per minute, last 24 hours</h2>
        <LineChart points={rate} label="beats per minute (10-minute buckets)" />
        <div class="grid">
          <section>
            <h2>Open alerts</h2>
            {alerts.length === 0 ? <p class="muted">None.</p> : (
              <table>
                <tr>
                  <th>appliance</th>
                  <th>kind</th>
                  <th>since</th>
                </tr>
                {alerts.map((a) => (
                  <tr>
                    <td>
                      {a.uid ? <a href={`/ui/appliances/${a.uid}`}>{a.hostname ?? a.uid}</a> : "-"}
                    </td>
                    <td>{a.kind}{a.acknowledgedAt ? " (acknowledged)" : ""}</td>
                    <td>
                      <Time at={a.openedAt} />
                    </td>
                  </tr>
                ))}
              </table>
            )}
          </section>
          <section>
            <h2>Versions in the field</h2>
            {versions.length === 0
              ? <p class="muted">No appliance has reported components.</p>
              : (
                <table>
                  <tr>
                    <th>application</th>
                    <th>component</th>
                    <th>version</th>
                    <th class="num">appliances</th>
                  </tr>
                  {versions.map((v) => (
                    <tr>
                      <td>{v.app}</td>
                      <td>{v.name}</td>
                      <td>
                        <a
                          href={`/ui/appliances?app=${encodeURIComponent(v.app)}&version=${
                            encodeURIComponent(v.version)
                          }`}
                        >
                          {v.version}
                        </a>
                      </td>
                      <td class="num">{v.n}</td>
                    </tr>
                  ))}
                </table>
              )}
          </section>
        </div>
      </Layout>,
    );
  });
}
