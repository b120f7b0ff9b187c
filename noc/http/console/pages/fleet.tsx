/**
 * `/ui`: the fleet at a glance — counts by state, open alerts (unacknowledged and acknowledged
 * apart), each site's health (sites in trouble first), beats per minute, versions in the field.
 */
import { Hono } from "hono";
import { z } from "zod";
import { Layout, State, Time } from "../layout.tsx";
import { LineChart } from "../charts.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { html } from "../page.ts";
import { alertListSchema } from "./alerts.tsx";

/** `GET /v1/admin/fleet/sites` as the console reads it. */
export const siteHealthSchema = z.object({
  items: z.array(z.object({
    site: z.string().nullable(),
    total: z.number(),
    missing: z.number(),
    late: z.number(),
    missingSince: z.string().nullable(),
    openAlerts: z.number(),
    acknowledgedAlerts: z.number(),
    maintenance: z.object({ id: z.number(), endsAt: z.string(), reason: z.string() }).nullable(),
    appliancesInMaintenance: z.number().optional(),
  })),
  total: z.number(),
});

type SiteHealth = z.infer<typeof siteHealthSchema>["items"][number];

/** Sites shown on the fleet page before "all sites". */
const firstSites = 50;

/** `GET /ui` (`?sites=all`: every site, up to 1,000). */
export function fleetPage(p: PageDeps) {
  return new Hono<ConsoleEnv>().get("/", p.signedIn, async (c) => {
    const allSites = c.req.query("sites") === "all";
    const [fleetRes, openRes, sitesRes] = await Promise.all([
      c.var.api.fleet.$get(),
      c.var.api.alerts.$get({ query: { status: "open", unacknowledged: "true", limit: "20" } }),
      c.var.api.fleet.sites.$get({ query: { limit: String(allSites ? 1000 : firstSites) } }),
    ]);
    const fleet = await fleetRes.json();
    const alerts = alertListSchema.parse(await openRes.json()).items;
    const sites = siteHealthSchema.parse(await sitesRes.json());
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
          <a class="card" href="/ui/alerts?unacknowledged=true" id="unacknowledged-alerts">
            unacknowledged alerts<b>{fleet.unacknowledgedAlerts}</b>
          </a>
          <a class="card" href="/ui/alerts" id="acknowledged-alerts">
            acknowledged, still open<b>{fleet.acknowledgedAlerts}</b>
          </a>
        </div>
        <h2 id="sites">Sites</h2>
        <SitePanel sites={sites.items} canAct={c.var.page.role !== "viewer"} />
        {sites.total > sites.items.length && (
          <p>
            {sites.items.length} of {sites.total} sites, those in trouble first.{" "}
            <a href="/ui?sites=all#sites">All sites</a>
          </p>
        )}
        <h2>Beats per minute, last 24 hours</h2>
        <LineChart points={rate} label="beats per minute (10-minute buckets)" />
        <div class="grid">
          <section>
            <h2>Unacknowledged alerts</h2>
            {alerts.length === 0 ? <p class="muted">None.</p> : (
              <table>
                <tr>
                  <th>appliance</th>
                  <th>site</th>
                  <th>kind</th>
                  <th>since</th>
                </tr>
                {alerts.map((a) => (
                  <tr>
                    <td>
                      {a.uid ? <a href={`/ui/appliances/${a.uid}`}>{a.hostname ?? a.uid}</a> : "-"}
                    </td>
                    <td>{a.site ?? ""}</td>
                    <td>{a.kind}</td>
                    <td>
                      <Time at={a.openedAt} />
                    </td>
                  </tr>
                ))}
              </table>
            )}
            {alerts.length > 0 && (
              <p>
                <a href="/ui/alerts?unacknowledged=true">All unacknowledged alerts</a>
              </p>
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

/** The per-site health list: one line per site, what is wrong, and links to act on it. */
function SitePanel(props: { sites: SiteHealth[]; canAct: boolean }) {
  if (props.sites.length === 0) return <p class="muted">No appliances yet.</p>;
  return (
    <ul class="sites" id="site-health">
      {props.sites.map((s) => {
        const name = s.site ?? "(no site)";
        const q = s.site ? encodeURIComponent(s.site) : "";
        return (
          <li data-site={s.site ?? ""}>
            <b>{name}</b>: {s.missing > 0
              ? (
                <>
                  {s.missing} of {s.total} missing since <Time at={s.missingSince} />
                </>
              )
              : <>all {s.total} beating</>}
            {s.late > 0 && <>, {s.late} late</>}
            {(s.appliancesInMaintenance ?? 0) > 0 && (
              <>, {s.appliancesInMaintenance} in maintenance of their own</>
            )}
            {s.maintenance && (
              <>
                {" "}·{" "}
                <span class="maintenance">
                  in maintenance until <Time at={s.maintenance.endsAt} />: {s.maintenance.reason}
                </span>
              </>
            )}
            {s.site && (
              <span class="links">
                {s.missing > 0 && (
                  <>
                    {" "}· <a href={`/ui/appliances?site=${q}&state=missing`}>missing appliances</a>
                  </>
                )}
                {s.openAlerts + s.acknowledgedAlerts > 0 && (
                  <>
                    {" "}·{" "}
                    <a href={`/ui/alerts?site=${q}&unacknowledged=true`}>
                      {s.openAlerts} unacknowledged alerts
                    </a>
                    {s.acknowledgedAlerts > 0 && <>{` (${s.acknowledgedAlerts} acknowledged)`}</>}
                  </>
                )}
                {props.canAct && !s.maintenance && (
                  <>
                    {" "}· <a href={`/ui/maintenance?site=${q}`}>maintenance…</a>
                  </>
                )}
              </span>
            )}
          </li>
        );
      })}
    </ul>
  );
}
