/**
 * `/ui/install-windows` (issue 22 item 5): when appliances may install. The windows (a site's, a
 * model's or an appliance's; the appliance's wins, then its site's, then its model's), a page at a
 * time; a form that sets one (created, or replaced: "Change…" on a row fills the form with it and
 * makes the save conditional on its revision); Remove… per row (asks first, carries the revision).
 * A refusal comes back to the form with its message, the form as it was sent. A viewer sees the
 * windows, with no form and no button.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { Confirm, Csrf, Layout, type PageContext, Pager, Time } from "../layout.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, kept, listPage, refused } from "../page.ts";
import { refusal } from "../admin_client.ts";
import { ifMatch, refusalOf, Versioned } from "../revisions.tsx";

const scopes = ["appliance", "site", "model"] as const;
type Scope = (typeof scopes)[number];

const windowSchema = z.object({
  id: z.number(),
  scope: z.enum(scopes),
  value: z.string(),
  start: z.string(),
  end: z.string(),
  timeZone: z.string(),
  reason: z.string(),
  updatedBy: z.string().nullish(),
  updatedAt: z.string().nullish(),
  revision: z.number().optional(),
});
type InstallWindow = z.infer<typeof windowSchema>;

const windowListSchema = z.object({
  items: z.array(windowSchema),
  nextCursor: z.string().nullable().optional(),
});

/** `02:00–04:00 Europe/Berlin`. */
export function windowText(w: { start: string; end: string; timeZone: string }): string {
  return `${w.start}–${w.end} ${w.timeZone}`;
}

