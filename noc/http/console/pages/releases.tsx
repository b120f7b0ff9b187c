/**
 * `/ui/releases`: publish a package payload or a file, assign it (picked from the published list,
 * to a target picked with its appliance count), roll it out, hold appliances.
 */
import { Hono } from "hono";
import { z } from "zod";
import { bytes, Csrf, Layout, Pager, Time } from "../layout.tsx";
import type { ConsoleEnv, PageDeps } from "../page.ts";
import { back, field, formOf, html, kept, refused } from "../page.ts";
import { refusal } from "../admin_client.ts";
import {
  AssignForm,
  Assignments,
  ComponentFields,
  Holds,
  loadAssignments,
  loadChoices,
  loadHolds,
} from "./rollouts.tsx";
import { loadActiveRollouts, loadRolloutsOf, RolloutTable } from "./phased_rollouts.tsx";

/** The largest upload the console takes (bigger packages: `deno task noc package`). */
export const consoleUploadBytes = 256 * 1024 * 1024;

/** What the page reads of `GET /components` (the API types a component as a record). */
const componentListSchema = z.object({
  items: z.array(z.object({
    kind: z.string(),
    app: z.string(),
    name: z.string(),
    version: z.string(),
    size: z.number(),
    createdAt: z.string(),
  })),
  nextCursor: z.string().nullable().optional(),
});

/**
 * `GET /ui/releases`; `POST /ui/releases/publish` (multipart, under the upload limit), through the
 * admin API: a package payload no agent could install is refused there (`bad_payload`) and its
 * message is shown as the flash.
 */
export function releasePages(p: PageDeps) {
  return new Hono<ConsoleEnv>()
    .get("/releases", p.signedIn, async (c) => {
      // Each list pages on its own: `?assignments=`, `?holds=`, `?components=` (a nextCursor).
      const at = (k: string) => c.req.query(k) || undefined;
      const [componentsRes, assignmentPage, holdPage, choices, active] = await Promise.all([
        c.var.api.components.$get({
          query: { limit: "200", ...(at("components") ? { cursor: at("components")! } : {}) },
        }),
        loadAssignments(c.var.api, at("assignments")),
        loadHolds(c.var.api, at("holds")),
        loadChoices(c.var.api),
        loadActiveRollouts(c.var.api),
      ]);
      const assignments = assignmentPage.items, holds = holdPage.items;
      // An assignment a phased rollout made (any state) is the rollout's.
      const rollouts = await loadRolloutsOf(c.var.api, assignments.map((a) => a.id));
      const componentPage = componentsRes.ok
        ? componentListSchema.parse(await componentsRes.json())
        : { items: [], nextCursor: null };
      const components = componentPage.items;
      const ctx = c.var.page;
      // A refused form comes back filled in: only the form that was sent.
      const values = kept(c);
      const refill = (form: string) => values["_form"] === form ? values : {};
      return await html(
        c,
        <Layout title="Releases" ctx={ctx}>
          <h2 hidden={ctx.role === "viewer"}>Publish</h2>
          <form
            hidden={ctx.role === "viewer"}
            method="post"
            action="/ui/releases/publish"
            enctype="multipart/form-data"
            class="panel"
          >
            <Csrf ctx={ctx} />
            <input type="hidden" name="_form" value="publish" />
            <label>
              Kind
              <select name="kind">
                <option value="package">
                  package (a .tgz of a folder with an executable install at its top)
                </option>
                <option value="file" selected={refill("publish")["kind"] === "file"}>file</option>
              </select>
            </label>
            <ComponentFields values={refill("publish")} />
            <label>
              File<input type="file" name="file" required />
            </label>
            <button type="submit">Publish</button>
          </form>
          <h2 hidden={ctx.role === "viewer"}>Assign</h2>
          <AssignForm
            ctx={ctx}
            components={components}
            choices={choices}
            values={refill("assign")}
          />
          <h2>Assignments and rollouts</h2>
          <Assignments ctx={ctx} items={assignments} rollouts={rollouts} />
          <Pager
            path="/ui/releases"
            param="assignments"
            id="assignments"
            what="assignments"
            shown={assignments.length}
            next={assignmentPage.nextCursor}
            first={!at("assignments")}
          />
          <h2 id="phased-rollouts">Active phased rollouts</h2>
          {active.length === 0
            ? <p class="muted">None running or paused.</p>
            : <RolloutTable items={active} id="active-rollouts" />}
          <p>
            <a href="/ui/rollouts">All phased rollouts</a>
            {ctx.role !== "viewer" && (
              <>
                {" "}· <a href="/ui/rollouts/new">Start a phased rollout</a>
              </>
            )}
          </p>
          <h2>Holds</h2>
          <Holds ctx={ctx} items={holds} values={refill("hold")} />
          <Pager
            path="/ui/releases"
            param="holds"
            id="holds"
            what="holds"
            shown={holds.length}
            next={holdPage.nextCursor}
            first={!at("holds")}
          />
          <h2>Published components</h2>
          <table id="published">
            <tr>
              <th>kind</th>
              <th>component</th>
              <th>version</th>
              <th class="num">size</th>
              <th>published</th>
              {ctx.role !== "viewer" && <th>roll out</th>}
            </tr>
            {components.map((k) => (
              <tr>
                <td>{k.kind}</td>
                <td>
                  {k.app}/{k.name}
                  {k.kind === "file" && (
                    <>
                      {" "}· <a href={`/ui/apps/${k.app}/fileinfo`}>fileinfo</a>
                    </>
                  )}
                </td>
                <td>{k.version}</td>
                <td class="num">{bytes(k.size)}</td>
                <td>
                  <Time at={k.createdAt} />
                </td>
                {ctx.role !== "viewer" && (
                  <td>
                    <a
                      href={`/ui/rollouts/new?component=${
                        encodeURIComponent(`${k.kind}/${k.app}/${k.name}/${k.version}`)
                      }`}
                      aria-label={`Roll out in phases… ${k.app}/${k.name}@${k.version}`}
                    >
                      Roll out in phases…
                    </a>
                  </td>
                )}
              </tr>
            ))}
          </table>
          <Pager
            path="/ui/releases"
            param="components"
            id="components"
            what="components"
            shown={components.length}
            next={componentPage.nextCursor ?? null}
            first={!at("components")}
          />
        </Layout>,
      );
    })
    .post("/releases/publish", p.signedInUpload, async (c) => {
      const length = Number(c.req.header("content-length") ?? "0");
      if (length > consoleUploadBytes) {
        return refused(
          c,
          "/ui/releases",
          `Uploads through the console are limited to ${
            bytes(consoleUploadBytes)
          }; use deno task noc package`,
        );
      }
      const form = await formOf(c);
      const file = form["file"];
      const kind = field(form, "kind") === "file" ? "file" : "package";
      if (!(file instanceof File)) {
        return refused(c, "/ui/releases", "Choose a file to publish", form);
      }
      const query = {
        app: field(form, "app"),
        name: field(form, "name"),
        version: field(form, "version"),
      };
      const res = kind === "file"
        ? await c.var.api.files.$post({ query }, {
          headers: { "content-type": "application/octet-stream" },
          init: { body: file.stream() },
        })
        : await c.var.rawApi(c.var.api.packages.$url(), {
          method: "POST",
          query,
          headers: { "content-type": "application/gzip" },
          body: file.stream(),
        });
      return res.ok
        ? back(c, "/ui/releases", `Published ${kind} ${query.app}/${query.name}@${query.version}`)
        : refused(c, "/ui/releases", await refusal(res), form);
    });
}
