/**
 * `/ui/appliances/:uid`: one appliance — health charts, components, configuration, outcomes, alerts;
 * links between a re-imaged appliance's old and new records; wake and revoke (not once revoked).
 */
import { Hono } from "hono";
import { z } from "zod";
import { Csrf, Layout, State, Time } from "../layout.tsx";
import { LineChart } from "../charts.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, uidOf } from "../page.ts";
import { refusal } from "../admin_client.ts";
import { applianceSchema } from "./appliances.tsx";

const componentRef = z.object({
  kind: z.string(),
  app: z.string(),
  name: z.string(),
  version: z.string(),
});

/** What the page reads of `GET /appliances/:uid` (an appliance record, then typed fields). */
const detailSchema = applianceSchema.extend({
  lastReport: z.unknown(),
  catalog: z.array(componentRef),
  installOutcomes: z.array(componentRef.extend({
    outcome: z.string(),
    message: z.string().nullable(),
    reportedAt: z.string(),
  })),
  history: z.array(z.object({ receivedAt: z.string(), report: z.unknown() })),
  alerts: z.array(z.object({
    kind: z.string(),
    openedAt: z.string(),
    resolvedAt: z.string().nullable(),
  })),
});

/** The parts of a SecureBeat's health the charts draw; anything else is ignored. */
const healthSchema = z.object({
  health: z.object({
    load: z.array(z.unknown()).optional(),
    disks: z.array(z.object({ freeBytes: z.unknown() }).partial()).optional(),
  }).partial().optional(),
}).partial();

const installedSchema = z.object({ components: z.array(componentRef) }).partial();

function healthOf(report: unknown): z.infer<typeof healthSchema>["health"] {
  const r = healthSchema.safeParse(report);
  return r.success ? r.data.health : undefined;
}

