/**
 * Statement fragments: pieces of one SQL statement whose text is constant and whose values are
 * always parameters, joined into one tagged-template call. For statements built from a shared
 * common table expression plus a per-use tail (noc/services/rollouts.ts `classified`), without
 * ever building SQL text from input.
 *
 * @module
 */
import type { Param, Sql } from "./db.ts";

/** A piece of a statement: constant SQL text and the values between its pieces. */
export interface Fragment {
  /** The constant text pieces (as a template literal's strings). */
  strings: readonly string[];
  /** The values between them, sent as parameters. */
  values: Param[];
}

/** Tags a template literal as a {@link Fragment}: `fragment\`select … ${value}\``. */
export const fragment = (strings: TemplateStringsArray, ...values: Param[]): Fragment => ({
  strings: [...strings],
  values,
});

/** Fragments joined, in order, into one (their text stays constant). */
export function concat(...parts: Fragment[]): Fragment {
  const strings: string[] = [];
  const values: Param[] = [];
  for (const p of parts) {
    if (strings.length === 0) strings.push(...p.strings);
    else {
      strings[strings.length - 1] += p.strings[0]!;
      strings.push(...p.strings.slice(1));
    }
    values.push(...p.values);
  }
  return { strings, values };
}

/** Runs fragments, in order, as one statement on `sql`. */
export function runFragments<T>(sql: Sql, ...parts: Fragment[]): Promise<T[]> {
  const { strings, values } = concat(...parts);
  const t = Object.assign([...strings], { raw: [...strings] }) as unknown as TemplateStringsArray;
  return sql<T>(t, ...values);
}
