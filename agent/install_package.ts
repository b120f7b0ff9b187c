/**
 * Installing a package (spec, FIGURE 11): download (resuming), check size and
 * digest, verify the signature against the pinned keys before anything is
 * decrypted or unpacked, unwrap the content key, decrypt, unpack into a
 * staging folder that nothing may escape, run the package's `install`
 * program, then its `health` check. The unpacked payload is kept aside, so a
 * version whose health check fails is replaced by the previous one. An install's runs are counted
 * across kills and boots, and one may ask for a reboot before its health check decides
 * (install_attempts.ts); install programs run in the environment install_env.ts documents.
 *
 * One pass over the package's bytes before it is decrypted: the download
 * hashes them as they arrive (the catalog's SHA-256) and, from the same bytes,
 * picks out the prefix and measures the ciphertext's SHA-256; the signature
 * is verified once, the ciphertext digest is checked against the signed
 * header, and only then is the file read again — once — to decrypt.
 *
 * @module
 */
import { AgentError } from "./errors.ts";
import { download, downloadPath } from "./download.ts";
import { runProgram } from "./proc.ts";
import { programGuard } from "./install_guard.ts";
import {
  type Attempt,
  bootId,
  clearAttempt,
  findAttempt,
  keepPayload,
  keptDir,
  MAX_INSTALL_RUNS,
  putAttempt,
  REBOOT_EXIT_CODE,
  rebootDir,
  rebootMarker,
} from "./install_attempts.ts";
import { installEnv } from "./install_env.ts";
import { cutPoint } from "./cut_points.ts";
import type { AgentLog } from "./log.ts";
import type { AgentConfig } from "./config.ts";
import { type Identity, type Installed, statePaths } from "./state.ts";
import { exists } from "../protocol/util/atomic_file.ts";
import type { CatalogEntry } from "../protocol/catalog.ts";
import type { PublishedKey } from "../protocol/keys.ts";
import {
  decryptPackageFile,
  scanPackageFile,
  verifyScannedPackage,
} from "../protocol/package/file.ts";
import { PackageError, unwrapContentKey } from "../protocol/package/format.ts";
import { PackageScanner } from "../protocol/package/scan.ts";
import { extractTar, gunzip, TarError } from "../protocol/package/tar.ts";
import { checkInstallProgram, PayloadError, payloadLimits } from "../protocol/package/payload.ts";
import { fromBase64Url } from "../protocol/util/encoding.ts";

/** What the installers need. */
export interface InstallContext {
  /** The agent's configuration (state folder, appliance root, timeouts). */
  config: AgentConfig;
  /** Identity and pinned keys. */
  identity: Identity;
  log: AgentLog;
  /** The time (signature key expiry checks). */
  now(): Date;
  /** HTTP (trusting `<state>/ca.pem` too, when present). */
  fetch: typeof fetch;
}

/** How an install ended when it did not throw. */
export type PackageOutcome =
  | { outcome: "installed"; installed: Installed }
  | { outcome: "rolled_back"; message: string }
  /** Its install asked for a reboot that has not happened yet: nothing to report so far. */
  | { outcome: "awaiting_reboot"; message: string };

/** Where a package's unpacked payload is kept (per content digest). */
export { keptDir };

async function programEnv(
  ctx: InstallContext,
  dir: string,
  c: { app: string; name: string; version: string; sha256: string },
  previous: string | undefined,
  action: "install" | "rollback" | "health",
): Promise<Record<string, string>> {
  return {
    ...await installEnv(ctx.config.state),
    NOC_ACTION: action,
    NOC_STAGING: dir,
    NOC_ROOT: ctx.config.root,
    NOC_STATE: ctx.config.state,
    NOC_APP: c.app,
    NOC_NAME: c.name,
    NOC_VERSION: c.version,
    NOC_PREVIOUS_VERSION: previous ?? "",
    NOC_REBOOT_MARKER: rebootMarker(ctx.config.state, c.sha256),
  };
}

