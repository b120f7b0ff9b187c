/**
 * The operator's command line (`deno task noc <command>`): enrolment tokens, appliances, alerts,
 * publishing packages and files, assignments, phased rollouts, wake-ups, release keys, local
 * component servers, operators and the audit log, over the admin API. `--token` is an admin token or a personal
 * token (`noc operator token`); the NOC enforces its role.
 *
 * ```
 * noc package <dir|payload.tgz> --app A --name N --version V [--noc URL --token T]
 *     The NOC signs: the payload (gzip tar of <dir>, or the .tgz as it is) is streamed to the NOC,
 *     which encrypts and signs it. Either is first checked here as an appliance will unpack it.
 * noc package <dir|payload.tgz> --app A --name N --version V --key release.key (--noc URL --token T | --out FILE [--noc-key K])
 *     Signed here with an offline release key (PEM from `openssl genpkey -algorithm ed25519`, or
 *     from `noc keygen`); the content key travels wrapped to the NOC's X25519 key.
 * noc upload <package file>                           upload a package built with --out (reads <file>.wrapped-key)
 * noc file put <path> --app A --name N --version V
 * noc keygen --out release.key                        make a release key; prints its public half to register
 * noc release-key add <public key> --label L [--not-after T] [--endorse-with release.key]
 *     <public key>: as noc keygen prints it, in PEM (`openssl pkey -pubout`), or a file holding it.
 *     In release-keys-only mode a new release key is endorsed here by an existing (offline) one.
 * noc fileinfo put <app> <name> --destination D --mode M [--action '["argv",…]'] [--upload-dir X]
 *     [--upload-server Y] [--key release.key] [--out FILE]
 *     Signed here with an offline release key (required in release-keys-only mode); --out writes the
 *     signed fileinfo to FILE instead of sending it, for `noc fileinfo upload FILE` from elsewhere.
 * noc fileinfo upload <file>                          send a fileinfo signed with --out
 * noc local-servers token --site S [--label L]        a one-time token for a site's local component server
 * noc local-servers [list] [--site S] [--limit N] [--cursor C]   local component servers
 * noc local-servers revoke <id> --reason R
 * noc tokens create [--site S] [--channel C] [--tags a,b] [--label L] [--hours N]
 *   [--reenrolment supersede|refuse]
 * noc tokens [list] [--limit N] [--cursor C] | tokens revoke <id>
 * noc appliances [list] [--state S] [--site S] [--model M] [--channel C] [--tag T] [--app A]
 *   [--version V] [--q text] [--retired include|only] [--limit N] [--cursor C]
 *     --app/--version: what appliances last reported running; --q: part of a host name, or a
 *     whole UID or address; --retired: records retired by a re-enrolment, too or alone.
 * noc appliances show <uid> | appliances revoke <uid> --reason R
 * noc alerts [list] [--status open|resolved|all] [--limit N] [--cursor C] | alerts ack <id>
 * noc assign --app A --name N --version V [--kind package|file] [--target all|model=M|site=S|channel=C|tag=T|appliance=UID] [--rollout P]
 *   [--gate P] [--min-sample N] [--allow-unknown-target]
 *     --gate: the health gate (failureThresholdPercent, 1–100): the rollout pauses itself when
 *     this share of at least --min-sample (minSample, 1–100000, default 5) counted appliances failed.
 * noc wake (--uid U | --site S | --all)
 * noc operator [list] [--limit N] [--cursor C] | operator add <name> --role admin|operator|viewer [--password-file F]
 * noc operator role <name> --role R | operator disable <name> | operator enable <name>
 * noc operator password <name> [--password-file F] | operator token <name> [--label L]
 * noc operator revoke-token <name> <id>
 *     Named operators (admin only). Without --password-file a random password is made and printed
 *     once; a password never goes on the command line.
 * noc audit [--actor A] [--path P] [--target T] [--since T] [--until T] [--limit N] [--cursor C]
 *     [--csv]  The audit log, newest first (admin and operator); --target: only changes that named
 *     or touched this appliance UID (a bulk action's selection too), id or name; --csv prints
 *     every matching record as CSV.
 * noc whoami                                          the name and role the token signs in as
 * noc rollouts [list] [--state S[,S…]] [--limit N] [--cursor C]
 * noc rollouts show <id> | rollouts appliances <id> [--phase N] [--state S] [--after UID]
 * noc rollouts create --app A --name N --version V [--kind K] [--target T] --phase SPEC…
 *   [--rollback] [--previous-version V] [--metric app.key (--max-drop P | --max-rise P)]
 *   [--min-appliances N] [--min-beats N] [--max-unhealthy P] [--max-extra-missed P]
 *   [--max-failed P] [--min-sample N] [--min-healthy P] [--note N]  |  rollouts create --plan F
 *     Phased rollouts: SPEC is <N%|count>[:soak=6h][:min-healthy=P][:max-failed=P]
 *     [:min-sample=N][:manual]; the metric and beat gates go on every phase but a 100% one.
 * noc rollouts pause|resume|cancel|advance <id> [--note N]
 * ```
 *
 * Every command prints for people; `--json` prints the admin API's answer. `--noc` and `--token`
 * default to NOC_URL and NOC_TOKEN. Flags go anywhere on the line; `--help` (or `-h`) after any
 * command prints its usage. A usage error (unknown command or flag, missing value, bad local input)
 * exits 64; a failure (the NOC refused, unreachable) exits 1.
 *
 * @module
 */
import { readTextBounded } from "../protocol/http/bounded_body.ts";
import type { ParseArgsOptionsConfig } from "node:util";
import { z } from "zod";
import { createTar, gzip, TarError } from "../protocol/package/tar.ts";
import { buildPackage, readFileFrom } from "../protocol/package/file.ts";
import { inspectPayload, PayloadError, type PayloadSummary } from "../protocol/package/payload.ts";
import { wrapContentKey } from "../protocol/package/format.ts";
import { readPackagePrefix } from "../protocol/package/file.ts";
import {
  ed25519PublicOf,
  exportRawPublic,
  importEd25519Seed,
  parsePublicKey,
} from "../protocol/crypto/ed25519.ts";
import {
  KeyFormatError,
  looksLikePem,
  MAX_KEY_TEXT,
  readEd25519PublicKey,
  readEd25519Seed,
} from "../protocol/crypto/pem.ts";
import { toBase64Url } from "../protocol/util/encoding.ts";
import { keyId, newSeed } from "../protocol/keys.ts";
import {
  type FileinfoStatement,
  signedFileinfoSchema,
  signFileinfo,
} from "../protocol/fileinfo.ts";
import { endorseKey } from "../protocol/release_keys.ts";
import { nameSchema } from "../protocol/schemas.ts";
import { knownTimeZone } from "../protocol/install_window.ts";
import { onlyFlags, parseCommandLine, UsageError, usageExitCode } from "../protocol/util/args.ts";
import * as ro from "./rollouts.ts";

/** The most bytes of an admin API answer the CLI reads (fleet-wide listings can be large). */
const ANSWER_LIMIT = 256 * 1024 * 1024;

