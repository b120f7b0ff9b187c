/**
 * Command-line parsing shared by every program here (the NOC's `main.ts`, the local component
 * server, the agent and the operator CLI): `parseArgs` from `node:util` in strict mode, with the
 * same rules everywhere:
 *
 * - flags may come in any order, before or after commands and positional words;
 * - a boolean flag takes no value (`--json show <uid>` is the flag and two words; `--json=yes` is
 *   refused); a string flag takes the next word or `--flag=value`;
 * - `--help` and `-h` are declared on every command: the program prints its usage to stdout and
 *   exits 0;
 * - an unknown flag, a missing value or an unexpected word is a {@link UsageError} whose message
 *   names it; programs print it to stderr and exit {@link usageExitCode} (64, `EX_USAGE`);
 * - `deno task <task> -- …` passes its `--` through to the program: a program without positional
 *   words ignores every `--`; one with them ignores a leading `--` (a later one ends the flags, so
 *   a word that starts with `-` can follow it).
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** The exit code of every usage or configuration error (`EX_USAGE` from sysexits.h). */
export const usageExitCode = 64;

/** A usage error: its message names the flag or word to fix. */
export class UsageError extends Error {
  override name = "UsageError";
}

const helpOption = { help: { type: "boolean", short: "h" } } as const;

/**
 * Parses `args` against `options` (plus `--help`/`-h`) in strict mode; throws {@link UsageError}.
 * With `positionals: false`, any word that is not a flag or a flag's value is refused.
 */
export function parseCommandLine<const O extends ParseArgsOptionsConfig>(
  args: readonly string[],
  options: O,
  { positionals = false }: { positionals?: boolean } = {},
) {
  const given = positionals
    ? (args[0] === "--" ? args.slice(1) : [...args])
    : args.filter((a) => a !== "--");
  try {
    return parseArgs({
      args: given,
      options: { ...options, ...helpOption },
      strict: true,
      allowPositionals: positionals,
    });
  } catch (e) {
    throw usageErrorOf(e);
  }
}

/** Turns a `node:util` `parseArgs` error into a {@link UsageError} naming the flag; others pass. */
export function usageErrorOf(e: unknown): unknown {
  if (
    !(e instanceof Error) || !("code" in e) || typeof e.code !== "string" ||
    !e.code.startsWith("ERR_PARSE_ARGS_")
  ) {
    return e;
  }
  // parseArgs quotes the flag as '--name', '--name <value>' or '-n, --name <value>'.
  const flag = /'(?:-[^-], )?(--?[^' ,]+)/.exec(e.message)?.[1];
  if (e.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const word = /^Unexpected argument '(.*)'\. /s.exec(e.message)?.[1];
    return new UsageError(`Unexpected argument "${word ?? e.message}"`);
  }
  if (flag === undefined) return new UsageError(e.message);
  if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return new UsageError(`Unknown flag "${flag}"`);
  if (/does not take an argument/.test(e.message)) {
    return new UsageError(`Flag "${flag}" takes no value`);
  }
  if (/ambiguous/.test(e.message)) {
    return new UsageError(
      `Flag "${flag}" needs a value, not the flag after it (write ${flag}=<value> for a value starting with "-")`,
    );
  }
  if (/missing/.test(e.message)) return new UsageError(`Flag "${flag}" needs a value`);
  return new UsageError(e.message);
}

/** Refuses every flag in `given` outside `allowed`, naming the first with `command`. */
export function onlyFlags(
  given: Record<string, unknown>,
  allowed: readonly string[],
  command: string,
): void {
  for (const name of Object.keys(given)) {
    if (name !== "help" && !allowed.includes(name)) {
      throw new UsageError(`Unknown flag "--${name}" for "${command}"`);
    }
  }
}
