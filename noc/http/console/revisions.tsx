/**
 * Versioned console forms (issue 22 item 2). A form that changes a resource carries the revision
 * it was rendered from (`revision`, sent to the admin API as `If-Match`) and the values its
 * editable fields had then (`was.<field>`); its handler sends only the fields whose posted value
 * differs from that original ({@link touched}), so a field the operator left alone never undoes
 * someone else's change. When the resource changed since the page was loaded the API refuses the
 * change (409 `stale_revision`) and the page comes back with the current state and
 * {@link staleText}, never "saved".
 *
 * @module
 */
import { field } from "./page.ts";
import { refusedAs } from "./admin_client.ts";

/**
 * The hidden fields of a versioned form: `revision` (the resource's, as rendered) and, for each
 * editable field, its value as rendered (`was.<name>`).
 */
export function Versioned(
  props: { revision: number | undefined; was?: Record<string, string> },
) {
  return (
    <>
      {props.revision !== undefined && (
        <input type="hidden" name="revision" value={String(props.revision)} />
      )}
      {Object.entries(props.was ?? {}).map(([name, value]) => (
        <input type="hidden" name={`was.${name}`} value={value} />
      ))}
    </>
  );
}

/**
 * The admin API call options of a versioned form: `If-Match` with the revision it carries (none
 * when it carries none, e.g. a form rendered before this release: the last writer wins).
 */
export function ifMatch(form: Record<string, unknown>): { headers?: Record<string, string> } {
  const r = field(form, "revision");
  return /^[1-9][0-9]{0,14}$/.test(r) ? { headers: { "if-match": `"${r}"` } } : {};
}

/**
 * True when the operator changed field `name`: its posted value differs from the value it was
 * rendered with (`was.<name>`; a checkbox posts "" when unchecked). A form without the original
 * counts every field as changed.
 */
export function touched(form: Record<string, unknown>, name: string): boolean {
  if (!(`was.${name}` in form)) return true;
  return field(form, name) !== field(form, `was.${name}`);
}

/** The flash of a change refused as stale: what the resource is now (`now`), nothing saved. */
export function staleText(now: string | null): string {
  return `Changed by someone else since you loaded this page${
    now === null ? " (it no longer exists)" : ` (now: ${now})`
  }. Nothing was saved: here is the current state.`;
}

/**
 * What a refused admin API call says, for the flash: {@link staleText} with `describe(current)`
 * for a 409 `stale_revision`, else its message and the fields it names (as `refusal`).
 */
export async function refusalOf(
  res: { status: number; text(): Promise<string> },
  // deno-lint-ignore no-explicit-any
  describe: (current: any) => string,
): Promise<string> {
  const text = await res.text();
  let body: Record<string, unknown> | null = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the status says it
  }
  if (res.status === 409 && body?.["error"] === "stale_revision") {
    const current = body["current"];
    return staleText(current === null || current === undefined ? null : describe(current));
  }
  if (body === null || typeof body !== "object") return `Failed (${res.status})`;
  return refusedAs(
    body as { message?: string; issues?: Array<{ path: string; message: string }> },
    res.status,
  );
}