/** A command-line failure: printed without a stack, with its exit code (1 unless given). */
export class CliError extends Error {
  /** Creates an error with an exit code. */
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

/** Every flag the CLI knows, with what it takes and what it means (usage text). */
const flagSpecs = {
  noc: { type: "string", arg: "<url>", about: "NOC base URL (default NOC_URL)" },
  token: {
    type: "string",
    arg: "<token>",
    about: "admin token or personal token (default NOC_TOKEN)",
  },
  json: { type: "boolean", arg: "", about: "print the admin API's JSON answer" },
  app: {
    type: "string",
    arg: "<app>",
    about: "application (list: appliances last reported running it)",
  },
  name: { type: "string", arg: "<name>", about: "component name" },
  version: {
    type: "string",
    arg: "<version>",
    about: "component version (list: appliances last reported running it)",
  },
  key: {
    type: "string",
    arg: "<file>",
    about: "sign here with this offline release key (Ed25519: PEM, or from noc keygen)",
  },
  out: { type: "string", arg: "<file>", about: "write the package (and <file>.wrapped-key)" },
  "noc-key": {
    type: "string",
    arg: "<key>",
    about: "the NOC's X25519 public key (default: GET /v1/keys)",
  },
  label: { type: "string", arg: "<text>", about: "label shown on the NOC" },
  site: { type: "string", arg: "<site>", about: "site" },
  channel: { type: "string", arg: "<channel>", about: "channel" },
  tags: { type: "string", arg: "<a,b>", about: "tags, comma-separated" },
  hours: { type: "string", arg: "<n>", about: "hours the token lives" },
  reenrolment: {
    type: "string",
    arg: "supersede|refuse",
    about: "an appliance of the same name at the site: retire it, or refuse (409)",
  },
  state: {
    type: "string",
    arg: "<state>",
    about: "appliances: ok, late, missing or revoked; rollouts: running, paused, failed, " +
      "cancelled, completed; rollouts appliances: running, pending, failed, not_sent, … " +
      "(rollouts: several separated by commas)",
  },
  model: { type: "string", arg: "<model>", about: "model" },
  tag: { type: "string", arg: "<tag>", about: "tag" },
  q: {
    type: "string",
    arg: "<text>",
    about: "search: part of a host name (any case), or a whole UID or whole address",
  },
  retired: {
    type: "string",
    arg: "include|only",
    about: "records a re-enrolment retired (superseded): list them too, or alone",
  },
  limit: { type: "string", arg: "<n>", about: "page size" },
  cursor: { type: "string", arg: "<cursor>", about: "next page (printed after a full page)" },
  status: { type: "string", arg: "<status>", about: "open (default), resolved or all" },
  reason: { type: "string", arg: "<text>", about: "why (recorded)" },
  kind: { type: "string", arg: "<kind>", about: "package (default) or file" },
  target: {
    type: "string",
    arg: "<target>",
    about: "assign, rollouts create: all (default) or model=M, site=S, channel=C, tag=T, " +
      "appliance=UID; audit: only changes that named or touched this appliance UID, id or name",
  },
  rollout: { type: "string", arg: "<percent>", about: "rollout percentage (default 100)" },
  gate: {
    type: "string",
    arg: "<percent>",
    about: "health gate: pause the rollout when this % (1-100) of counted appliances failed",
  },
  "min-sample": {
    type: "string",
    arg: "<n>",
    about: "counted appliances needed before the gate may pause (rollouts: before a phase may " +
      "stop) (1-100000, default 5)",
  },
  "allow-unknown-target": {
    type: "boolean",
    arg: "",
    about: "assign to a target no appliance, live token or local server has yet (0 appliances)",
  },
  uid: { type: "string", arg: "<uid>", about: "one appliance" },
  destination: {
    type: "string",
    arg: "<path>",
    about: "where the file goes, relative to the appliance root",
  },
  mode: { type: "string", arg: "<mode>", about: "file mode, octal (e.g. 0644)" },
  action: {
    type: "string",
    arg: "<json>",
    about: 'command run after the file is written, a JSON argv (["systemctl","reload","x"])',
  },
  "upload-dir": { type: "string", arg: "<dir>", about: "the spec's UPLOAD DIR" },
  "upload-server": { type: "string", arg: "<server>", about: "the spec's UPLOAD SERVER" },
  "endorse-with": {
    type: "string",
    arg: "<file>",
    about: "endorse the new release key here with this existing (offline) release key",
  },
  "not-after": {
    type: "string",
    arg: "<time>",
    about: "when the release key stops being accepted (ISO time)",
  },
  all: { type: "boolean", arg: "", about: "every appliance" },
  role: { type: "string", arg: "admin|operator|viewer", about: "an operator's role" },
  "password-file": {
    type: "string",
    arg: "<file>",
    about: "read the password from this file (default: make a random one and print it)",
  },
  actor: { type: "string", arg: "<name>", about: "audit: only this operator or token label" },
  path: { type: "string", arg: "<prefix>", about: "audit: only paths starting with this" },
  since: { type: "string", arg: "<time>", about: "audit: only records at or after (ISO time)" },
  until: { type: "string", arg: "<time>", about: "audit: only records before (ISO time)" },
  csv: { type: "boolean", arg: "", about: "audit: every matching record as CSV" },
  plan: {
    type: "string",
    arg: "<file>",
    about: "rollouts create: the whole POST /v1/admin/rollouts body, as JSON, instead of flags",
  },
  phase: {
    type: "string",
    multiple: true,
    arg: "<spec>",
    about: "rollouts create: a phase, in order, repeated: <N%|count>[:soak=<dur>][:min-healthy=P]" +
      "[:max-failed=P][:min-sample=N][:manual] (dur: 90s, 30m, 6h, 2d; soak 0 by default), " +
      "e.g. --phase 1%:soak=1h --phase 100%; rollouts appliances: only this phase (1 = the first)",
  },
  rollback: {
    type: "boolean",
    arg: "",
    about: "rollouts create: a failed phase's appliances go back to the previous version",
  },
  "previous-version": {
    type: "string",
    arg: "<version>",
    about: "rollouts create: what the target runs now (default: the version assigned to it)",
  },
  metric: {
    type: "string",
    arg: "<app.key>",
    about: "rollouts create: gate phases with a control group (all but a 100% one) on this " +
      "metric of the app data against control (with --max-drop and/or --max-rise)",
  },
  "max-drop": {
    type: "string",
    arg: "<percent>",
    about: "metric gate: fail when the phase's median is more than this % below control's",
  },
  "max-rise": {
    type: "string",
    arg: "<percent>",
    about: "metric gate: fail when the phase's median is more than this % above control's",
  },
  "min-appliances": {
    type: "string",
    arg: "<n>",
    about: "metric gate: appliances each group needs before it is judged (default 5)",
  },
  "min-beats": {
    type: "string",
    arg: "<n>",
    about: "metric gate: beats with the metric an appliance needs to count (default 3)",
  },
  "max-unhealthy": {
    type: "string",
    arg: "<percent>",
    about: "rollouts create: every phase fails when more than this % report the app unhealthy",
  },
  "max-extra-missed": {
    type: "string",
    arg: "<points>",
    about: "rollouts create: phases with a control group fail when their share missing beats " +
      "exceeds control's by more than this many points",
  },
  "max-failed": {
    type: "string",
    arg: "<percent>",
    about: "rollouts create: a phase stops when this % of those counted failed (default 20)",
  },
  "min-healthy": {
    type: "string",
    arg: "<percent>",
    about: "rollouts create: share of a phase running it, healthy, to advance (default 95)",
  },
  note: { type: "string", arg: "<text>", about: "rollouts: a note kept in the timeline" },
  after: { type: "string", arg: "<uid>", about: "rollouts appliances: next page (printed)" },
  urgent: {
    type: "boolean",
    arg: "",
    about: "assign: install even outside the appliances' install windows (recorded)",
  },
  scope: {
    type: "string",
    arg: "appliance|site|model",
    about: "install-windows: only the windows of appliances, sites or models",
  },
  start: { type: "string", arg: "<HH:MM>", about: "install-windows set: opens at (local time)" },
  end: {
    type: "string",
    arg: "<HH:MM>",
    about: "install-windows set: closes at (local time; before --start: over midnight)",
  },
  tz: {
    type: "string",
    arg: "<zone>",
    about: "install-windows set: the IANA time zone of --start and --end (Europe/Berlin, UTC)",
  },
  "allow-unknown": {
    type: "boolean",
    arg: "",
    about: "install-windows set: a site or model no appliance has yet",
  },
} as const;

type FlagName = keyof typeof flagSpecs;

const cliOptions = Object.fromEntries(
  Object.entries(flagSpecs).map((
    [name, s],
  ) => [name, { type: s.type, ...("multiple" in s ? { multiple: true } : {}) }]),
) as {
  [K in FlagName]: (typeof flagSpecs)[K] extends { multiple: true }
    ? { type: (typeof flagSpecs)[K]["type"]; multiple: true }
    : { type: (typeof flagSpecs)[K]["type"] };
} satisfies ParseArgsOptionsConfig;

/** The parsed flags. */
type Flags = ReturnType<typeof parseCli>["values"];

/**
 * Parses the command line. A word holding PEM text (`release-key add "$(cat pub.pem)"`) starts
 * with "-----BEGIN", which no flag does: it is kept as a word (or a flag's value) rather than
 * refused as an unknown flag. It stands in for the parser as a mark holding a NUL, which no
 * command-line word can hold.
 */
function parseCli(args: readonly string[]) {
  const pem: string[] = [];
  const masked = args.map((a) => /^-----BEGIN /.test(a) ? `\0pem${pem.push(a) - 1}` : a);
  const parsed = parseCommandLine(masked, cliOptions, { positionals: true });
  const unmask = (v: string) => v.startsWith("\0pem") ? pem[Number(v.slice(4))]! : v;
  const values = parsed.values as Record<string, unknown>;
  for (const [k, v] of Object.entries(values)) {
    if (typeof v === "string") values[k] = unmask(v);
    else if (Array.isArray(v)) values[k] = v.map((x) => typeof x === "string" ? unmask(x) : x);
  }
  return { values: parsed.values, positionals: parsed.positionals.map((p) => unmask(p)) };
}

/** One form of a command: `noc <command> [<sub>] <args…> [flags]`. */
interface Form {
  /** Positional words after the command (and subcommand), e.g. `<uid>`. */
  args: readonly string[];
  /** Flags it takes (`--noc`/`--token` are added to forms that call the NOC). */
  flags: readonly FlagName[];
  /** Whether it calls the admin API. */
  api: boolean;
  /** One line on what it does. */
  about: string;
}

interface Command {
  /** Subcommands; `""` for a command that has none. */
  forms: Record<string, Form>;
  /** The subcommand when none is given. */
  default?: string;
}

const form = (
  args: readonly string[],
  flags: readonly FlagName[],
  about: string,
  api = true,
): Form => ({ args, flags, about, api });

/** The fleet list's filters: flags of `appliances list`, query parameters of the admin API. */
const applianceFilters = [
  "state",
  "site",
  "model",
  "channel",
  "tag",
  "app",
  "version",
  "q",
  "retired",
  "limit",
  "cursor",
] as const;

const commands: Record<string, Command> = {
  tokens: {
    default: "list",
    forms: {
      list: form([], ["limit", "cursor", "json"], "list enrolment tokens, newest first"),
      create: form(
        [],
        ["site", "channel", "tags", "label", "hours", "reenrolment", "json"],
        "a one-time enrolment token for an appliance",
      ),
      revoke: form(["<id>"], ["json"], "revoke an unused token"),
    },
  },
  appliances: {
    default: "list",
    forms: {
      list: form([], [...applianceFilters, "json"], "list appliances"),
      show: form(["<uid>"], ["json"], "one appliance and what it runs"),
      revoke: form(["<uid>"], ["reason", "json"], "revoke an appliance's identity"),
    },
  },
  alerts: {
    default: "list",
    forms: {
      list: form([], ["status", "limit", "cursor", "json"], "list alerts, newest first"),
      ack: form(["<id>"], ["json"], "acknowledge an alert"),
    },
  },
  package: {
    forms: {
      "": form(
        ["<dir|payload.tgz>"],
        ["app", "name", "version", "key", "out", "noc-key"],
        "publish a folder, or a gzip'd tar of one, holding an executable install program",
      ),
    },
  },
  upload: {
    forms: { "": form(["<package file>"], [], "upload a package built with --out") },
  },
  file: {
    forms: { put: form(["<path>"], ["app", "name", "version"], "publish a file") },
  },
  assign: {
    forms: {
      "": form(
        [],
        [
          "app",
          "name",
          "version",
          "kind",
          "target",
          "rollout",
          "gate",
          "min-sample",
          "allow-unknown-target",
          "urgent",
          "json",
        ],
        "assign a component version to appliances",
      ),
    },
  },
  wake: {
    forms: { "": form([], ["uid", "site", "all", "json"], "wake appliances now") },
  },
  keygen: {
    forms: { "": form([], ["out"], "make an offline release key", false) },
  },
  "release-key": {
    forms: {
      add: form(
        ["<public key>"],
        ["label", "not-after", "endorse-with"],
        "register a release key's public half (base64url, PEM, or a file holding it)",
      ),
    },
  },
  fileinfo: {
    forms: {
      put: form(
        ["<app>", "<name>"],
        ["destination", "mode", "action", "upload-dir", "upload-server", "key", "out"],
        "save where an application's file goes and what runs after it",
      ),
      upload: form(["<file>"], [], "send a fileinfo signed with fileinfo put --out"),
    },
  },
  operator: {
    default: "list",
    forms: {
      list: form(
        [],
        ["limit", "cursor", "json"],
        "list operators, their roles and personal tokens",
      ),
      add: form(["<name>"], ["role", "password-file", "json"], "create an operator"),
      role: form(["<name>"], ["role", "json"], "change an operator's role"),
      disable: form(["<name>"], ["json"], "disable an operator (sessions and tokens stop)"),
      enable: form(["<name>"], ["json"], "enable a disabled operator again"),
      password: form(["<name>"], ["password-file", "json"], "set an operator's password"),
      token: form(["<name>"], ["label", "json"], "issue a personal API token (shown once)"),
      "revoke-token": form(["<name>", "<id>"], ["json"], "revoke a personal API token"),
    },
  },
  audit: {
    forms: {
      "": form(
        [],
        ["actor", "path", "target", "since", "until", "limit", "cursor", "csv", "json"],
        "the audit log: who changed what, when, from where",
      ),
    },
  },
  whoami: {
    forms: { "": form([], ["json"], "the name and role the token signs in as") },
  },
  rollouts: {
    default: "list",
    forms: {
      list: form([], ["state", "limit", "cursor", "json"], "phased rollouts, newest first"),
      show: form(
        ["<id>"],
        ["json"],
        "one rollout: phases (size, members, state), gate figures against control, timeline",
      ),
      appliances: form(
        ["<id>"],
        ["phase", "state", "after", "limit", "json"],
        "a rollout's appliances: phase, install state, running version, outcome",
      ),
      create: form(
        [],
        [
          "plan",
          "kind",
          "app",
          "name",
          "version",
          "target",
          "phase",
          "rollback",
          "previous-version",
          "metric",
          "max-drop",
          "max-rise",
          "min-appliances",
          "min-beats",
          "max-unhealthy",
          "max-extra-missed",
          "max-failed",
          "min-sample",
          "min-healthy",
          "note",
          "json",
        ],
        "start a phased rollout (phases from --phase, or the whole body from --plan)",
      ),
      pause: form(["<id>"], ["note", "json"], "pause a running rollout (nobody new gets it)"),
      resume: form(["<id>"], ["note", "json"], "resume a paused rollout (soak time anew)"),
      cancel: form(["<id>"], ["note", "json"], "cancel a rollout for good"),
      advance: form(
        ["<id>"],
        ["note", "json"],
        "start the next phase now, whatever the figures (or complete after the last)",
      ),
    },
  },
  "install-windows": {
    default: "list",
    forms: {
      list: form(
        [],
        ["scope", "limit", "cursor", "json"],
        "install windows: when the appliances of a site, a model or one appliance may install",
      ),
      set: form(
        ["<scope>", "<value>"],
        ["start", "end", "tz", "reason", "allow-unknown", "json"],
        "set the install window of an appliance (UID), a site or a model (created or replaced)",
      ),
      remove: form(["<scope>", "<value>"], ["json"], "remove an install window"),
    },
  },
  "local-servers": {
    default: "list",
    forms: {
      list: form(
        [],
        ["site", "limit", "cursor", "json"],
        "local component servers: state, cache, hit rate",
      ),
      token: form([], ["site", "label", "json"], "a one-time token for a site's local server"),
      revoke: form(["<id>"], ["reason"], "revoke a local component server"),
    },
  },
};

function flagsOf(f: Form): FlagName[] {
  return [...f.flags, ...(f.api ? ["noc", "token"] as const : [])];
}

function formLine(command: string, sub: string, f: Form, isDefault: boolean): string {
  const s = sub === "" ? "" : isDefault ? ` [${sub}]` : ` ${sub}`;
  return `noc ${command}${s}${f.args.map((a) => ` ${a}`).join("")}`;
}

function flagLines(names: readonly FlagName[]): string[] {
  const all = [...new Set(names)].map((n): [string, string] => {
    const s = flagSpecs[n];
    return [`--${n}${s.arg ? ` ${s.arg}` : ""}`, s.about];
  });
  all.push(["-h, --help", "this help"]);
  const width = Math.max(...all.map(([l]) => l.length));
  return all.map(([l, a]) => `  ${l.padEnd(width)}  ${a}`);
}

/** The usage of `command`, or of the whole CLI: every form and every flag it takes. */
export function usage(command?: string): string {
  const names = command === undefined ? Object.keys(commands) : [command];
  const rows: Array<[string, string, readonly FlagName[]]> = [];
  const flags: FlagName[] = [];
  for (const name of names) {
    const c = commands[name]!;
    for (const [sub, f] of Object.entries(c.forms)) {
      rows.push([formLine(name, sub, f, sub === c.default), f.about, f.flags]);
      flags.push(...flagsOf(f));
    }
  }
  const width = Math.max(...rows.map(([l]) => l.length));
  const pad = " ".repeat(width + 4);
  const subs = command === undefined ? [] : Object.keys(commands[command]!.forms);
  const head = command === undefined
    ? "Usage: noc <command> [flags]   (deno task noc -- <command> [flags])"
    : `Usage: noc ${command}${subs[0] === "" ? "" : ` <${subs.join("|")}>`} [flags]`;
  return [
    head,
    "",
    "Commands:",
    ...rows.flatMap(([l, a, f]) => [
      `  ${l.padEnd(width)}  ${a}`,
      ...(f.length ? [`${pad}${f.map((n) => `--${n}`).join(" ")}`] : []),
    ]),
    "",
    "Flags (anywhere on the line):",
    ...flagLines(flags.sort()),
    "",
    "Prints for people; --json prints the admin API's answer. Usage errors exit 64, failures 1.",
    ...(command === undefined ? ['Run "noc <command> --help" for one command\'s usage.'] : []),
  ].join("\n");
}

type StringFlag = {
  [K in FlagName]: (typeof flagSpecs)[K] extends { multiple: true } ? never
    : (typeof flagSpecs)[K]["type"] extends "string" ? K
    : never;
}[FlagName];

/** What a command runs with: its flags and its positional words. */
interface Ctx {
  flags: Flags;
  words: readonly string[];
}

function flag(ctx: Ctx, name: StringFlag, env?: string): string | undefined {
  const v = ctx.flags[name] || undefined;
  return v ?? (env ? Deno.env.get(env) || undefined : undefined);
}

function need(ctx: Ctx, name: StringFlag, env?: string): string {
  const v = flag(ctx, name, env);
  if (v === undefined) throw new UsageError(`--${name} is required${env ? ` (or ${env})` : ""}`);
  return v;
}

function count(
  ctx: Ctx,
  name: StringFlag,
  min: number,
  max: number,
  whole = false,
): number | undefined {
  const v = flag(ctx, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max || (whole && !Number.isInteger(n))) {
    throw new UsageError(
      `--${name} must be a ${whole ? "whole " : ""}number from ${min} to ${max}, not "${v}"`,
    );
  }
  return n;
}

const errorBody = z.object({ message: z.string() });

/** `--limit` and `--cursor` as a list's query (docs/operations.md, "Lists and paging"). */
function pageParams(ctx: Ctx): URLSearchParams {
  const q = new URLSearchParams();
  for (const f of ["limit", "cursor"] as const) {
    const v = flag(ctx, f);
    if (v !== undefined) q.set(f, v);
  }
  return q;
}

/**
 * A list's "more" line, printed below a page that is not the last (an empty string on the last):
 * the command again with `--cursor` shows the next page.
 */
function more(body: unknown): string {
  const next = (body as { nextCursor?: unknown } | null)?.nextCursor;
  return typeof next === "string" ? `\n(more: --cursor ${next})` : "";
}

async function call(
  ctx: Ctx,
  method: string,
  path: string,
  init: RequestInit = {},
): Promise<unknown> {
  const noc = need(ctx, "noc", "NOC_URL").replace(/\/$/, "");
  const token = need(ctx, "token", "NOC_TOKEN");
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  // What the audit log records as the user agent of the CLI's changes.
  headers.set("user-agent", `noc-cli (Deno/${Deno.version.deno})`);
  const res = await fetch(`${noc}${path}`, { ...init, method, headers });
  const text = await readTextBounded(res, ANSWER_LIMIT, { truncate: !res.ok });
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* keep text */ }
  if (!res.ok) {
    const e = errorBody.safeParse(body);
    throw new CliError(
      `NOC answered ${res.status}: ${e.success ? e.data.message : text.slice(0, 300)}`,
    );
  }
  return body;
}