/**
 * Runs the package's `program` in `dir`, recorded in `running.json` while it runs (install_guard.ts):
 * an agent killed meanwhile finds it at its next start and stops it before installing anything.
 */
async function runIn(
  ctx: InstallContext,
  dir: string,
  program: "install" | "health",
  env: Record<string, string>,
  timeoutS: number,
): Promise<{ ok: boolean; message: string; code: number | null }> {
  const path = `${dir}/${program}`;
  const guard = programGuard(ctx.config.state, {
    kind: "package",
    app: env.NOC_APP!,
    name: env.NOC_NAME!,
    version: env.NOC_VERSION!,
    action: env.NOC_ACTION as "install" | "rollback" | "health",
  }, () => ctx.now());
  let r;
  try {
    r = await runProgram([path], {
      cwd: dir,
      env,
      timeoutMs: timeoutS * 1000,
      beforeStart: guard.beforeStart,
    });
  } finally {
    await guard.ended();
  }
  if (r.spawnError) {
    return { ok: false, code: null, message: `${program} could not start: ${r.spawnError}` };
  }
  if (r.timedOut) {
    return { ok: false, code: null, message: `${program} ran past ${timeoutS} s and was killed` };
  }
  if (r.code !== 0) {
    return {
      ok: false,
      code: r.code,
      message: `${program} exited with ${r.code}: ${r.stderr.trim().slice(-800)}`,
    };
  }
  return { ok: true, code: 0, message: "" };
}

/**
 * Verifies and unpacks the downloaded package file into `staging`; throws
 * {@link AgentError}. `scanned` is what the download measured as the bytes
 * arrived; without it the file is scanned here (one extra read). Every check
 * — signature, component, ciphertext size and digest — passes before the
 * content key is unwrapped, the staging folder made or a byte decrypted.
 */
export async function unpackPackage(
  ctx: InstallContext,
  file: string,
  entry: CatalogEntry,
  staging: string,
  scanned?: PackageScanner,
): Promise<void> {
  const trusted = packageKeys(ctx.identity.pinnedKeys, entry);
  try {
    const verified = await verifyScannedPackage(scanned ?? await scanPackageFile(file), {
      trusted,
      now: ctx.now(),
      expect: entry,
    });
    if (!entry.wrappedKey) {
      throw new AgentError("no_key", `Catalog gives no content key for ${entry.app}/${entry.name}`);
    }
    const contentKey = await unwrapContentKey(
      entry.wrappedKey,
      fromBase64Url(ctx.identity.encryptionPrivate),
      verified.header,
    );
    await Deno.mkdir(staging, { recursive: true, mode: 0o700 });
    await extractTar(
      gunzip(decryptPackageFile(file, verified, contentKey)),
      staging,
      payloadLimits,
    );
  } catch (e) {
    if (e instanceof PackageError) throw new AgentError(e.reason, e.message);
    if (e instanceof TarError) throw new AgentError("bad_archive", e.message);
    if (e instanceof AgentError) throw e;
    throw new AgentError("bad_package", `Package cannot be unpacked: ${String(e)}`);
  }
  try {
    // The same rule the NOC applies at publish (inspectPayload).
    checkInstallProgram(await Deno.lstat(`${staging}/install`).catch(() => null));
  } catch (e) {
    if (e instanceof PayloadError) throw new AgentError("bad_package", e.message);
    throw e;
  }
}

/**
 * The keys a package of `entry` may be signed by: the pinned package keys. A
 * retired NOC key (one that also signs catalogs) that the catalog names as
 * the package's signer counts as current: the catalog — verified, bound to
 * this request — vouches for the package's exact bytes (their SHA-256, which
 * the download matched), so a package signed before a key rotation stays
 * installable while the NOC still assigns it. Release keys (package-only) keep
 * their end dates: retiring one withdraws what it signed.
 */
export function packageKeys(
  pinned: readonly PublishedKey[],
  entry: Pick<CatalogEntry, "signer">,
): PublishedKey[] {
  return pinned.filter((k) => k.use.includes("package")).map((k) =>
    k.notAfter !== null && k.use.includes("catalog") && k.kid === entry.signer
      ? { ...k, notAfter: null }
      : k
  );
}