const scopeOf = (v: string): Scope | undefined => scopes.find((s) => s === v);
const valueRe = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** The time zones the form suggests (the runtime's list; any IANA name is accepted). */
const zones: string[] = (() => {
  try {
    return (Intl as unknown as { supportedValuesOf(k: string): string[] })
      .supportedValuesOf("timeZone");
  } catch {
    return ["UTC"];
  }
})();

/** The path of a window's console actions: `/ui/install-windows/<scope>/<value>`. */
const actionPath = (w: { scope: string; value: string }) =>
  `/ui/install-windows/${w.scope}/${encodeURIComponent(w.value)}`;

/** `GET /ui/install-windows`; `POST /ui/install-windows`; `POST …/:scope/:value/delete`. */
export function installWindowPages(p: PageDeps) {
  const to = "/ui/install-windows";
  return new Hono<ConsoleEnv>()
    .get("/install-windows", p.signedIn, async (c) => {
      const ctx = c.var.page;
      const page = listPage(c);
      const filter = scopeOf(c.req.query("scope") ?? "");
      const res = await c.var.api["install-windows"].$get({
        query: {
          limit: page.limit,
          ...(page.cursor ? { cursor: page.cursor } : {}),
          ...(filter ? { scope: filter } : {}),
        },
      });
      const list = res.ok
        ? windowListSchema.parse(await res.json())
        : { items: [] as InstallWindow[], nextCursor: null };
      const failed = res.ok ? null : await refusal(res);
      const editing = list.items.find((w) => String(w.id) === c.req.query("edit"));
      const canAct = ctx.role !== "viewer";
      // "Change…" comes back to this very page of the list, where its window is.
      const here = {
        ...page.keep,
        ...(page.cursor ? { cursor: page.cursor } : {}),
        ...(filter ? { scope: filter } : {}),
      };
      return await html(
        c,
        <Layout title="Install windows" ctx={ctx}>
          <p class="muted">
            An appliance installs new versions only inside its install window (the appliance's own,
            else its site's, else its model's); outside it, it keeps beating and downloads ahead. An
            urgent assignment installs at any time. No window: installs at any time.
          </p>
          {failed && <p class="flash error" role="alert">{failed}</p>}
          {canAct && <SetForm ctx={ctx} editing={editing} values={kept(c)} />}
          <p>
            Show: {[undefined, ...scopes].map((s) => (
              <>
                {s === filter
                  ? <b>{s ?? "all"}</b>
                  : <a href={s ? `${to}?scope=${s}` : to}>{s ?? "all"}</a>}
                {" "}
              </>
            ))}
          </p>
          {list.items.length === 0
            ? (
              <p class="muted" id="no-windows">
                No install windows{filter ? ` for ${filter}s` : ""}.
              </p>
            )
            : <Windows ctx={ctx} items={list.items} canAct={canAct} here={here} />}
          <Pager
            id="windows"
            what="windows"
            shown={list.items.length}
            next={list.nextCursor}
            first={page.first}
            path={to}
            keep={{ ...page.keep, ...(filter ? { scope: filter } : {}) }}
          />
        </Layout>,
        res.ok ? 200 : res.status,
      );
    })
    .post("/install-windows", p.signedIn, async (c) => {
      const form = await formOf(c);
      const no = (message: string) => refused(c, to, message, form);
      const scope = scopeOf(field(form, "scope"));
      if (!scope) return no('Field "scope": choose appliance, site or model');
      const value = field(form, "value");
      if (!valueRe.test(value)) {
        return no('Field "value": an appliance UID, or a site or model name');
      }
      const reason = field(form, "reason");
      const res = await c.var.api["install-windows"][":scope"][":value"].$put({
        param: { scope, value },
        json: {
          start: field(form, "start"),
          end: field(form, "end"),
          timeZone: field(form, "timeZone"),
          ...(reason ? { reason } : {}),
          ...(field(form, "allowUnknown") === "yes" ? { allowUnknown: true } : {}),
        },
      }, ifMatch(form));
      if (!res.ok) {
        const why = await refusalOf(res, (w) => windowText(w));
        return refused(
          c,
          to,
          why.replace(
            "set allowUnknown to give it before its appliances enrol",
            'tick "even if no appliance has it yet"',
          ),
          why.startsWith("Changed by someone else") ? {} : form,
        );
      }
      const w = windowSchema.parse(await res.json());
      return back(
        c,
        to,
        `Install window of ${w.scope} ${w.value} ${res.status === 201 ? "set" : "changed"}: ${
          windowText(w)
        }`,
      );
    })
    .post("/install-windows/:scope/:value/delete", p.signedIn, async (c) => {
      const scope = scopeOf(c.req.param("scope"));
      const value = c.req.param("value");
      if (!scope || !valueRe.test(value)) return refused(c, to, "No such install window");
      const form = await formOf(c);
      if (field(form, "confirmed") !== "yes") {
        return await html(
          c,
          <Layout title="Remove an install window?" ctx={c.var.page}>
            <Confirm
              ctx={c.var.page}
              what={`Remove the install window of ${scope} ${value}? Its appliances then follow the next window that applies (site, then model), or install at any time.`}
              action={`${actionPath({ scope, value })}/delete`}
              button="Remove window"
              cancel={to}
              fields={field(form, "revision") ? { revision: field(form, "revision") } : {}}
            />
          </Layout>,
        );
      }
      const res = await c.var.api["install-windows"][":scope"][":value"].$delete(
        { param: { scope, value } },
        ifMatch(form),
      );
      if (!res.ok) return refused(c, to, await refusalOf(res, (w) => windowText(w)));
      return back(c, to, `Install window of ${scope} ${value} removed`);
    });
}

/** The form that sets a window: refilled after a refusal, or with `editing` (its revision). */
function SetForm(
  props: { ctx: PageContext; editing: InstallWindow | undefined; values: Record<string, string> },
) {
  const e = props.editing;
  const v: Record<string, string> = props.values["_form"] === "install-window"
    ? props.values
    : e
    ? {
      scope: e.scope,
      value: e.value,
      start: e.start,
      end: e.end,
      timeZone: e.timeZone,
      reason: e.reason,
    }
    : {};
  return (
    <form method="post" action="/ui/install-windows" class="panel" id="set-window">
      <Csrf ctx={props.ctx} />
      <input type="hidden" name="_form" value="install-window" />
      {e && props.values["_form"] !== "install-window" && <Versioned revision={e.revision} />}
      <label>
        for
        <select name="scope">
          {scopes.map((s) => <option value={s} selected={v["scope"] === s}>{s}</option>)}
        </select>
      </label>
      <label>
        value (appliance UID, site or model)
        <input name="value" required maxlength={128} size={24} value={v["value"] ?? ""} />
      </label>
      <label>
        from (HH:MM)
        <input
          name="start"
          required
          pattern="[0-2][0-9]:[0-5][0-9]"
          size={5}
          placeholder="02:00"
          value={v["start"] ?? ""}
        />
      </label>
      <label>
        until (HH:MM)
        <input
          name="end"
          required
          pattern="[0-2][0-9]:[0-5][0-9]"
          size={5}
          placeholder="04:00"
          value={v["end"] ?? ""}
        />
      </label>
      <label>
        time zone
        <input
          name="timeZone"
          required
          list="time-zones"
          maxlength={64}
          size={18}
          value={v["timeZone"] ?? "UTC"}
        />
      </label>
      <datalist id="time-zones">
        {zones.map((z) => <option value={z} />)}
      </datalist>
      <label>
        reason
        <input name="reason" maxlength={500} size={24} value={v["reason"] ?? ""} />
      </label>
      <label class="check">
        <input
          type="checkbox"
          name="allowUnknown"
          value="yes"
          checked={v["allowUnknown"] === "yes"}
        />{" "}
        even if no appliance has it yet
      </label>
      <button type="submit">{e ? "Save window" : "Set window"}</button>
      {e && <a href="/ui/install-windows">Cancel</a>}
    </form>
  );
}

/** The windows table; `canAct`: with Change… and Remove… per row. */
function Windows(
  props: {
    ctx: PageContext;
    items: InstallWindow[];
    canAct: boolean;
    here: Record<string, string>;
  },
) {
  return (
    <table id="install-windows">
      <tr>
        <th>for</th>
        <th>installs</th>
        <th>reason</th>
        <th>set by</th>
        {props.canAct && <th>change</th>}
      </tr>
      {props.items.map((w) => (
        <tr data-window={`${w.scope}:${w.value}`}>
          <td>
            {w.scope} {w.scope === "appliance"
              ? <a href={`/ui/appliances/${w.value}`}>{w.value}</a>
              : (
                <a href={`/ui/appliances?${new URLSearchParams({ [w.scope]: w.value })}`}>
                  {w.value}
                </a>
              )}
          </td>
          <td>{windowText(w)}</td>
          <td>{w.reason}</td>
          <td>
            {w.updatedBy ?? ""} <Time at={w.updatedAt} />
          </td>
          {props.canAct && (
            <td class="controls">
              <a
                href={`/ui/install-windows?${new URLSearchParams({
                  ...props.here,
                  edit: String(w.id),
                })}#set-window`}
                aria-label={`Change the install window of ${w.scope} ${w.value}`}
              >
                Change…
              </a>{" "}
              <form method="post" action={`${actionPath(w)}/delete`} class="inline">
                <Csrf ctx={props.ctx} />
                <Versioned revision={w.revision} />
                <button
                  type="submit"
                  class="danger"
                  aria-label={`Remove the install window of ${w.scope} ${w.value}`}
                >
                  Remove…
                </button>
              </form>
            </td>
          )}
        </tr>
      ))}
    </table>
  );
}