function postJson(ctx: Ctx, path: string, body: unknown): Promise<unknown> {
  return call(ctx, "POST", path, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** `body` as `schema` says the admin API answers; a different answer is a clear failure. */
function read<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new CliError(
    `The NOC's answer is not what this CLI expects: "${issue.path.join(".")}" ${issue.message}`,
  );
}

const json = (v: unknown) => JSON.stringify(v, null, 2);

// What the CLI reads of the admin API's answers (other fields pass through --json untouched).
const idSchema = z.union([z.string(), z.number()]);
const nullableText = z.string().nullish();
const tokenCreated = z.object({
  token: z.string(),
  expiresAt: z.string(),
  site: nullableText,
  reenrolment: nullableText,
});
const tokenList = z.object({
  items: z.array(z.object({
    id: idSchema,
    purpose: z.string(),
    status: z.string(),
    site: nullableText,
    label: nullableText,
    reenrolment: nullableText,
    expiresAt: z.string(),
  })),
});
const applianceSummary = z.object({
  uid: z.string(),
  hostname: z.string(),
  state: z.string(),
  model: z.string(),
  site: nullableText,
  channel: z.string(),
  tags: z.array(z.string()),
  lastBeatAt: nullableText,
  nextDueAt: z.string(),
  agentVersion: nullableText,
  revokedAt: nullableText,
  revokedReason: nullableText,
  supersededBy: nullableText,
  supersedes: z.array(z.string()).nullish(),
});
const applianceList = z.object({
  items: z.array(applianceSummary),
  nextCursor: nullableText,
});
const applianceDetail = applianceSummary.extend({
  lastReport: z.object({
    components: z.array(z.object({
      kind: z.string(),
      app: z.string(),
      name: z.string(),
      version: z.string(),
    })).nullish(),
  }).nullish(),
});
const alertList = z.object({
  items: z.array(z.object({
    id: idSchema,
    kind: z.string(),
    uid: nullableText,
    hostname: nullableText,
    openedAt: z.string(),
    acknowledgedAt: nullableText,
    acknowledgedBy: nullableText,
    resolvedAt: nullableText,
  })),
});
const assignment = z.object({
  id: idSchema,
  kind: z.string(),
  app: z.string(),
  name: z.string(),
  version: z.string(),
  rolloutPercent: z.number(),
  failureThresholdPercent: z.number().nullish(),
  minSample: z.number().nullish(),
  urgent: z.boolean().optional(),
});
const installWindow = z.object({
  scope: z.string(),
  value: z.string(),
  start: z.string(),
  end: z.string(),
  timeZone: z.string(),
  reason: z.string(),
  updatedBy: nullableText,
  updatedAt: nullableText,
});
const installWindowList = z.object({
  items: z.array(installWindow),
  nextCursor: nullableText.optional(),
});
const windowScopes = ["appliance", "site", "model"] as const;

/** The `<scope>` word (or `--scope`): appliance, site or model; anything else is a usage error. */
function windowScope(v: string, what: string): string {
  if (!(windowScopes as readonly string[]).includes(v)) {
    throw new UsageError(`${what} must be appliance, site or model, not "${v.slice(0, 60)}"`);
  }
  return v;
}

/** `--start`/`--end`: a time of day, HH:MM on a 24-hour clock. */
function timeOfDay(ctx: Ctx, name: "start" | "end"): string {
  const v = need(ctx, name);
  if (!/^([01][0-9]|2[0-3]):[0-5][0-9]$/.test(v)) {
    throw new UsageError(`--${name} must be a time of day, HH:MM (00:00-23:59), not "${v}"`);
  }
  return v;
}

const nocKeys = z.object({ encryptionKey: z.string() });
const localServerList = z.object({
  items: z.array(z.object({
    id: z.string(),
    site: z.string(),
    name: z.string(),
    url: z.string(),
    state: z.string(),
    lastContactAt: nullableText,
    cache: z.object({
      bytes: z.number(),
      limit: z.number(),
      entries: z.number(),
      staged: z.number(),
    }),
    hits: z.number(),
    misses: z.number(),
    hitRate: z.number().nullable(),
    pendingRecords: z.number(),
    problems: z.array(z.unknown()),
  })),
});

const operator = z.object({
  name: z.string(),
  role: z.string(),
  hasPassword: z.boolean(),
  disabledAt: nullableText,
  lastSignInAt: nullableText,
  tokens: z.array(z.object({
    id: idSchema,
    label: z.string(),
    createdAt: z.string(),
    revokedAt: nullableText,
  })),
});
const operatorList = z.object({ items: z.array(operator), nextCursor: nullableText.optional() });
const auditPage = z.object({
  items: z.array(z.object({
    at: z.string(),
    actor: z.string(),
    role: nullableText,
    via: z.string(),
    method: z.string(),
    path: z.string(),
    status: z.number().nullable(),
    error: nullableText,
    address: nullableText,
    affected: z.array(z.string()).optional(),
  })),
  nextCursor: nullableText,
});

/** The `<id>` of a `rollouts` command (checked here, as it goes into a path). */
function rolloutId(ctx: Ctx): string {
  const id = ctx.words[0]!;
  if (!/^[1-9][0-9]{0,14}$/.test(id)) {
    throw new UsageError(`<id> must be a rollout id (a number), not "${id.slice(0, 80)}"`);
  }
  return id;
}

/** `rollouts pause|resume|cancel|advance <id> [--note N]`: the action, and where it left it. */
async function rolloutAction(
  ctx: Ctx,
  action: "pause" | "resume" | "cancel" | "advance",
): Promise<string> {
  const id = rolloutId(ctx);
  const note = flag(ctx, "note");
  const body = await postJson(
    ctx,
    `/v1/admin/rollouts/${id}/${action}`,
    note === undefined ? {} : { note },
  );
  if (ctx.flags.json) return json(body);
  const r = read(ro.rolloutDetail, body);
  const where = `phase ${r.phase + 1} of ${r.phaseCount}`;
  if (action === "advance") {
    return r.state === "completed"
      ? `Rollout ${id} completed (${where})`
      : `Rollout ${id} advanced: ${where} started with ${
        ro.appliancesText(r.phases[r.phase]?.members ?? 0)
      }, control ${r.control}`;
  }
  const done = { pause: "paused", resume: "resumed", cancel: "cancelled" }[action];
  return `Rollout ${id} ${done} (${where}; now ${r.state})`;
}

/** An operator's name as the NOC takes it (checked here, as it goes into a path). */
function operatorArg(name: string): string {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) {
    throw new UsageError(
      `<name> "${name.slice(0, 80)}": lower-case letters, digits, '.', '_' and '-' (1-64)`,
    );
  }
  return name;
}

