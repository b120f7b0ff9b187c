/**
 * `/ui/appliances/:uid`: one appliance — its install state (a failed, rolled-back or interrupted
 * install shown as such, with the agent's message), placement and interval (editable), holds,
 * health charts, components, configuration, outcomes, alerts, the requests refused under its
 * identity, and its last report as readable facts; links between a re-imaged appliance's old and
 * new records; wake (never once revoked) and revoke (after a confirmation). Issue 21: the reasons
 * its last report gave (agent problems, what it left out), a clone mark (two devices under one
 * identity) with the way out and a button that clears it, and the names it had before.
 */
import { Hono } from "hono";
import { z } from "zod";
import { bytes, Confirm, Csrf, Layout, type PageContext, Pager, State, Time } from "../layout.tsx";
import { LineChart } from "../charts.tsx";
import type { ConsoleContext, ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, idOf, kept, listPage, refused, uidOf } from "../page.ts";
import { type AdminClient, refusal } from "../admin_client.ts";
import { applianceSchema } from "./appliances.tsx";
import { ifMatch, refusalOf, touched, Versioned } from "../revisions.tsx";

const componentRef = z.object({
  kind: z.string(),
  app: z.string(),
  name: z.string(),
  version: z.string(),
});

type Outcome = z.infer<typeof componentRef> & {
  outcome: string;
  message: string | null;
  reportedAt: string;
};

/** An appliance's identity-conflict mark (issue 21 item 7), as the API gives it. */
const identityConflictSchema = z.object({
  reason: z.string(),
  firstAt: z.string().nullable(),
  lastAt: z.string().nullable(),
  beats: z.number(),
  seq: z.number(),
  lastSeq: z.number().nullable(),
  stateUnwritable: z.string().nullish(),
  instances: z.array(z.object({
    instanceId: z.string().nullable(),
    firstSeenAt: z.string().nullable(),
    lastSeenAt: z.string().nullable(),
    address: z.string().nullish(),
  })),
});

/** An install window as the appliance detail gives it (`source`: `appliance`, `site:lab`, …). */
const installWindowShape = z.object({
  start: z.string(),
  end: z.string(),
  timeZone: z.string(),
  source: z.string(),
});
type AppliedWindow = z.infer<typeof installWindowShape>;

/**
 * The install window that applies to `a`: the detail's `installWindow`, or, from an API that does
 * not give it, the first of the appliance's, its site's and its model's windows.
 */
async function installWindowOf(
  api: AdminClient,
  a: {
    uid: string;
    site: string | null;
    model: string;
    installWindow?: AppliedWindow | null | undefined;
  },
): Promise<AppliedWindow | null> {
  if (a.installWindow !== undefined) return a.installWindow;
  const tries: Array<["appliance" | "site" | "model", string | null]> = [
    ["appliance", a.uid],
    ["site", a.site],
    ["model", a.model],
  ];
  for (const [scope, value] of tries) {
    if (!value) continue;
    const res = await api["install-windows"][":scope"][":value"].$get({ param: { scope, value } });
    if (!res.ok) {
      await res.body?.cancel();
      continue;
    }
    const w = installWindowShape.omit({ source: true }).parse(await res.json());
    return { ...w, source: scope === "appliance" ? "appliance" : `${scope}:${value}` };
  }
  return null;
}