/**
 * Installs `entry` over `previous` (if any); throws {@link AgentError} when nothing changed.
 *
 * Its install program's runs are counted durably (install_attempts.ts): one cut short (the agent
 * killed, the appliance rebooted or without power) is run again, {@link MAX_INSTALL_RUNS} times
 * in all, then the install fails with `interrupted` and is not run again for that version. One
 * that asked for a reboot (exit {@link REBOOT_EXIT_CODE}, or `$NOC_REBOOT_MARKER`) gives
 * `awaiting_reboot` until the boot id changes; then its health check decides.
 */
export async function installPackage(
  ctx: InstallContext,
  entry: CatalogEntry,
  previous: Installed | undefined,
): Promise<PackageOutcome> {
  const state = ctx.config.state;
  const paths = statePaths(state);
  const label = `${entry.app}/${entry.name}@${entry.version}`;
  const file = downloadPath(paths.downloads, entry.sha256);
  const held = await findAttempt(state, entry);
  const mine = held && held.version === entry.version && held.sha256 === entry.sha256 ? held : null;
  if (mine?.phase === "awaiting_reboot") {
    const boot = await bootId();
    if (boot !== null && mine.bootId !== null && boot === mine.bootId) {
      return {
        outcome: "awaiting_reboot",
        message: `${label}: its install asked for a reboot; the appliance has not rebooted since ` +
          `(boot ${boot}), and its health check decides after the reboot`,
      };
    }
    if (await exists(`${keptDir(state, entry)}/install`)) {
      ctx.log.info("install_rebooted", { component: label });
      try {
        return await judge(ctx, entry, previous, label, " after the reboot its install asked for");
      } finally {
        await clearAttempt(state, entry);
      }
    }
    // Its payload is gone: installed again below (a run like any other, counted).
  }
  const runs = mine?.runs ?? 0;
  if (runs >= MAX_INSTALL_RUNS) {
    await Deno.remove(file).catch(() => {});
    throw new AgentError(
      "interrupted",
      `${label}: its install program was cut short ${runs} times (the agent or the appliance ` +
        `stopped mid-install); it is not run again for this version`,
    );
  }
  // Only now is the install run (downloaded, unpacked, its program started): not for one
  // awaiting its reboot, judged after it, or past its bounded runs (returned or thrown above).
  ctx.log.info("install_started", { kind: "package", component: label });
  await Deno.mkdir(paths.downloads, { recursive: true, mode: 0o700 });
  // The package's prefix and ciphertext digest are taken from the bytes as they download.
  const got = await download(
    file,
    { urls: entry.urls, size: entry.size, sha256: entry.sha256, label },
    {
      idleMs: ctx.config.downloadIdleS * 1000,
      fetch: ctx.fetch,
      log: ctx.log,
      sink: () => new PackageScanner(),
    },
  );
  const staging = `${paths.staging}/${crypto.randomUUID()}`;
  try {
    await unpackPackage(ctx, file, entry, staging, got.sink);
    cutPoint("unpacked");
    const env = await programEnv(ctx, staging, entry, previous?.version, "install");
    const marker = rebootMarker(state, entry.sha256);
    await Deno.mkdir(rebootDir(state), { recursive: true, mode: 0o700 });
    await Deno.remove(marker, { recursive: true }).catch(() => {});
    const boot = await bootId();
    const at = ctx.now().toISOString();
    const attempt: Attempt = {
      kind: "package",
      app: entry.app,
      name: entry.name,
      version: entry.version,
      sha256: entry.sha256,
      runs: runs + 1,
      phase: "running",
      bootId: boot,
      staging,
      startedAt: mine?.startedAt ?? at,
      updatedAt: at,
    };
    // Counted before it runs: a run cut short (even by the reboot it asked for) stays counted.
    await putAttempt(state, attempt);
    let awaiting = false;
    try {
      const r = await runIn(ctx, staging, "install", env, ctx.config.installTimeoutS);
      const reboot = r.code === REBOOT_EXIT_CODE || (r.ok && await exists(marker));
      if (!r.ok && !reboot) throw new AgentError("install_failed", `${label}: ${r.message}`);
      cutPoint("installed");
      await keepPayload(state, entry, staging);
      if (reboot) {
        await putAttempt(state, {
          ...attempt,
          phase: "awaiting_reboot",
          staging: null,
          updatedAt: ctx.now().toISOString(),
        });
        await Deno.remove(marker).catch(() => {});
        awaiting = true;
        ctx.log.info("install_awaiting_reboot", { component: label, bootId: boot });
        return {
          outcome: "awaiting_reboot",
          message: `${label}: its install asked for a reboot (${
            r.code === REBOOT_EXIT_CODE ? `exit ${REBOOT_EXIT_CODE}` : "reboot marker"
          }); its health check decides after the appliance reboots`,
        };
      }
      cutPoint("kept");
      return await judge(ctx, entry, previous, label, "");
    } finally {
      if (!awaiting) await clearAttempt(state, entry);
    }
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

/**
 * Runs the kept payload's `health` check (when it ships one): it passes, and `entry` is
 * installed; it fails, and `previous` is put back.
 */
async function judge(
  ctx: InstallContext,
  entry: CatalogEntry,
  previous: Installed | undefined,
  label: string,
  when: string,
): Promise<PackageOutcome> {
  const kept = keptDir(ctx.config.state, entry);
  if (await exists(`${kept}/health`)) {
    const h = await runIn(
      ctx,
      kept,
      "health",
      await programEnv(ctx, kept, entry, previous?.version, "health"),
      ctx.config.healthTimeoutS,
    );
    if (!h.ok) {
      const message = `${label} failed its health check${when} (${h.message})`;
      return await rollback(ctx, entry, previous, message);
    }
  }
  await Deno.remove(downloadPath(statePaths(ctx.config.state).downloads, entry.sha256))
    .catch(() => {});
  await pruneKept(ctx.config.state, entry, previous);
  return {
    outcome: "installed",
    installed: {
      kind: "package",
      app: entry.app,
      name: entry.name,
      version: entry.version,
      sha256: entry.sha256,
      installedAt: ctx.now().toISOString(),
    },
  };
}

/**
 * Puts the previous version back by running its kept `install` again (with
 * `NOC_ACTION=rollback`); throws {@link AgentError} when there is none to go back to.
 */
export async function rollback(
  ctx: InstallContext,
  failed: { app: string; name: string; version: string },
  previous: Installed | undefined,
  why: string,
): Promise<PackageOutcome> {
  const dir = previous ? keptDir(ctx.config.state, previous) : null;
  if (!previous || !dir || !(await exists(`${dir}/install`))) {
    throw new AgentError("unhealthy", `${why}; no previous version is kept to roll back to`);
  }
  const r = await runIn(
    ctx,
    dir,
    "install",
    await programEnv(ctx, dir, previous, failed.version, "rollback"),
    ctx.config.installTimeoutS,
  );
  if (!r.ok) {
    throw new AgentError("rollback_failed", `${why}; rolling back failed: ${r.message}`);
  }
  ctx.log.warn("rolled_back", {
    component: `${failed.app}/${failed.name}`,
    from: failed.version,
    to: previous.version,
  });
  return { outcome: "rolled_back", message: `${why}; rolled back to ${previous.version}` };
}

/** Keeps the payloads of the current and previous versions of a package, and drops the rest. */
async function pruneKept(
  state: string,
  current: { app: string; name: string; sha256: string },
  previous: Installed | undefined,
): Promise<void> {
  const dir = `${statePaths(state).packages}/${current.app}/${current.name}`;
  const keep = new Set([current.sha256, previous?.sha256]);
  for await (const e of Deno.readDir(dir)) {
    if (!keep.has(e.name)) await Deno.remove(`${dir}/${e.name}`, { recursive: true });
  }
}