function roleFlag(ctx: Ctx): string {
  const role = need(ctx, "role");
  if (!["admin", "operator", "viewer"].includes(role)) {
    throw new UsageError(`--role must be admin, operator or viewer, not "${role.slice(0, 40)}"`);
  }
  return role;
}

/**
 * The password to set: the first line of --password-file (at most 1,024 bytes), or a new random
 * one (24 characters, 144 bits) that the caller prints once.
 */
async function passwordOf(ctx: Ctx): Promise<{ password: string; made: boolean }> {
  const file = flag(ctx, "password-file");
  if (file === undefined) {
    return { password: toBase64Url(crypto.getRandomValues(new Uint8Array(18))), made: true };
  }
  const text = await readKeyText(file, `--password-file "${file}"`);
  const password = text.split(/\r?\n/)[0] ?? "";
  if (password.length < 12 || password.length > 256) {
    throw new UsageError(`--password-file "${file}": a password is 12 to 256 characters`);
  }
  return { password, made: false };
}

async function patchOperator(
  ctx: Ctx,
  change: { role?: string; disabled?: boolean },
): Promise<string> {
  const name = operatorArg(ctx.words[0]!);
  const body = await call(ctx, "PATCH", `/v1/admin/operators/${name}`, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify(change),
  });
  if (ctx.flags.json) return json(body);
  const o = read(operator, body);
  return `Operator ${o.name}: ${o.role}, ${o.disabledAt ? "disabled" : "enabled"}` +
    (change.disabled === true || change.role ? " (their console sessions have ended)" : "");
}

/** A payload checked here: the gzip'd tar at `path` (removed on dispose when made here). */
interface LocalPayload extends AsyncDisposable {
  /** The gzip'd tar file to send or sign. */
  path: string;
  /** What it holds. */
  summary: PayloadSummary;
}

/**
 * The payload to publish from `source`: a folder, archived here once into a temporary file (so
 * the bytes checked are the bytes sent), or a gzip'd tar file as `tar czf p.tgz -C dir .` makes,
 * taken as it is. Either is checked as an appliance will unpack it ({@link inspectPayload})
 * before anything is signed or sent; a bad one is a usage error naming the problem.
 */