/** What the page reads of `GET /appliances/:uid` (an appliance record, then typed fields). */
const detailSchema = applianceSchema.extend({
  lastReport: z.unknown(),
  identityConflict: identityConflictSchema.nullish(),
  problems: z.array(z.object({ code: z.string(), message: z.string() })).default([]),
  dropped: z.array(z.string()).default([]),
  hostnameHistory: z.array(z.object({ hostname: z.string(), until: z.string() })).default([]),
  /** The install window that applies (absent from an API before install windows). */
  installWindow: installWindowShape.nullish(),
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

/** What the readable facts show of the last report (each part optional, so any report reads). */
const reportSchema = z.object({
  sentAt: z.string(),
  agentVersion: z.string(),
  health: z.object({
    load: z.array(z.number()),
    memory: z.object({ totalBytes: z.number(), availableBytes: z.number() }),
    disks: z.array(z.object({ mount: z.string(), totalBytes: z.number(), freeBytes: z.number() })),
    uptimeS: z.number(),
  }).partial(),
  components: z.array(componentRef),
  lastCycle: z.object({
    outcome: z.string(),
    message: z.string().optional(),
    problems: z.array(z.object({
      code: z.string(),
      message: z.string(),
      kind: z.string().optional(),
      app: z.string().optional(),
      name: z.string().optional(),
      version: z.string().optional(),
    })).optional(),
  }),
  apps: z.record(z.string(), z.record(z.string(), z.unknown())),
}).partial();

type Report = z.infer<typeof reportSchema>;

const holdsSchema = z.object({
  items: z.array(z.object({
    id: z.number(),
    app: z.string().nullable(),
    reason: z.string(),
    createdAt: z.string(),
    revision: z.number().optional(),
  })),
  nextCursor: z.string().nullable().optional(),
});

const refusalsSchema = z.object({
  items: z.array(z.object({
    at: z.string(),
    reason: z.string(),
    method: z.string(),
    path: z.string(),
    address: z.string().nullable(),
    heldBack: z.number(),
  })),
});

function healthOf(report: unknown): z.infer<typeof healthSchema>["health"] {
  const r = healthSchema.safeParse(report);
  return r.success ? r.data.health : undefined;
}

function duration(s: number): string {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d} d ${h} h` : h > 0 ? `${h} h ${m} min` : `${m} min`;
}

const key = (x: { kind: string; app: string; name: string }) => `${x.kind}/${x.app}/${x.name}`;

/** An install outcome's badge: failed red, rolled back amber, installed green. */
function OutcomeBadge(props: { outcome: string }) {
  const cls = props.outcome === "failed"
    ? "missing"
    : props.outcome === "rolled_back"
    ? "late"
    : "ok";
  return <span class={`state ${cls}`}>{props.outcome.replace("_", " ")}</span>;
}

/**
 * One component's install state: `ok` (running what the catalog lists), `failed` or
 * `rolled_back` (the newest outcome for the catalog's version, with the agent's message),
 * `awaiting_reboot` (its install asked for a reboot), `deferred` (outside its install window),
 * `interrupted` (the last cycle reported another problem with it), or `pending` (not yet
 * reported).
 */
function componentState(
  want: string | undefined,
  have: string | undefined,
  k: string,
  outcomes: Outcome[],
  problems: NonNullable<NonNullable<Report["lastCycle"]>["problems"]>,
): { state: string; message: string | null } {
  if (want === undefined || have === want) return { state: "ok", message: null };
  const last = outcomes.find((o) => key(o) === k && o.version === want);
  if (last && last.outcome !== "installed") return { state: last.outcome, message: last.message };
  const [, app, name] = k.split("/");
  const problem = problems.find((p) => p.app === app && (p.name === undefined || p.name === name));
  // Waiting is not trouble: for the reboot its install asked for, or for its install window.
  if (problem?.code === "awaiting_reboot") {
    return { state: "awaiting_reboot", message: problem.message };
  }
  if (problem?.code === "install_deferred") return { state: "deferred", message: problem.message };
  if (problem) return { state: "interrupted", message: `${problem.code}: ${problem.message}` };
  return { state: "pending", message: null };
}

/** The readable facts of the last report. */
function ReportFacts(props: { report: Report; raw: unknown }) {
  const r = props.report;
  const h = r.health ?? {};
  const plugins = (r.lastCycle?.problems ?? []).filter((p) => p.kind === "plugin");
  return (
    <>
      <dl id="report-facts" class="facts">
        <dt>Sent</dt>
        <dd>
          <Time at={r.sentAt ?? null} />
        </dd>
        <dt>Load (1, 5, 15 min)</dt>
        <dd>{h.load ? h.load.map((x) => x.toFixed(2)).join(" / ") : "not reported"}</dd>
        <dt>Memory</dt>
        <dd>
          {h.memory
            ? `${bytes(h.memory.availableBytes)} free of ${bytes(h.memory.totalBytes)}`
            : "not reported"}
        </dd>
        <dt>Disks</dt>
        <dd>
          {h.disks && h.disks.length > 0
            ? h.disks.map((d) => `${d.mount}: ${bytes(d.freeBytes)} free of ${bytes(d.totalBytes)}`)
              .join("; ")
            : "not reported"}
        </dd>
        <dt>Up for</dt>
        <dd>{h.uptimeS !== undefined ? duration(h.uptimeS) : "not reported"}</dd>
        <dt>Versions</dt>
        <dd>
          agent {r.agentVersion ?? "?"}
          {(r.components ?? []).map((x) => `; ${x.app}/${x.name} ${x.version}`).join("")}
        </dd>
        <dt>Last cycle</dt>
        <dd>
          {r.lastCycle ? r.lastCycle.outcome : "not reported"}
          {r.lastCycle?.message ? `: ${r.lastCycle.message}` : ""}
        </dd>
        <dt>Plug-in health</dt>
        <dd>
          {plugins.length === 0
            ? "no plug-in problem reported"
            : plugins.map((p) => `${p.app ?? p.name ?? "plug-in"}: ${p.code}: ${p.message}`)
              .join("; ")}
        </dd>
        <dt>Application data</dt>
        <dd>
          {Object.keys(r.apps ?? {}).length === 0
            ? "none"
            : Object.entries(r.apps ?? {}).map(([app, data]) =>
              `${app}: ${Object.keys(data).join(", ")}`
            ).join("; ")}
        </dd>
      </dl>
      <details>
        <summary>Raw report (JSON)</summary>
        <pre>{JSON.stringify(props.raw, null, 2)}</pre>
      </details>
    </>
  );
}

/**
 * Two devices beat under this identity (issue 21 item 7): both agent instances with their times,
 * the way out (re-enrol the copy), and the operator's button that clears the mark.
 */
function IdentityConflict(
  props: {
    uid: string;
    c: z.infer<typeof identityConflictSchema>;
    ctx: PageContext;
    revision?: number | undefined;
  },
) {
  const c = props.c;
  return (
    <div id="identity-conflict" class="flash error" role="alert">
      <strong>One identity, two devices?</strong> {c.reason === "seq_not_increasing"
        ? `A beat from another agent instance carried seq ${c.seq} after seq ${
          c.lastSeq ?? "?"
        } had been seen`
        : "Two agent instances take turns beating"} (first <Time at={c.firstAt} />, last{" "}
      <Time at={c.lastAt} />, {c.beats} conflicting beat{c.beats === 1 ? "" : "s"}):
      <ul>
        {c.instances.map((i) => (
          <li>
            {i.instanceId === null ? "a beat without an instance id" : (
              <>
                instance <code>{i.instanceId}</code>
              </>
            )}
            {i.address
              ? (
                <>
                  {" "}from <code class="address">{i.address}</code>
                </>
              )
              : null}: first seen <Time at={i.firstSeenAt} />, last seen <Time at={i.lastSeenAt} />
          </li>
        ))}
      </ul>
      {c.stateUnwritable
        ? (
          <p id="identity-conflict-unwritable">
            The appliance also reported <code>state_unwritable</code>:{" "}
            <q>{c.stateUnwritable}</q>. Separate agent runs on a state folder that cannot be written
            start from the same saved seq and look like two devices: if that is what happened, make
            the folder writable and clear this mark.
          </p>
        )
        : null}
      A copied state folder (a cloned VM, a golden image) makes two devices report as one. On the
      copy, run{" "}
      <code>
        noc-agent enroll --force --token &lt;new token&gt; --hostname &lt;its own name&gt;
      </code>{" "}
      to give it an identity of its own, then clear this mark. A state folder restored from a backup
      raises it once too: clear it if that is what happened.
      <form
        method="post"
        action={`/ui/appliances/${props.uid}/identity-conflict/clear`}
        class="inline"
      >
        <Csrf ctx={props.ctx} />
        <Versioned revision={props.revision} />
        <button type="submit">Clear the mark</button>
      </form>
    </div>
  );
}

/** The reasons the last report gave: the agent's problems and what it left out of the report. */
function ReportReasons(
  props: { problems: { code: string; message: string }[]; dropped: string[] },
) {
  if (props.problems.length === 0 && props.dropped.length === 0) return null;
  return (
    <div id="report-reasons" class="panel">
      <strong>Its last report says:</strong>
      <ul>
        {props.problems.map((p) => (
          <li data-problem={p.code}>
            <code>{p.code}</code>: {p.message}
          </li>
        ))}
        {props.dropped.map((d) => <li data-dropped>left out of the report: {d}</li>)}
      </ul>
    </div>
  );
}

/** The placement form's editable fields as rendered (its `was.` originals). */
function placement(
  a: { site: string | null; channel: string; tags: string[]; intervalS: number },
): Record<string, string> {
  return {
    site: a.site ?? "",
    channel: a.channel,
    tags: a.tags.join(", "),
    intervalS: String(a.intervalS),
  };
}

/** An appliance now, in words, for a refusal as stale. */
function applianceNow(
  a: {
    site: string | null;
    channel: string;
    tags: string[];
    intervalS: number;
    revokedAt?: string | null;
  },
): string {
  return `${a.revokedAt ? "revoked; " : ""}site ${a.site ?? "none"}, channel ${a.channel}, ` +
    `tags ${a.tags.length ? a.tags.join(", ") : "none"}, interval ${a.intervalS} s`;
}

/** The revoke confirmation (`GET …/revoke`, or a POST without `confirmed=yes`). */
async function revokeConfirmation(
  c: ConsoleContext,
  uid: string,
  reason: string,
): Promise<Response> {
  const ctx: PageContext = c.var.page;
  const res = await c.var.api.appliances[":uid"].$get({ param: { uid }, query: { history: "0" } });
  if (!res.ok) return refused(c, `/ui/appliances/${uid}`, await refusal(res));
  const a = applianceSchema.parse(await res.json());
  return await html(
    c,
    <Layout title={`Revoke ${a.hostname}?`} ctx={ctx}>
      <Confirm
        ctx={ctx}
        what={`Revoke ${a.hostname} (${a.uid})? Its key is refused from now on: it gets no ` +
          "catalog, package or file, and only a new enrolment brings it back. This cannot be " +
          "undone."}
        action={`/ui/appliances/${uid}/revoke`}
        button="Revoke"
        cancel={`/ui/appliances/${uid}`}
        fields={a.revision === undefined ? {} : { revision: String(a.revision) }}
      >
        <label>
          Reason
          <input name="reason" value={reason} required maxlength={500} />
        </label>
      </Confirm>
    </Layout>,
  );
}

/**
 * `GET /ui/appliances/:uid`; `POST …/:uid/wake`; `GET …/:uid/revoke` (the confirmation) and
 * `POST …/:uid/revoke` (form: `reason`, `confirmed=yes`); `POST …/:uid/edit` (site, channel,
 * tags, interval); `POST …/:uid/hold` (reason, app); `POST …/:uid/holds/:id/delete`;
 * `POST …/:uid/identity-conflict/clear`.
 */
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
            <p class="flash error" role="alert">{await refusal(res)}</p>
          </Layout>,
          res.status,
        );
      }
      const a = detailSchema.parse(await res.json());
      // Its holds page on their own: `?holds=` (a nextCursor), `?holdsLimit=`.
      const holdPage = listPage(c, 100, { cursor: "holds", limit: "holdsLimit" });
      const [configRes, holdsRes, refusedRes, installWindow] = await Promise.all([
        c.var.api.appliances[":uid"].configuration.$get({ param: { uid } }),
        c.var.api.holds.$get({
          query: {
            uid,
            limit: holdPage.limit,
            ...(holdPage.cursor ? { cursor: holdPage.cursor } : {}),
          },
        }),
        c.var.api["auth-failures"].$get({ query: { uid, limit: "20" } }),
        installWindowOf(c.var.api, a),
      ]);
      const config = configRes.ok ? (await configRes.json()).items : [];
      const holdList = holdsRes.ok
        ? holdsSchema.parse(await holdsRes.json())
        : { items: [], nextCursor: null };
      const holds = holdList.items;
      const refusals = refusedRes.ok ? refusalsSchema.parse(await refusedRes.json()).items : [];
      const should = a.catalog;
      const report: Report = (() => {
        const r = reportSchema.safeParse(a.lastReport);
        return r.success ? r.data : {};
      })();
      const installed = installedSchema.safeParse(a.lastReport).data?.components ?? [];
      const problems = report.lastCycle?.problems ?? [];
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
      const running = new Map(installed.map((x) => [key(x), x.version]));
      const rows = [...new Set([...installed.map(key), ...should.map(key)])].sort().map((k) => {
        const want = should.find((s) => key(s) === k)?.version;
        const have = running.get(k);
        return { k, want, have, ...componentState(want, have, k, a.installOutcomes, problems) };
      });
      const failed = rows.filter((r) => r.state === "failed" || r.state === "rolled_back");
      const interrupted = rows.filter((r) => r.state === "interrupted");
      // Problems of the last cycle not tied to a listed component (catalog, plug-in, interrupted).
      const cycleTrouble = report.lastCycle &&
          (report.lastCycle.outcome === "failed" || report.lastCycle.outcome === "partial")
        ? problems
        : [];
      const form = kept(c);
      const kf = (k: string, d: string) => form[k] ?? d;
      const state = rows.length === 0 && cycleTrouble.length === 0
        ? null
        : failed.length > 0
        ? "failed"
        : interrupted.length > 0 || cycleTrouble.length > 0
        ? "inconsistent"
        : rows.some((r) =>
            r.state === "pending" || r.state === "awaiting_reboot" || r.state === "deferred"
          )
        ? "pending"
        : "ok";
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
          <p class="muted" id="install-window">
            {installWindow
              ? `Installs: ${installWindow.start}–${installWindow.end} ${installWindow.timeZone} (${installWindow.source})`
              : "Installs: at any time"} · <a href="/ui/install-windows">install windows</a>
          </p>
          {a.revokedAt && (
            <p id="revoked" class="flash error">
              Revoked <Time at={a.revokedAt} />:{" "}
              {a.revokedReason}. Its requests are refused; it is never woken.
            </p>
          )}
          {a.identityConflict && (
            <IdentityConflict
              uid={a.uid}
              c={a.identityConflict}
              ctx={ctx}
              revision={a.revision}
            />
          )}
          <ReportReasons problems={a.problems} dropped={a.dropped} />
          {a.hostnameHistory.length > 0 && (
            <p id="name-history" class="muted">
              Formerly {a.hostnameHistory.map((h, i) => (
                <>
                  {i > 0 ? ", " : ""}
                  <code>{h.hostname}</code> (until <Time at={h.until} />)
                </>
              ))}: the name comes from the appliance's own reports.
            </p>
          )}
          {a.maintenance && (
            <p id="maintenance">
              In maintenance until <Time at={a.maintenance.endsAt} />: {a.maintenance.reason}
            </p>
          )}
          {state === "failed" && (
            <div id="install-state" class="flash error" data-install-state="failed">
              Install failed:
              <ul>
                {failed.map((r) => (
                  <li>
                    {r.k.split("/").slice(1).join("/")} {r.want}: {r.state.replace("_", " ")}
                    {r.message ? ` — ${r.message}` : ""}
                  </li>
                ))}
              </ul>
            </div>
          )}
          {state === "inconsistent" && (
            <div id="install-state" data-install-state="inconsistent">
              <span class="state late">inconsistent</span> the last cycle reported:
              <ul>
                {[
                  ...interrupted.map((r) => `${r.k.split("/").slice(1).join("/")}: ${r.message}`),
                  ...cycleTrouble.map((pr) => `${pr.code}: ${pr.message}`),
                ].map((t) => <li>{t}</li>)}
              </ul>
            </div>
          )}
          {state === "pending" && (
            <p id="install-state" data-install-state="pending" class="muted">
              Installs pending: the catalog lists versions it has not reported running yet.
            </p>
          )}
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
            <div class="actions">
              <form method="post" action={`/ui/appliances/${a.uid}/wake`} class="inline">
                <Csrf ctx={ctx} />
                <button type="submit">Wake now</button>
              </form>{" "}
              <a href={`/ui/appliances/${a.uid}/revoke`} class="danger" id="revoke">Revoke…</a>
            </div>
          )}
          <h2>Placement and interval</h2>
          <form method="post" action={`/ui/appliances/${a.uid}/edit`} class="panel" id="edit">
            <Csrf ctx={ctx} />
            <Versioned revision={a.revision} was={placement(a)} />
            <label>
              Site
              <input name="site" value={kf("site", a.site ?? "")} size={12} />
            </label>
            <label>
              Channel
              <input name="channel" value={kf("channel", a.channel)} size={10} />
            </label>
            <label>
              Tags (comma-separated)
              <input name="tags" value={kf("tags", a.tags.join(", "))} size={20} />
            </label>
            <label>
              Report interval (s)
              <input
                name="intervalS"
                type="number"
                min={10}
                max={86400}
                value={kf("intervalS", String(a.intervalS))}
              />
            </label>
            <button type="submit">Save</button>
          </form>
          <h2>Holds</h2>
          {holds.length === 0
            ? <p class="muted">Not held: it follows its assignments.</p>
            : (
              <table id="holds">
                <tr>
                  <th>application</th>
                  <th>reason</th>
                  <th>since</th>
                  <th>
                    <span class="sr-only">release</span>
                  </th>
                </tr>
                {holds.map((h) => (
                  <tr>
                    <td>{h.app ?? "all"}</td>
                    <td>{h.reason}</td>
                    <td>
                      <Time at={h.createdAt} />
                    </td>
                    <td>
                      <form
                        method="post"
                        action={`/ui/appliances/${a.uid}/holds/${h.id}/delete`}
                        class="inline"
                      >
                        <Csrf ctx={ctx} />
                        <Versioned revision={h.revision} />
                        <button type="submit" class="secondary">Release hold</button>
                      </form>
                    </td>
                  </tr>
                ))}
              </table>
            )}
          {(holds.length > 0 || !holdPage.first) && (
            <Pager
              id="holds"
              what="holds"
              shown={holds.length}
              next={holdList.nextCursor}
              first={holdPage.first}
              path={`/ui/appliances/${a.uid}`}
              param="holds"
              keep={holdPage.keep}
            />
          )}
          <form method="post" action={`/ui/appliances/${a.uid}/hold`} class="panel" id="hold">
            <Csrf ctx={ctx} />
            <label>
              Hold reason
              <input name="reason" value={kf("reason", "")} required maxlength={500} />
            </label>
            <label>
              Application (empty: all)
              <input name="app" value={kf("app", "")} size={10} />
            </label>
            <button type="submit">Hold</button>
          </form>
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
              <th>install</th>
            </tr>
            {rows.map((r) => {
              const [kind, app, name] = r.k.split("/");
              return (
                <tr data-install={r.state}>
                  <td>{kind}</td>
                  <td>{app}</td>
                  <td>{name}</td>
                  <td>{r.have ?? <span class="muted">none</span>}</td>
                  <td>{r.want ?? <span class="muted">not in catalog</span>}</td>
                  <td>
                    {r.state === "failed" || r.state === "rolled_back"
                      ? <OutcomeBadge outcome={r.state} />
                      : r.state === "interrupted"
                      ? <span class="state late">interrupted</span>
                      : r.state === "awaiting_reboot"
                      ? <span class="muted">awaiting its reboot</span>
                      : r.state === "deferred"
                      ? <span class="muted">waiting for its install window</span>
                      : r.state === "pending"
                      ? <span class="muted">pending</span>
                      : r.want
                      ? "running"
                      : ""}
                    {r.message ? ` ${r.message}` : ""}
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
          <table id="outcomes">
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
                <td>
                  <OutcomeBadge outcome={o.outcome} />
                </td>
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
          <h2>Refused requests under its identity</h2>
          {refusals.length === 0 ? <p class="muted">None recorded.</p> : (
            <table id="refusals">
              <tr>
                <th>when</th>
                <th>reason</th>
                <th>request</th>
                <th>from</th>
              </tr>
              {refusals.map((f) => (
                <tr>
                  <td>
                    <Time at={f.at} />
                  </td>
                  <td>{f.reason}</td>
                  <td>
                    {f.method} {f.path}
                  </td>
                  <td>
                    {f.address ?? ""}
                    {f.heldBack > 0 ? ` (+${f.heldBack} more not recorded)` : ""}
                  </td>
                </tr>
              ))}
            </table>
          )}
          <h2>Last report</h2>
          {a.lastReport
            ? <ReportFacts report={report} raw={a.lastReport} />
            : <p class="muted">No report yet.</p>}
        </Layout>,
      );
    })
    .post("/appliances/:uid/wake", p.signedIn, async (c) => {
      const uid = uidOf(c);
      const res = await c.var.api.wake.$post({ json: { uid } });
      return res.ok
        ? back(c, `/ui/appliances/${uid}`, "Woken: it cycles now")
        : refused(c, `/ui/appliances/${uid}`, await refusal(res));
    })
    .post("/appliances/:uid/identity-conflict/clear", p.signedIn, async (c) => {
      const uid = uidOf(c);
      const form = await formOf(c);
      const res = await c.var.api.appliances[":uid"]["identity-conflict"].$delete({
        param: { uid },
      }, ifMatch(form));
      return res.ok
        ? back(c, `/ui/appliances/${uid}`, "Identity-conflict mark cleared")
        : refused(c, `/ui/appliances/${uid}`, await refusalOf(res, applianceNow));
    })
    .get("/appliances/:uid/revoke", p.signedIn, async (c) => {
      const uid = uidOf(c);
      return await revokeConfirmation(c, uid, kept(c)["reason"] ?? "");
    })
    .post("/appliances/:uid/revoke", p.signedIn, async (c) => {
      const uid = uidOf(c);
      const form = await formOf(c);
      const reason = field(form, "reason");
      if (field(form, "confirmed") !== "yes") return await revokeConfirmation(c, uid, reason);
      if (!reason) {
        return refused(c, `/ui/appliances/${uid}/revoke`, "Give a reason for revoking", form);
      }
      const res = await c.var.api.appliances[":uid"].revoke.$post({
        param: { uid },
        json: { reason },
      }, ifMatch(form));
      if (res.ok) return back(c, `/ui/appliances/${uid}`, "Revoked");
      // Changed since the confirmation was shown: back to the appliance as it is now.
      return res.status === 409
        ? refused(c, `/ui/appliances/${uid}`, await refusalOf(res, applianceNow))
        : refused(c, `/ui/appliances/${uid}/revoke`, await refusal(res), form);
    })
    .post("/appliances/:uid/edit", p.signedIn, async (c) => {
      const uid = uidOf(c);
      const form = await formOf(c);
      const to = `/ui/appliances/${uid}`;
      const interval = field(form, "intervalS");
      if (touched(form, "intervalS") && !/^[0-9]{1,6}$/.test(interval)) {
        return refused(c, to, "Report interval: a whole number of seconds (10 to 86400)", form);
      }
      const site = field(form, "site");
      // Only what the operator changed: a field left as loaded never undoes another's change.
      const json = {
        ...(touched(form, "site") ? { site: site === "" ? null : site } : {}),
        ...(touched(form, "channel") ? { channel: field(form, "channel") } : {}),
        ...(touched(form, "tags")
          ? { tags: field(form, "tags").split(/[\s,]+/).filter((t) => t !== "") }
          : {}),
        ...(touched(form, "intervalS") ? { intervalS: Number(interval) } : {}),
      };
      if (Object.keys(json).length === 0) return back(c, to, "Nothing changed");
      const res = await c.var.api.appliances[":uid"].$patch(
        { param: { uid }, json },
        ifMatch(form),
      );
      if (res.ok) return back(c, to, "Saved");
      const why = await refusalOf(res, applianceNow);
      return refused(c, to, why, res.status === 409 && why.startsWith("Changed by") ? {} : form);
    })
    .post("/appliances/:uid/hold", p.signedIn, async (c) => {
      const uid = uidOf(c);
      const form = await formOf(c);
      const to = `/ui/appliances/${uid}`;
      const app = field(form, "app");
      const res = await c.var.api.holds.$post({
        json: { uid, reason: field(form, "reason"), ...(app ? { app } : {}) },
      });
      return res.ok
        ? back(c, to, app ? `Held: ${app} stays as its catalog lists it` : "Held")
        : refused(c, to, await refusal(res), form);
    })
    .post("/appliances/:uid/holds/:id/delete", p.signedIn, async (c) => {
      const uid = uidOf(c);
      const id = idOf(c);
      const form = await formOf(c);
      const res = await c.var.api.holds[":id"].$delete({ param: { id } }, ifMatch(form));
      return res.ok
        ? back(c, `/ui/appliances/${uid}`, "Hold released")
        : refused(c, `/ui/appliances/${uid}`, await refusalOf(res, (h) => `held: ${h.reason}`));
    });
}
