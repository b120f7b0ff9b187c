/**
 * The agent's side of install windows (issue 22 item 5; protocol/install_window.ts): outside the
 * window its signed catalog carries, a component is downloaded ahead (and verified: its bytes wait
 * in the downloads folder, so the window is spent installing, not fetching) but not installed,
 * unless its catalog line is `urgent`. The beat says so with one `install_deferred` problem per
 * component, naming the window and when it opens next; the NOC shows it as the appliance's reason
 * for not running the release yet.
 *
 * A window whose time zone this runtime does not know never blocks an install (a security fix must
 * not wait on a time-zone table): the component is installed and the beat carries
 * `install_window_invalid`.
 *
 * @module
 */
import type { CatalogDocument, CatalogEntry } from "../protocol/catalog.ts";
import { windowAt, windowText } from "../protocol/install_window.ts";
import { download, downloadPath } from "./download.ts";
import { statePaths } from "./state.ts";
import type { InstallContext } from "./install_package.ts";

/** What {@link installDecision} decided for one component. */
export type InstallDecision =
  | { install: true; invalid?: string }
  | { install: false; opensAt: Date; message: string };

/**
 * Whether `entry` may be installed at `now` under `doc`'s install window: always when the catalog
 * has none or the entry is urgent; otherwise when the window is open.
 */
export function installDecision(
  doc: Pick<CatalogDocument, "installWindow">,
  entry: Pick<CatalogEntry, "urgent">,
  now: Date,
): InstallDecision {
  const w = doc.installWindow;
  if (!w || entry.urgent) return { install: true };
  let state;
  try {
    state = windowAt(w, now);
  } catch (e) {
    return {
      install: true,
      invalid: `install window ${windowText(w)} (${w.source}) not applied: ${
        e instanceof Error ? e.message : String(e)
      }`,
    };
  }
  if (state.open) return { install: true };
  return {
    install: false,
    opensAt: state.opensAt!,
    message: `outside its install window ${windowText(w)} (${w.source}); installs when it opens, ` +
      `at ${state.opensAt!.toISOString()}`,
  };
}

/**
 * Downloads `entry` ahead into the downloads folder (resuming a partial one; verified against the
 * catalog's size and SHA-256), where its install finds it. Files come over HTTPS only (plain HTTP
 * with `allowHttpFiles`), as for their install. Throws what `download` throws.
 */
export async function downloadAhead(ctx: InstallContext, entry: CatalogEntry): Promise<void> {
  const urls = entry.kind === "file"
    ? entry.urls.filter((u) =>
      u.startsWith("https://") || (ctx.config.allowHttpFiles && u.startsWith("http://"))
    )
    : entry.urls;
  if (urls.length === 0) return; // Its install says why (https_required).
  const downloads = statePaths(ctx.config.state).downloads;
  await Deno.mkdir(downloads, { recursive: true, mode: 0o700 });
  await download(downloadPath(downloads, entry.sha256), {
    urls,
    size: entry.size,
    sha256: entry.sha256,
    label: `${entry.app}/${entry.name}@${entry.version}`,
  }, { idleMs: ctx.config.downloadIdleS * 1000, fetch: ctx.fetch, log: ctx.log });
}