async function localPayload(source: string): Promise<LocalPayload> {
  const info = await Deno.stat(source).catch(() => null);
  if (!info || (!info.isDirectory && !info.isFile)) {
    throw new UsageError(`"${source}" is neither a folder nor a payload file (.tgz)`);
  }
  let path = source, made = false;
  if (info.isDirectory) {
    await checkPayloadDir(source);
    path = await Deno.makeTempFile({ prefix: "noc-payload-", suffix: ".tgz" });
    made = true;
  }
  const dispose = async () => {
    if (made) await Deno.remove(path).catch(() => {});
  };
  try {
    if (made) {
      using f = await Deno.open(path, { write: true, truncate: true });
      try {
        for await (const c of gzip(createTar(source))) await writeAll(f, c);
      } catch (e) {
        if (e instanceof TarError) throw new UsageError(`"${source}": ${e.message}`);
        throw e;
      }
    }
    let summary: PayloadSummary;
    try {
      summary = await inspectPayload(readFileFrom(path));
    } catch (e) {
      if (!(e instanceof PayloadError)) throw e;
      throw new UsageError(`"${source}" is not a payload an appliance can install: ${e.message}`);
    }
    return { path, summary, [Symbol.asyncDispose]: dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}

async function writeAll(f: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await f.write(bytes.subarray(at));
}

/** The folder checks that name the problem better than the archive's would. */
async function checkPayloadDir(path: string): Promise<void> {
  const install = await Deno.stat(`${path}/install`).catch(() => null);
  if (!install?.isFile) {
    throw new UsageError(`"${path}" has no install program (a file named "install")`);
  }
  if (install.mode !== null && (install.mode & 0o111) === 0) {
    throw new UsageError(`"${path}/install" is not executable (chmod +x it)`);
  }
}

/**
 * The text of the key file `path` (at most {@link MAX_KEY_TEXT} bytes); a usage error naming
 * `what` when it cannot be read or is longer.
 */
async function readKeyText(path: string, what: string): Promise<string> {
  const info = await Deno.stat(path).catch((e: Error) => {
    throw new UsageError(`${what} cannot be read: ${e.message}`);
  });
  if (!info.isFile) throw new UsageError(`${what} is not a file`);
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(MAX_KEY_TEXT + 1);
  let n = 0;
  while (n < buf.length) {
    const r = await f.read(buf.subarray(n));
    if (r === null) break;
    n += r;
  }
  if (n > MAX_KEY_TEXT) {
    throw new UsageError(`${what} is longer than ${MAX_KEY_TEXT} bytes: not a key`);
  }
  return new TextDecoder().decode(buf.subarray(0, n));
}

/** `fn()`, with a {@link KeyFormatError} turned into a usage error (bad local input). */
function keyUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof KeyFormatError) throw new UsageError(e.message);
    throw e;
  }
}

/**
 * The offline release key in the file `path` (given with `flagName`): an Ed25519 private key in
 * PEM/PKCS#8 (`openssl genpkey -algorithm ed25519`) or a seed written by `noc keygen`. Both forms
 * of one key give the same key id. A usage error names any other content.
 */
async function releaseKey(
  path: string,
  flagName = "--key",
): Promise<{ kid: string; privateKey: CryptoKey; publicKey: string }> {
  const what = `${flagName} "${path}"`;
  const text = await readKeyText(path, what);
  const seed = keyUsage(() => readEd25519Seed(text, what));
  const privateKey = await importEd25519Seed(seed);
  seed.fill(0);
  const raw = new Uint8Array(await exportRawPublic(await ed25519PublicOf(privateKey)));
  return { kid: await keyId(raw), privateKey, publicKey: toBase64Url(raw) };
}

/**
 * The `<public key>` of `release-key add` as the NOC takes it (43 base64url characters): given
 * in that form, in PEM (`openssl pkey -in k.pem -pubout`) on the line, or as a file holding
 * either. A usage error names a private key, another algorithm, or a weak key.
 */
async function publicKeyArg(arg: string): Promise<string> {
  let text = arg, what = "<public key>";
  if (!/^[A-Za-z0-9_-]{43}$/.test(arg) && !looksLikePem(arg)) {
    if (!(await Deno.stat(arg).catch(() => null))) {
      throw new UsageError(
        `<public key> "${arg.slice(0, 80)}" is neither a public key (43 base64url characters or ` +
          `PEM) nor a file holding one`,
      );
    }
    what = `Public key file "${arg}"`;
    text = await readKeyText(arg, what);
  }
  const publicKey = keyUsage(() => readEd25519PublicKey(text, what));
  try {
    await parsePublicKey(publicKey, "Ed25519");
  } catch (e) {
    throw new UsageError(`${what}: ${(e as Error).message}`);
  }
  return publicKey;
}

const signedFileinfoFile = z.strictObject({
  app: nameSchema,
  name: nameSchema,
  fileinfo: signedFileinfoSchema,
});