/** `GET /ui/appliances/:uid`, `POST …/:uid/wake`, `POST …/:uid/revoke` (form: `reason`). */
export function appliancePages(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/appliances/:uid", p.signedIn, async (c) => {
      const uid = uidOf(c);
      const ctx = c.var.page;
      const res = await c.var.api.appliances[":uid"].$get({
        param: { uid },
        query: { history: "200" },
      });
      if (!res.ok) {
        return await html(
          c,
          <Layout title="Appliance" ctx={ctx}>
            <p class="flash">{await refusal(res)}</p>
          </Layout>,
          res.status,
        );
      }
      const a = detailSchema.parse(await res.json());
      const configRes = await c.var.api.appliances[":uid"].configuration.$get({ param: { uid } });
      const config = configRes.ok ? (await configRes.json()).items : [];
      const should = a.catalog;
      const reported = installedSchema.safeParse(a.lastReport);
      const installed = reported.success ? reported.data.components ?? [] : [];
      const load = a.history.map((b) => ({
        t: Date.parse(b.receivedAt),
        v: Number(healthOf(b.report)?.load?.[0] ?? 0),
      }));
      const disk = a.history.map((b) => ({
        t: Date.parse(b.receivedAt),
        v: Math.min(
          ...(healthOf(b.report)?.disks ?? []).map((d) => Number(d.freeBytes) / 1024 ** 3),
          Infinity,
        ),
      })).filter((pt) => Number.isFinite(pt.v));
      const key = (x: { kind: string; app: string; name: string }) =>
        `${x.kind}/${x.app}/${x.name}`;
      const running = new Map(installed.map((x) => [key(x), x.version]));
      return await html(
        c,
        <Layout title={a.hostname} ctx={ctx} live>
          <p>
            <State state={a.state} /> {a.model} · site {a.site ?? "none"} · channel {a.channel}
            {a.tags.length ? ` · tags ${a.tags.join(", ")}` : ""} · UID <code>{a.uid}</code>
          </p>
          <p class="muted">
            Enrolled <Time at={a.enrolledAt} />, last beat <Time at={a.lastBeatAt} />, next due{" "}
            <Time at={a.nextDueAt} />, agent {a.agentVersion ?? "?"}, interval {a.intervalS} s
            {a.revokedAt ? `, revoked: ${a.revokedReason}` : ""}
          </p>
          {a.supersededBy && (
            <p id="superseded-by">
              Retired: re-enrolled (re-imaged) as{" "}
              <a href={`/ui/appliances/${a.supersededBy}`}>{a.supersededBy}</a>, the current record.
              This one keeps its history.
            </p>
          )}
          {a.supersedes && a.supersedes.length > 0 && (
            <p id="supersedes">
              Re-enrolment of {a.supersedes.map((old, i) => (
                <>
                  {i > 0 ? ", " : ""}
                  <a href={`/ui/appliances/${old}`}>{old}</a>
                </>
              ))} ({a.supersedes.length === 1
                ? "a retired record, with its history"
                : "retired records, with their history"}).
            </p>
          )}
          {!a.revokedAt && (
            <div>
              <form method="post" action={`/ui/appliances/${a.uid}/wake`} class="inline">
                <Csrf ctx={ctx} />
                <button type="submit">Wake now</button>
              </form>{" "}
              <form method="post" action={`/ui/appliances/${a.uid}/revoke`} class="inline">
                <Csrf ctx={ctx} />
                <input name="reason" placeholder="reason for revoking" required />
                <button type="submit" class="danger">Revoke</button>
              </form>
            </div>
          )}
          <div class="grid">
            <LineChart points={load} label="load (1 min)" />
            <LineChart points={disk} label="least disk free" unit="GiB" />
          </div>
          <h2>Components: running versus catalog</h2>
          <table id="components">
            <tr>
              <th>kind</th>
              <th>application</th>
              <th>name</th>
              <th>running</th>
              <th>catalog</th>
            </tr>
            {[...new Set([...installed.map(key), ...should.map(key)])].sort().map((k) => {
              const [kind, app, name] = k.split("/");
              const want = should.find((s) => key(s) === k)?.version;
              const have = running.get(k);
              return (
                <tr>
                  <td>{kind}</td>
                  <td>{app}</td>
                  <td>{name}</td>
                  <td>{have ?? <span class="muted">none</span>}</td>
                  <td>
                    {want ?? <span class="muted">not in catalog</span>}
                    {want && have !== want ? " (pending)" : ""}
                  </td>
                </tr>
              );
            })}
          </table>
          <h2>Configuration the NOC assembled</h2>
          <table>
            <tr>
              <th>kind</th>
              <th>component</th>
              <th>version</th>
              <th>sent</th>
              <th>via</th>
            </tr>
            {config.map((i) => (
              <tr>
                <td>{i.kind}</td>
                <td>{i.app}/{i.name}</td>
                <td>{i.version}</td>
                <td>
                  <Time at={i.lastSentAt} /> ({i.times}×)
                </td>
                <td>{i.via ? i.via.name : "NOC"}</td>
              </tr>
            ))}
          </table>
          <h2>Install outcomes</h2>
          <table>
            <tr>
              <th>when</th>
              <th>component</th>
              <th>outcome</th>
              <th>message</th>
            </tr>
            {a.installOutcomes.map((o) => (
              <tr>
                <td>
                  <Time at={o.reportedAt} />
                </td>
                <td>{o.app}/{o.name}@{o.version}</td>
                <td>{o.outcome}</td>
                <td>{o.message ?? ""}</td>
              </tr>
            ))}
          </table>
          <h2>Alerts</h2>
          <table>
            <tr>
              <th>kind</th>
              <th>opened</th>
              <th>resolved</th>
            </tr>
            {a.alerts.map((al) => (
              <tr>
                <td>{al.kind}</td>
                <td>
                  <Time at={al.openedAt} />
                </td>
                <td>
                  <Time at={al.resolvedAt} />
                </td>
              </tr>
            ))}
          </table>
          <h2>Last report</h2>
          <pre>{JSON.stringify(a.lastReport, null, 2)}</pre>
        </Layout>,
      );
    })
    .post("/appliances/:uid/wake", p.signedIn, async (c) => {
      const uid = uidOf(c);
      const res = await c.var.api.wake.$post({ json: { uid } });
      return back(c, `/ui/appliances/${uid}`, res.ok ? "Woken: it cycles now" : await refusal(res));
    })
    .post("/appliances/:uid/revoke", p.signedIn, async (c) => {
      const uid = uidOf(c);
      const form = await formOf(c);
      const res = await c.var.api.appliances[":uid"].revoke.$post({
        param: { uid },
        json: { reason: field(form, "reason") },
      });
      return back(c, `/ui/appliances/${uid}`, res.ok ? "Revoked" : await refusal(res));
    });
}