async function putFileinfo(ctx: Ctx, app: string, name: string, body: unknown): Promise<string> {
  const answer = await call(ctx, "PUT", `/v1/admin/apps/${seg(app)}/fileinfo/${seg(name)}`, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return json(answer);
}

/** The NOC's X25519 key: `--noc-key`, or the NOC's answer to `GET /v1/keys`; checked. */
async function nocEncryptionKey(ctx: Ctx): Promise<Uint8Array<ArrayBuffer>> {
  const given = flag(ctx, "noc-key");
  const text = given ?? read(nocKeys, await call(ctx, "GET", "/v1/keys")).encryptionKey;
  try {
    return await parsePublicKey(text, "X25519");
  } catch (e) {
    if (given !== undefined) throw new UsageError(`--noc-key: ${(e as Error).message}`);
    throw new CliError(`The NOC's encryption key: ${(e as Error).message}`);
  }
}

async function uploadPackageFile(ctx: Ctx, file: string, wrapped: string): Promise<unknown> {
  using f = await Deno.open(file, { read: true });
  return await call(ctx, "POST", "/v1/admin/packages", {
    headers: { "content-type": "application/vnd.noc-package", "x-noc-wrapped-key": wrapped },
    body: f.readable,
  });
}

/** Aligned columns for people. */
function table(head: string[], rows: Array<Array<string | number>>): string {
  if (rows.length === 0) return "(none)";
  const cells = [head, ...rows.map((r) => r.map((v) => String(v)))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells.map((r) => r.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

const seg = (v: string) => encodeURIComponent(v);

/** A token's `reenrolment` as the CLI words it. */
function reenrolmentText(mode: string): string {
  return mode === "supersede"
    ? "supersede (an active appliance of the same host name at the site is retired, linked)"
    : mode === "refuse"
    ? "refuse (enrolling under the host name of an active appliance at the site: 409)"
    : mode;
}

/** What each command (and subcommand) does; returns what to print. */
const handlers: Record<string, (ctx: Ctx) => Promise<string>> = {
  async package(ctx) {
    const ref = { app: need(ctx, "app"), name: need(ctx, "name"), version: need(ctx, "version") };
    const keyFile = flag(ctx, "key");
    const outFile = flag(ctx, "out");
    if (!keyFile && outFile) {
      throw new UsageError("--out needs --key: only a release key can sign away from the NOC");
    }
    const signer = keyFile ? await releaseKey(keyFile) : undefined;
    await using payload = await localPayload(ctx.words[0]!);
    if (!signer) {
      const q = new URLSearchParams(ref).toString();
      using f = await Deno.open(payload.path, { read: true });
      return json(
        await call(ctx, "POST", `/v1/admin/packages?${q}`, {
          headers: { "content-type": "application/gzip" },
          body: f.readable,
        }),
      );
    }
    // Before anything is written: a wrong --noc-key (or no NOC) leaves no package behind.
    const nocKey = await nocEncryptionKey(ctx);
    const out = outFile ?? await Deno.makeTempFile({ suffix: ".nocpkg" });
    const built = await buildPackage({
      plaintext: readFileFrom(payload.path),
      ...ref,
      signer,
      out,
      now: new Date(),
    });
    const wrapped = await wrapContentKey(built.contentKey, nocKey, built.header);
    built.contentKey.fill(0);
    if (outFile) {
      await Deno.writeTextFile(`${out}.wrapped-key`, wrapped + "\n", { mode: 0o600 });
      return `Wrote ${out} (${built.fileSize} bytes, signed by ${signer.kid}) and ${out}.wrapped-key`;
    }
    try {
      return json(await uploadPackageFile(ctx, out, wrapped));
    } finally {
      await Deno.remove(out).catch(() => {});
    }
  },

  async upload(ctx) {
    const file = ctx.words[0]!;
    await readPackagePrefix(file);
    const wrapped = (await Deno.readTextFile(`${file}.wrapped-key`)).trim();
    return json(await uploadPackageFile(ctx, file, wrapped));
  },

  async "file put"(ctx) {
    const q = new URLSearchParams({
      app: need(ctx, "app"),
      name: need(ctx, "name"),
      version: need(ctx, "version"),
    });
    using f = await Deno.open(ctx.words[0]!, { read: true });
    return json(
      await call(ctx, "POST", `/v1/admin/files?${q}`, {
        headers: { "content-type": "application/octet-stream" },
        body: f.readable,
      }),
    );
  },

  async keygen(ctx) {
    const out = need(ctx, "out");
    await Deno.writeTextFile(out, newSeed() + "\n", { mode: 0o600, createNew: true });
    const k = await releaseKey(out);
    // A key starting with "-" would be read as a flag: it goes after "--", the flags before it.
    const add = k.publicKey.startsWith("-")
      ? `--label "<who holds it>" -- ${k.publicKey}`
      : `${k.publicKey} --label "<who holds it>"`;
    return `Wrote ${out} (keep it offline). Key id ${k.kid}; register its public half with:\n` +
      `  deno task noc release-key add ${add}`;
  },

  async "release-key add"(ctx) {
    const publicKey = await publicKeyArg(ctx.words[0]!);
    const notAfter = flag(ctx, "not-after");
    if (notAfter !== undefined && Number.isNaN(Date.parse(notAfter))) {
      throw new UsageError(`--not-after must be an ISO time, not "${notAfter}"`);
    }
    const by = flag(ctx, "endorse-with");
    const endorsement = by
      ? await endorseKey(publicKey, notAfter ?? null, await releaseKey(by, "--endorse-with"))
      : undefined;
    const body = await postJson(ctx, "/v1/admin/release-keys", {
      publicKey,
      label: need(ctx, "label"),
      ...(notAfter === undefined ? {} : { notAfter: new Date(notAfter).toISOString() }),
      ...(endorsement ? { endorsement } : {}),
    });
    return json(body);
  },

  async "fileinfo put"(ctx) {
    const [app, name] = ctx.words as [string, string];
    for (const [what, v] of [["<app>", app], ["<name>", name]] as const) {
      if (!nameSchema.safeParse(v).success) throw new UsageError(`${what} "${v}" is not a name`);
    }
    let action: unknown = null;
    const actionText = flag(ctx, "action");
    if (actionText !== undefined) {
      try {
        action = JSON.parse(actionText);
      } catch {
        throw new UsageError(`--action must be a JSON array of strings, not "${actionText}"`);
      }
    }
    const parsed = signedFileinfoSchema.safeParse({
      destination: need(ctx, "destination"),
      mode: need(ctx, "mode"),
      action,
      uploadDir: flag(ctx, "upload-dir") ?? null,
      uploadServer: flag(ctx, "upload-server") ?? null,
    });
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new UsageError(`fileinfo ${i.path.join(".")}: ${i.message}`);
    }
    const f = parsed.data;
    const statement: FileinfoStatement = {
      app,
      name,
      destination: f.destination,
      mode: f.mode,
      action: f.action ?? null,
      uploadDir: f.uploadDir ?? null,
      uploadServer: f.uploadServer ?? null,
    };
    const keyFile = flag(ctx, "key");
    const outFile = flag(ctx, "out");
    if (outFile && !keyFile) {
      throw new UsageError("--out needs --key: only a release key can sign away from the NOC");
    }
    const body = keyFile
      ? { ...f, ...await signFileinfo(statement, await releaseKey(keyFile)) }
      : f;
    if (outFile) {
      await Deno.writeTextFile(outFile, JSON.stringify({ app, name, fileinfo: body }) + "\n", {
        createNew: true,
      });
      return `Wrote ${outFile} (fileinfo of ${app}/${name}, signed by ${
        (body as { signer: string }).signer
      })`;
    }
    return await putFileinfo(ctx, app, name, body);
  },

  async "fileinfo upload"(ctx) {
    let saved;
    try {
      saved = signedFileinfoFile.parse(JSON.parse(await Deno.readTextFile(ctx.words[0]!)));
    } catch (e) {
      throw new UsageError(
        `"${ctx.words[0]}" is not a fileinfo written by fileinfo put --out: ${
          e instanceof Error ? e.message.slice(0, 300) : e
        }`,
      );
    }
    return await putFileinfo(ctx, saved.app, saved.name, saved.fileinfo);
  },

  async "tokens create"(ctx) {
    const tags = flag(ctx, "tags")?.split(",").map((t) => t.trim()).filter(Boolean);
    const hours = count(ctx, "hours", 1 / 60, 24 * 366);
    const site = flag(ctx, "site"), channel = flag(ctx, "channel"), label = flag(ctx, "label");
    const reenrolment = flag(ctx, "reenrolment");
    const body = await postJson(ctx, "/v1/admin/enrollment-tokens", {
      ...(site ? { site } : {}),
      ...(reenrolment ? { reenrolment } : {}),
      ...(channel ? { channel } : {}),
      ...(label ? { label } : {}),
      ...(tags?.length ? { tags } : {}),
      ...(hours !== undefined ? { ttlS: Math.round(hours * 3600) } : {}),
    });
    if (ctx.flags.json) return json(body);
    const t = read(tokenCreated, body);
    return `Enrolment token (single use, expires ${t.expiresAt}):\n  ${t.token}\n` +
      (t.reenrolment ? `Re-enrolment: ${reenrolmentText(t.reenrolment)}\n` : "") +
      `Enrol an appliance with:\n  noc-agent enroll --noc <this NOC's URL> --token ${t.token}`;
  },

  async "tokens revoke"(ctx) {
    const id = ctx.words[0]!;
    const t = await call(ctx, "DELETE", `/v1/admin/enrollment-tokens/${seg(id)}`);
    return ctx.flags.json ? json(t) : `Token ${id} revoked`;
  },

  async "tokens list"(ctx) {
    const body = await call(ctx, "GET", `/v1/admin/enrollment-tokens?${pageParams(ctx)}`);
    if (ctx.flags.json) return json(body);
    return table(
      ["id", "for", "status", "site", "label", "re-enrolment", "expires"],
      read(tokenList, body).items.map((t) => [
        t.id,
        t.purpose,
        t.status,
        t.site ?? "",
        t.label ?? "",
        t.reenrolment ?? "",
        t.expiresAt,
      ]),
    ) + more(body);
  },

  async "appliances show"(ctx) {
    const uid = ctx.words[0]!;
    const body = await call(ctx, "GET", `/v1/admin/appliances/${seg(uid)}?history=0`);
    if (ctx.flags.json) return json(body);
    const a = read(applianceDetail, body);
    const comps = (a.lastReport?.components ?? []).map((c) =>
      `  ${c.kind} ${c.app}/${c.name}@${c.version}`
    );
    return [
      `${a.hostname} (${a.uid}): ${a.state}`,
      `  model ${a.model}, site ${a.site ?? "none"}, channel ${a.channel}, tags ${
        a.tags.join(",") || "none"
      }`,
      `  last beat ${a.lastBeatAt ?? "never"}, next due ${a.nextDueAt}, agent ${
        a.agentVersion ?? "?"
      }`,
      ...(a.revokedAt ? [`  revoked ${a.revokedAt}: ${a.revokedReason ?? ""}`] : []),
      ...(a.supersededBy ? [`  superseded by ${a.supersededBy} (re-enrolled)`] : []),
      ...(a.supersedes?.length ? [`  supersedes ${a.supersedes.join(", ")}`] : []),
      `running:`,
      ...(comps.length ? comps : ["  nothing reported"]),
    ].join("\n");
  },

  async "appliances revoke"(ctx) {
    const uid = ctx.words[0]!;
    const a = await postJson(ctx, `/v1/admin/appliances/${seg(uid)}/revoke`, {
      reason: need(ctx, "reason"),
    });
    return ctx.flags.json ? json(a) : `Appliance ${uid} revoked`;
  },

  async "appliances list"(ctx) {
    const q = new URLSearchParams();
    for (const f of applianceFilters) {
      const v = flag(ctx, f);
      if (v) q.set(f, v);
    }
    const retired = flag(ctx, "retired");
    if (retired !== undefined && !["include", "only", "exclude"].includes(retired)) {
      throw new UsageError(`--retired must be include or only, not "${retired}"`);
    }
    const body = await call(ctx, "GET", `/v1/admin/appliances?${q}`);
    if (ctx.flags.json) return json(body);
    const r = read(applianceList, body);
    // A retired record's column says which record superseded it.
    const retiredShown = r.items.some((a) => a.supersededBy);
    return table(
      [
        "host name",
        "state",
        "model",
        "site",
        "last beat",
        "uid",
        ...(retiredShown ? ["superseded by"] : []),
      ],
      r.items.map((a) => [
        a.hostname,
        a.state,
        a.model,
        a.site ?? "",
        a.lastBeatAt ?? "never",
        a.uid,
        ...(retiredShown ? [a.supersededBy ?? ""] : []),
      ]),
    ) + (r.nextCursor ? `\n(more: --cursor ${r.nextCursor})` : "");
  },

  async "alerts ack"(ctx) {
    const id = ctx.words[0]!;
    const a = await call(ctx, "POST", `/v1/admin/alerts/${seg(id)}/ack`);
    return ctx.flags.json ? json(a) : `Alert ${id} acknowledged`;
  },

  async "alerts list"(ctx) {
    const status = flag(ctx, "status") ?? "open";
    const q = pageParams(ctx);
    q.set("status", status);
    const body = await call(ctx, "GET", `/v1/admin/alerts?${q}`);
    if (ctx.flags.json) return json(body);
    return table(
      ["id", "kind", "appliance", "opened", "acknowledged", "resolved"],
      read(alertList, body).items.map((a) => [
        a.id,
        a.kind,
        a.hostname ?? a.uid ?? "",
        a.openedAt,
        a.acknowledgedAt ? `by ${a.acknowledgedBy ?? "?"}` : "",
        a.resolvedAt ?? "",
      ]),
    ) + more(body);
  },

  async assign(ctx) {
    const target = flag(ctx, "target") ?? "all";
    const m = /^(model|site|channel|tag|appliance)=(.+)$/.exec(target);
    if (target !== "all" && !m) {
      throw new UsageError(
        `--target must be all or <model|site|channel|tag|appliance>=<value>, not "${target}"`,
      );
    }
    const kind = flag(ctx, "kind") ?? "package";
    const [app, name, version] = [need(ctx, "app"), need(ctx, "name"), need(ctx, "version")];
    const rolloutPercent = count(ctx, "rollout", 0, 100, true) ?? 100;
    const gate = count(ctx, "gate", 1, 100, true);
    const minSample = count(ctx, "min-sample", 1, 100000, true);
    let body: unknown;
    try {
      body = await postJson(ctx, "/v1/admin/assignments", {
        kind,
        app,
        name,
        version,
        target: m ? { type: m[1], value: m[2] } : { type: "all" },
        rolloutPercent,
        ...(gate === undefined ? {} : { failureThresholdPercent: gate }),
        ...(minSample === undefined ? {} : { minSample }),
        ...(ctx.flags["allow-unknown-target"] ? { allowUnknownTarget: true } : {}),
        ...(ctx.flags.urgent ? { urgent: true } : {}),
      });
    } catch (e) {
      // Not published as this kind: say so when it is published as the other one.
      if (!(e instanceof CliError) || !e.message.startsWith("NOC answered 404")) throw e;
      const other = kind === "package" ? "file" : kind === "file" ? "package" : null;
      if (other === null) throw e;
      const q = new URLSearchParams({ kind: other, app, name });
      const listed = await call(ctx, "GET", `/v1/admin/components?${q}`).catch(() => null);
      const items = (listed as { items?: Array<{ version?: unknown }> } | null)?.items ?? [];
      if (!items.some((c) => c.version === version)) throw e;
      throw new CliError(
        `${e.message} (${app}/${name} ${version} is a ${other}: add --kind ${other})`,
      );
    }
    if (ctx.flags.json) return json(body);
    const a = read(assignment, body);
    const gated = a.failureThresholdPercent
      ? `, gate ${a.failureThresholdPercent}% failed of at least ${a.minSample ?? "?"}`
      : ", no health gate";
    return `Assignment ${a.id}: ${a.kind} ${a.app}/${a.name}@${a.version} to ${target}, rollout ${a.rolloutPercent}%${gated}${
      a.urgent ? ", urgent (installs outside install windows)" : ""
    }`;
  },

  async wake(ctx) {
    const uid = flag(ctx, "uid"), site = flag(ctx, "site");
    const given = [uid, site, ctx.flags.all].filter((v) => v !== undefined && v !== false);
    if (given.length !== 1) throw new UsageError("wake needs one of --uid U, --site S or --all");
    const body = uid ? { uid } : site ? { site } : { all: true };
    const r = await postJson(ctx, "/v1/admin/wake", body);
    return ctx.flags.json ? json(r) : `Woken: ${JSON.stringify(body)}`;
  },

  async "operator list"(ctx) {
    const body = await call(ctx, "GET", `/v1/admin/operators?${pageParams(ctx)}`);
    if (ctx.flags.json) return json(body);
    const r = read(operatorList, body);
    if (r.items.length === 0) return "No operators (the admin token signs in as admin).";
    return r.items.map((o) => {
      const live = o.tokens.filter((t) => t.revokedAt === null);
      return `${o.name}\t${o.role}\t${o.disabledAt ? `disabled ${o.disabledAt}` : "enabled"}\t` +
        `password ${o.hasPassword ? "set" : "none"}\tlast sign-in ${o.lastSignInAt ?? "never"}` +
        live.map((t) => `\n  token ${t.id} "${t.label}" (${t.createdAt})`).join("");
    }).join("\n") + more(body);
  },

  async "operator add"(ctx) {
    const name = operatorArg(ctx.words[0]!);
    const { password, made } = await passwordOf(ctx);
    const body = await postJson(ctx, "/v1/admin/operators", {
      name,
      role: roleFlag(ctx),
      password,
    });
    if (ctx.flags.json) return json(body);
    const o = read(operator, body);
    return `Operator ${o.name} (${o.role}) created.` +
      (made ? `\nPassword (shown once; give it to ${o.name}): ${password}` : "");
  },

  async "operator role"(ctx) {
    return await patchOperator(ctx, { role: roleFlag(ctx) });
  },

  async "operator disable"(ctx) {
    return await patchOperator(ctx, { disabled: true });
  },

  async "operator enable"(ctx) {
    return await patchOperator(ctx, { disabled: false });
  },

  async "operator password"(ctx) {
    const name = operatorArg(ctx.words[0]!);
    const { password, made } = await passwordOf(ctx);
    const body = await postJson(ctx, `/v1/admin/operators/${name}/password`, { password });
    if (ctx.flags.json) return json(body);
    return `Password of ${name} set; their console sessions have ended.` +
      (made ? `\nNew password (shown once): ${password}` : "");
  },

  async "operator token"(ctx) {
    const name = operatorArg(ctx.words[0]!);
    const body = await postJson(ctx, `/v1/admin/operators/${name}/tokens`, {
      label: flag(ctx, "label") ?? "cli",
    });
    if (ctx.flags.json) return json(body);
    const t = read(z.object({ id: idSchema, token: z.string() }), body);
    return `Personal token ${t.id} of ${name} (shown once; use as --token or NOC_TOKEN):\n  ${t.token}`;
  },

  async "operator revoke-token"(ctx) {
    const name = operatorArg(ctx.words[0]!);
    const id = ctx.words[1]!;
    if (!/^[1-9][0-9]{0,14}$/.test(id)) {
      throw new UsageError(`<id> must be a token id, not "${id}"`);
    }
    await call(ctx, "DELETE", `/v1/admin/operators/${name}/tokens/${id}`);
    return ctx.flags.json ? json({ revoked: Number(id) }) : `Token ${id} of ${name} revoked.`;
  },

  async audit(ctx) {
    const q = new URLSearchParams();
    for (
      const [flagName, param] of [
        ["actor", "actor"],
        ["path", "path"],
        ["target", "target"],
        ["since", "since"],
        [
          "until",
          "until",
        ],
        ["limit", "limit"],
        ["cursor", "before"],
      ] as const
    ) {
      const v = flag(ctx, flagName);
      if (v !== undefined) q.set(param, v);
    }
    if (ctx.flags.csv) {
      q.delete("limit");
      q.set("format", "csv");
      const text = await call(ctx, "GET", `/v1/admin/audit?${q}`);
      return String(text).replace(/\r\n$/, "");
    }
    const body = await call(ctx, "GET", `/v1/admin/audit?${q}`);
    if (ctx.flags.json) return json(body);
    const r = read(auditPage, body);
    if (r.items.length === 0) return "No audit records match.";
    // Control characters (a terminal escape in a path or name) are shown as their pictures.
    const shown = (t: string) =>
      t.replace(
        // deno-lint-ignore no-control-regex
        /[\u0000-\u001f\u007f]/g,
        (ch) => String.fromCharCode(ch === "\u007f" ? 0x2421 : 0x2400 + ch.charCodeAt(0)),
      );
    const lines = r.items.map((a) =>
      `${a.at}\t${shown(a.actor)} (${a.role ?? "-"}, ${a.via})\t${a.method} ${shown(a.path)}\t` +
      `${a.status ?? "outcome unknown"}${a.error ? ` ${a.error}` : ""}\tfrom ${a.address ?? "?"}` +
      (a.affected && a.affected.length > 1 ? `\t${a.affected.length} targets` : "")
    );
    if (r.nextCursor) lines.push(`More: --cursor ${r.nextCursor}`);
    return lines.join("\n");
  },

  async "rollouts list"(ctx) {
    const q = new URLSearchParams();
    for (const f of ["state", "limit", "cursor"] as const) {
      const v = flag(ctx, f);
      if (v !== undefined) q.set(f, v);
    }
    const body = await call(ctx, "GET", `/v1/admin/rollouts?${q}`);
    return ctx.flags.json ? json(body) : ro.listText(read(ro.rolloutList, body));
  },

  async "rollouts show"(ctx) {
    const body = await call(ctx, "GET", `/v1/admin/rollouts/${rolloutId(ctx)}`);
    return ctx.flags.json ? json(body) : ro.detailText(read(ro.rolloutDetail, body));
  },

  async "rollouts appliances"(ctx) {
    const id = rolloutId(ctx);
    const q = new URLSearchParams();
    const phases = ctx.flags.phase ?? [];
    if (phases.length > 1) throw new UsageError("--phase: give one phase to list (1 = the first)");
    if (phases[0] !== undefined) {
      if (!/^[1-9][0-9]?$/.test(phases[0])) {
        throw new UsageError(`--phase must be a phase number (1 = the first), not "${phases[0]}"`);
      }
      q.set("phase", String(Number(phases[0]) - 1));
    }
    for (const f of ["state", "after", "limit"] as const) {
      const v = flag(ctx, f);
      if (v !== undefined) q.set(f, v);
    }
    const body = await call(ctx, "GET", `/v1/admin/rollouts/${id}/appliances?${q}`);
    return ctx.flags.json ? json(body) : ro.membersText(read(ro.rolloutMembers, body));
  },

  async "rollouts create"(ctx) {
    const planFile = flag(ctx, "plan");
    let plan: unknown;
    if (planFile !== undefined) {
      const others = flagsOf(commands.rollouts!.forms.create!).filter((n) =>
        !["plan", "json", "noc", "token"].includes(n) && ctx.flags[n] !== undefined
      );
      if (others.length > 0) {
        throw new UsageError(`--plan gives the whole rollout: drop --${others[0]}`);
      }
      let text: string;
      try {
        text = await Deno.readTextFile(planFile);
      } catch (e) {
        throw new UsageError(`--plan "${planFile}" cannot be read: ${(e as Error).message}`);
      }
      try {
        plan = JSON.parse(text);
      } catch (e) {
        throw new UsageError(`--plan "${planFile}" is not JSON: ${(e as Error).message}`);
      }
      ro.checkedBody(plan, `--plan "${planFile}"`);
    } else {
      plan = ro.rolloutBodyFromFlags({
        kind: flag(ctx, "kind") ?? "package",
        app: need(ctx, "app"),
        name: need(ctx, "name"),
        version: need(ctx, "version"),
        target: flag(ctx, "target") ?? "all",
        phases: ctx.flags.phase ?? [],
        rollback: ctx.flags.rollback === true,
        previousVersion: flag(ctx, "previous-version"),
        metric: flag(ctx, "metric"),
        maxDrop: flag(ctx, "max-drop"),
        maxRise: flag(ctx, "max-rise"),
        minAppliances: flag(ctx, "min-appliances"),
        minBeats: flag(ctx, "min-beats"),
        maxUnhealthy: flag(ctx, "max-unhealthy"),
        maxExtraMissed: flag(ctx, "max-extra-missed"),
        maxFailed: flag(ctx, "max-failed"),
        minSample: flag(ctx, "min-sample"),
        minHealthy: flag(ctx, "min-healthy"),
        note: flag(ctx, "note"),
      });
    }
    const body = await postJson(ctx, "/v1/admin/rollouts", plan);
    if (ctx.flags.json) return json(body);
    const r = read(ro.rolloutDetail, body);
    const first = r.phases[0]!;
    return `Rollout ${r.id}: ${ro.releaseOf(r)} to ${ro.targetText(r)} in ${r.phaseCount} ` +
      `phase${r.phaseCount === 1 ? "" : "s"} (from ${r.previousVersion ?? "none"}, rollback ` +
      `${r.rollback ? "on" : "off"}); phase 1 started with ${
        ro.appliancesText(first.members)
      }, control ` +
      `${r.control}.\nFollow it: noc rollouts show ${r.id}`;
  },

  async "rollouts pause"(ctx) {
    return await rolloutAction(ctx, "pause");
  },

  async "rollouts resume"(ctx) {
    return await rolloutAction(ctx, "resume");
  },

  async "rollouts cancel"(ctx) {
    return await rolloutAction(ctx, "cancel");
  },

  async "rollouts advance"(ctx) {
    return await rolloutAction(ctx, "advance");
  },

  async whoami(ctx) {
    const body = await call(ctx, "GET", "/v1/admin/me");
    if (ctx.flags.json) return json(body);
    const me = read(z.object({ name: z.string(), role: z.string() }), body);
    return `${me.name} (${me.role})`;
  },

  async "local-servers token"(ctx) {
    const label = flag(ctx, "label");
    const body = await postJson(ctx, "/v1/admin/enrollment-tokens", {
      purpose: "local-server",
      site: need(ctx, "site"),
      ...(label ? { label } : {}),
    });
    if (ctx.flags.json) return json(body);
    const t = read(tokenCreated, body);
    const site = t.site ?? need(ctx, "site");
    return `Local server token for site "${site}" (single use, expires ${t.expiresAt}):\n` +
      `  ${t.token}\n` +
      `Start the site's server with:\n  deno task local -- --upstream <this NOC's URL> --site ${site} --token ${t.token}`;
  },

  async "local-servers revoke"(ctx) {
    return json(
      await postJson(ctx, `/v1/admin/local-servers/${seg(ctx.words[0]!)}/revoke`, {
        reason: need(ctx, "reason"),
      }),
    );
  },

  async "install-windows list"(ctx) {
    const q = pageParams(ctx);
    const scope = flag(ctx, "scope");
    if (scope !== undefined) q.set("scope", windowScope(scope, "--scope"));
    const body = await call(ctx, "GET", `/v1/admin/install-windows?${q}`);
    if (ctx.flags.json) return json(body);
    const r = read(installWindowList, body);
    if (r.items.length === 0) {
      return "No install windows: appliances install at any time." + more(body);
    }
    return table(
      ["for", "window", "time zone", "reason", "set by", "at"],
      r.items.map((w) => [
        `${w.scope} ${w.value}`,
        `${w.start}-${w.end}`,
        w.timeZone,
        w.reason,
        w.updatedBy ?? "",
        w.updatedAt ?? "",
      ]),
    ) + more(body);
  },

  async "install-windows set"(ctx) {
    const scope = windowScope(ctx.words[0]!, "<scope>");
    const value = ctx.words[1]!;
    const start = timeOfDay(ctx, "start"), end = timeOfDay(ctx, "end");
    if (start === end) {
      throw new UsageError(
        "--start and --end are the same time: a window must be open part of the day",
      );
    }
    const timeZone = need(ctx, "tz");
    if (!knownTimeZone(timeZone)) {
      throw new UsageError(
        `--tz must be an IANA time zone (Europe/Berlin, UTC), not "${timeZone}"`,
      );
    }
    const reason = flag(ctx, "reason");
    const body = await call(ctx, "PUT", `/v1/admin/install-windows/${scope}/${seg(value)}`, {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        start,
        end,
        timeZone,
        ...(reason === undefined ? {} : { reason }),
        ...(ctx.flags["allow-unknown"] ? { allowUnknown: true } : {}),
      }),
    });
    if (ctx.flags.json) return json(body);
    const w = read(installWindow, body);
    return `Install window of ${w.scope} ${w.value}: ${w.start}-${w.end} ${w.timeZone}`;
  },

  async "install-windows remove"(ctx) {
    const scope = windowScope(ctx.words[0]!, "<scope>");
    const value = ctx.words[1]!;
    await call(ctx, "DELETE", `/v1/admin/install-windows/${scope}/${seg(value)}`);
    if (ctx.flags.json) return json({ removed: { scope, value } });
    return `Removed the install window of ${scope} ${value}`;
  },

  async "local-servers list"(ctx) {
    const q = pageParams(ctx);
    const site = flag(ctx, "site");
    if (site) q.set("site", site);
    const body = await call(ctx, "GET", `/v1/admin/local-servers?${q}`);
    if (ctx.flags.json) return json(body);
    const r = read(localServerList, body);
    if (r.items.length === 0) return "No local component servers.";
    const mib = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MiB`;
    return r.items.map((s) =>
      [
        `${s.site}\t${s.name}\t${s.state}\t${s.url}`,
        `  id ${s.id}, last contact ${s.lastContactAt ?? "never"}`,
        `  cache ${mib(s.cache.bytes)} of ${
          mib(s.cache.limit)
        }, ${s.cache.entries} held, ${s.cache.staged} staged`,
        `  hit rate ${
          s.hitRate === null ? "-" : `${Math.round(s.hitRate * 100)}%`
        } (${s.hits} hits, ${s.misses} misses), ` +
        `${s.pendingRecords} records pending, ${s.problems.length} problems`,
      ].join("\n")
    ).join("\n") + more(body);
  },
};

/**
 * Runs the CLI with `args`; returns what to print (the usage, for `--help`). Throws
 * {@link UsageError} for a usage error (exit 64) and {@link CliError} for a failure.
 */
export async function runCli(args: readonly string[]): Promise<string> {
  const { values: flags, positionals } = parseCli(args);
  const [command, ...rest] = positionals;
  if (command === undefined || command === "help") {
    const about = rest[0];
    if (about !== undefined && !(about in commands)) {
      throw new UsageError(`Unknown command "${about}" (noc --help lists them)`);
    }
    if (command === "help" || flags.help) return usage(about);
    throw new UsageError(`Missing command (noc --help lists them)`);
  }
  const c = commands[command];
  if (!c) throw new UsageError(`Unknown command "${command}" (noc --help lists them)`);
  if (flags.help) return usage(command);
  const hasSubs = !("" in c.forms);
  const sub = hasSubs ? rest[0] ?? c.default ?? "" : "";
  const f = c.forms[sub];
  if (!f) {
    throw new UsageError(
      sub === ""
        ? `"noc ${command}" needs a subcommand: ${Object.keys(c.forms).join(", ")}`
        : `Unknown subcommand "${sub}" of "noc ${command}" (one of ${
          Object.keys(c.forms).join(", ")
        })`,
    );
  }
  const words = hasSubs ? rest.slice(1) : rest;
  const line = formLine(command, sub, f, false);
  onlyFlags(flags, flagsOf(f), line.replace(/ <.*$/, ""));
  if (words.length > f.args.length) {
    throw new UsageError(
      `Unexpected argument "${words[f.args.length]!.slice(0, 80)}" (usage: ${line})`,
    );
  }
  if (words.length < f.args.length) {
    throw new UsageError(`Missing ${f.args[words.length]} (usage: ${line})`);
  }
  return await handlers[`${command} ${sub}`.trim()]!({ flags, words });
}

if (import.meta.main) {
  try {
    console.log(await runCli(Deno.args));
  } catch (e) {
    console.error(`noc: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(e instanceof UsageError ? usageExitCode : e instanceof CliError ? e.code : 1);
  }
}
