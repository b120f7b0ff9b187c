/** The console's page frame and small shared pieces (hono/jsx, rendered on the server). */
import type { Child } from "hono/jsx";

/** What every page knows about the request. */
export interface PageContext {
  /** The signed-in operator's name (or admin token label). */
  label: string;
  /**
   * Their role now (`admin`, `operator`, `viewer`), to hide controls they cannot use; the admin
   * API enforces it whatever a page shows. Absent: treat as `viewer`.
   */
  role?: "admin" | "operator" | "viewer" | undefined;
  /** The session's CSRF token, put in every form. */
  csrf: string;
  /** A one-line message from the last action, if any (sealed for this session: page.ts). */
  flash?: string | undefined;
  /** A one-line refusal from the last action, if any (shown in the error style). */
  error?: string | undefined;
  /** The refused form's fields, to refill it (sealed for this session; see page.ts `kept`). */
  kept?: Record<string, string> | undefined;
  /** The console path of this request (`/ui/alerts`), which marks the current navigation entry. */
  path?: string | undefined;
}

const nav: Array<[string, string]> = [
  ["/ui", "Fleet"],
  ["/ui/appliances", "Appliances"],
  ["/ui/alerts", "Alerts"],
  ["/ui/releases", "Releases"],
  ["/ui/rollouts", "Rollouts"],
  ["/ui/tokens", "Enrolment"],
  ["/ui/local-servers", "Local servers"],
  ["/ui/maintenance", "Maintenance"],
  ["/ui/install-windows", "Install windows"],
  ["/ui/operators", "Operators"],
  ["/ui/audit", "Audit"],
];

/** True when console path `path` is the page of navigation entry `href`, or one under it. */
export function isCurrent(href: string, path: string | undefined): boolean {
  if (!path) return false;
  const p = path.length > 1 ? path.replace(/\/$/, "") : path;
  return p === href || (href !== "/ui" && p.startsWith(`${href}/`));
}

/**
 * The page frame: a skip link, the navigation (its entry for `ctx.path` marked
 * `aria-current="page"`), the flash message (success: `role="status"`; refusal: `role="alert"`,
 * its own style), a polite live region that announces live refreshes, and `main#main`
 * (refreshed in place every `live` seconds by {@link liveJs} when `live` is set: `true` is 15).
 */
export function Layout(
  props: {
    title: string;
    ctx: PageContext | null;
    live?: boolean | number;
    children?: Child;
  },
) {
  const every = props.live === true ? 15 : typeof props.live === "number" ? props.live : 0;
  const path = props.ctx?.path;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title} · Appliance NOC</title>
        <link rel="stylesheet" href="/ui/static/app.css" />
        <script src="/ui/static/live.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to main content</a>
        <header>
          <a class="brand" href="/ui">Appliance NOC</a>
          {props.ctx && (
            <nav aria-label="Console">
              {nav.map(([href, text]) => (
                <a href={href} aria-current={isCurrent(href, path) ? "page" : undefined}>{text}</a>
              ))}
              <form method="post" action="/ui/logout" class="inline">
                <Csrf ctx={props.ctx} />
                <button type="submit" class="link">Sign out ({props.ctx.label})</button>
              </form>
            </nav>
          )}
        </header>
        {props.ctx?.flash && <p class="flash ok" role="status">{props.ctx.flash}</p>}
        {props.ctx?.error && <p class="flash error" role="alert">{props.ctx.error}</p>}
        <p id="live-status" class="sr-only" aria-live="polite"></p>
        <main id="main" tabindex={-1} data-live={every > 0 ? String(every) : undefined}>
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** The hidden CSRF field every form carries. */
export function Csrf(props: { ctx: PageContext }) {
  return <input type="hidden" name="_csrf" value={props.ctx.csrf} />;
}

/**
 * The confirmation step of an irreversible action: what it will do, then a form posting `fields`
 * (plus `confirmed=yes`) to `action` with a danger button named `button`, and a way back to
 * `cancel`. Render it from the action's GET route (so the first click only asks), or from its POST
 * when `confirmed` is not `yes`; the action is done only when `confirmed=yes` arrives.
 */
export function Confirm(
  props: {
    ctx: PageContext;
    what: string;
    action: string;
    button: string;
    cancel: string;
    fields?: Record<string, string>;
    children?: Child;
  },
) {
  return (
    <form method="post" action={props.action} class="panel confirm">
      <Csrf ctx={props.ctx} />
      <input type="hidden" name="confirmed" value="yes" />
      {Object.entries(props.fields ?? {}).map(([k, v]) => (
        <input
          type="hidden"
          name={k}
          value={v}
        />
      ))}
      <p>{props.what}</p>
      {props.children}
      <button type="submit" class="danger">{props.button}</button>
      <a href={props.cancel}>Cancel</a>
    </form>
  );
}

/**
 * A paged list's footer (docs/operations.md, "Lists and paging"): how many rows this page shows,
 * whether more exist and the link to the next page (`path` with `keep` and `param` = the API's
 * `nextCursor`), or a link back to the first page when this is not it. `id` names the footer
 * (`<id>-pages`, the links' fragment).
 */
export function Pager(
  props: {
    id: string;
    what: string;
    shown: number;
    next: string | null | undefined;
    first: boolean;
    path: string;
    param?: string;
    keep?: Record<string, string>;
  },
) {
  const keep = props.keep ?? {};
  const q = (extra: Record<string, string>) => {
    const s = new URLSearchParams({ ...keep, ...extra }).toString();
    return s ? `?${s}` : "";
  };
  const anchor = `#${props.id}-pages`;
  return (
    <nav aria-label={`${props.what} pages`} class="pages" id={`${props.id}-pages`}>
      {props.shown} {props.what} shown{props.next ? ", more exist" : ""}.{" "}
      {!props.first && <a href={`${props.path}${q({})}${anchor}`} rel="first">First page</a>}{" "}
      {props.next && (
        <a
          href={`${props.path}${q({ [props.param ?? "cursor"]: props.next })}${anchor}`}
          rel="next"
        >
          Next page of {props.what}
        </a>
      )}
    </nav>
  );
}

/** A state badge. */
export function State(props: { state: string }) {
  return <span class={`state ${props.state}`}>{props.state}</span>;
}

/** A time, shown in UTC to the minute (to the second with `seconds`), the full value on hover. */
export function Time(props: { at: string | null | undefined; seconds?: boolean }) {
  if (!props.at) return <span class="muted">never</span>;
  return (
    <time datetime={props.at} title={props.at}>
      {props.at.slice(0, props.seconds ? 19 : 16).replace("T", " ")}
    </time>
  );
}

/** Bytes in binary units. */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/**
 * The console's stylesheet. Success and refusal flashes look different (green with a tick, red
 * with a cross, both above 4.5:1 contrast). Nothing is hidden on a narrow screen: below 700 px a
 * table scrolls sideways inside its own box (never dropping a column or a control), and the
 * header, the navigation and the forms wrap.
 */
export const css = `
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1d2430;background:#f6f7f9}
.skip{position:absolute;left:-10000px;top:.4rem;z-index:10;background:#fff;color:#1f56b0;padding:.4rem .8rem;border-radius:6px;border:2px solid #1f56b0}
.skip:focus{left:.6rem}
.sr-only{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.6rem 1rem;background:#1d2a3a;color:#fff}
header a{color:#dfe8f3;text-decoration:none}.brand{font-weight:700;color:#fff!important;margin-right:1rem}
nav{display:flex;flex-wrap:wrap;gap:.3rem 1rem;align-items:center}
nav a[aria-current=page]{color:#fff;font-weight:700;text-decoration:underline;text-underline-offset:.3em}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible,summary:focus-visible,[tabindex]:focus-visible{outline:3px solid #f0a500;outline-offset:2px}
main{max-width:1200px;margin:0 auto;padding:1rem}main:focus{outline:none}h1{font-size:1.35rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%;background:#fff;font-size:14px}th,td{border-bottom:1px solid #e3e7ec;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{text-decoration:none;color:inherit;background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:.7rem 1rem;min-width:8.5rem}
.card b{display:block;font-size:1.8rem}.state{padding:.05rem .45rem;border-radius:10px;font-size:12px;font-weight:600;background:#e3e7ec}
.state.ok{background:#d8f3e3;color:#0b6b36}.state.late{background:#fff0c7;color:#7a5600}.state.missing{background:#fde0e0;color:#a01818}.state.revoked{background:#e4e4e4;color:#555}
.flash{max-width:1200px;margin:.8rem auto 0;padding:.5rem 1rem;border:1px solid;border-left-width:6px;border-radius:6px}
.flash.ok,.flash:not(.error){background:#e9f6ee;border-color:#2e7d4f;color:#14532d}.flash.ok::before{content:"\\2713\\00a0"}
.flash.error{background:#fdecea;border-color:#b42318;color:#8c1c13;font-weight:600}.flash.error::before{content:"\\2715\\00a0"}
section.panel{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:.8rem;margin:.6rem 0}section.panel>p:first-child{margin-top:0}
.secret{display:flex;flex-wrap:wrap;gap:.3rem .5rem;align-items:center;margin:.6rem 0}.secret label{flex-basis:100%;font-weight:600}
.secret input,.secret textarea{flex:1 1 18rem;min-width:0;font-family:ui-monospace,monospace;font-size:13px}.secret textarea{word-break:break-all;resize:vertical}
form.inline{display:inline}form.panel{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:.8rem;margin:.6rem 0;display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}
form.confirm{border-color:#b42318;border-left-width:6px;align-items:center}form.confirm p{flex-basis:100%;margin:0 0 .3rem;font-weight:600}
label{display:flex;flex-direction:column;font-size:13px;gap:.15rem}input,select,textarea{font:inherit;padding:.25rem .4rem;max-width:100%}
button{font:inherit;padding:.3rem .8rem;border-radius:6px;border:1px solid #2b5aa8;background:#2f66c0;color:#fff;cursor:pointer}
button.link{background:none;border:none;color:#dfe8f3;padding:0;text-decoration:underline}button.danger{background:#b42318;border-color:#8c1c13}
button.secondary{background:#fff;color:#1f56b0}
.muted{color:#5f6b7a}pre{background:#fff;border:1px solid #e3e7ec;padding:.6rem;overflow:auto;font-size:12px;max-height:22rem}
svg.chart{background:#fff;border:1px solid #dde2e8;border-radius:8px;width:100%;max-width:720px;height:auto}
details.chart-data{margin:.2rem 0 1rem;max-width:720px}details.chart-data table{font-size:13px}
fieldset.phase{flex-basis:100%;display:flex;flex-wrap:wrap;gap:.4rem .7rem;align-items:end;border:1px solid #dde2e8;border-radius:6px}
fieldset.phase>details{flex-basis:100%}details.gates[open]{display:flex;flex-wrap:wrap;gap:.4rem .7rem;align-items:end}details.gates>summary{flex-basis:100%}
details.more-phases,.rollout-form .hint{flex-basis:100%}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(300px,100%),1fr));gap:1rem}a{color:#1f56b0}
@media (max-width:700px){
main{padding:.6rem}
table{display:block;overflow-x:auto;-webkit-overflow-scrolling:touch}
form.panel{align-items:stretch}form.panel label{flex:1 1 9rem}
header{padding:.5rem .6rem}nav{gap:.3rem .8rem}
}
`;

/**
 * The console's one script (served as `/ui/static/live.js`; the CSP allows no other).
 *
 * - Live refresh: `main[data-live]` is fetched again every `data-live` seconds (or every
 *   `sessionStorage["noc.live"]` seconds, a test hook) while the tab is visible, and its children
 *   are swapped in place. It waits while a form field has focus or holds an edit, keeps keyboard
 *   focus on the same control (by id, else by what the control is and its rank among its like)
 *   and the scroll position, keeps `<details>` open, announces "Updated hh:mm:ss UTC" in
 *   `#live-status`, and dispatches `noc:refreshed` on `document` (`noc:live-skipped` when it
 *   waited for a form field).
 * - Copy buttons: `<button data-copy="#id">` copies the value (or text) of `#id` to the clipboard,
 *   else selects it for Ctrl+C; the outcome is announced in `#live-status`.
 * - A table wider than its box (a phone) scrolls sideways and is made focusable so a keyboard can
 *   scroll it too.
 */
export const liveJs = `
(() => {
  const say = (text) => {
    const s = document.getElementById("live-status");
    if (s) s.textContent = text;
  };
  const scrollers = () => {
    for (const t of document.querySelectorAll("main table")) {
      const wide = t.scrollWidth > t.clientWidth + 1;
      if (wide && !t.hasAttribute("tabindex")) {
        t.setAttribute("tabindex", "0");
        t.dataset.scroller = "1";
      } else if (!wide && t.dataset.scroller) {
        t.removeAttribute("tabindex");
        delete t.dataset.scroller;
      }
    }
  };
  scrollers();
  addEventListener("resize", scrollers);

  document.addEventListener("click", (e) => {
    const b = e.target instanceof Element ? e.target.closest("button[data-copy]") : null;
    if (!b) return;
    e.preventDefault();
    const src = document.querySelector(b.dataset.copy);
    if (!src) return;
    const text = "value" in src ? src.value : src.textContent;
    const fallback = () => {
      if (src.select) src.select();
      say("Selected: press Ctrl+C (or Cmd+C) to copy");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(() => {
        b.textContent = "Copied";
        say("Copied to the clipboard");
      }, fallback);
    } else fallback();
  });

  const main = document.querySelector("main[data-live]");
  if (!main) return;
  const hook = Number(sessionStorage.getItem("noc.live"));
  const every = (hook > 0 ? hook : Number(main.dataset.live)) * 1000;
  if (!(every > 0)) return;

  const fields = "input:not([type=hidden]),select,textarea";
  const isField = (el) =>
    el instanceof Element && el.matches(fields) &&
    !(el instanceof HTMLInputElement && ["submit", "button", "reset"].includes(el.type));
  const edited = () =>
    [...main.querySelectorAll(fields)].some((el) => {
      if (el instanceof HTMLSelectElement) {
        const opts = [...el.options];
        if (el.multiple) return opts.some((o) => o.selected !== o.defaultSelected);
        // A single choice with no option marked selected starts on its first option.
        const marked = opts.map((o) => o.defaultSelected).lastIndexOf(true);
        return el.selectedIndex !== (marked === -1 ? (opts.length ? 0 : -1) : marked);
      }
      if (el.type === "checkbox" || el.type === "radio") return el.checked !== el.defaultChecked;
      return el.value !== el.defaultValue;
    });
  // What a control is, to find it again among the new nodes.
  const sig = (el) =>
    [el.tagName, el.getAttribute("href"), el.getAttribute("name"), el.getAttribute("value"),
      el.closest("form")?.getAttribute("action"), el.textContent.trim().slice(0, 80)].join("|");
  const rank = (root, el) => {
    const like = [...root.querySelectorAll(el.tagName)].filter((x) => sig(x) === sig(el));
    return [sig(el), like.indexOf(el)];
  };
  const findAgain = (root, key) => {
    if (key.id) return document.getElementById(key.id);
    const like = [...root.querySelectorAll(key.tag)].filter((x) => sig(x) === key.sig);
    return like[Math.min(key.n, like.length - 1)] ?? null;
  };
  const openDetails = () =>
    [...main.querySelectorAll("details[open]")].map((d) => d.id || rank(main, d)[0]);

  const skipped = () => {
    document.dispatchEvent(new CustomEvent("noc:live-skipped"));
    return false;
  };
  const refresh = async () => {
    const active = document.activeElement;
    if (document.hidden) return false;
    if (isField(active) || edited()) return skipped();
    const res = await fetch(location.href, { headers: { "x-live": "1" }, credentials: "same-origin" });
    if (!res.ok || res.redirected) return false;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const next = doc.querySelector("main[data-live]");
    // The page may have changed while the answer came: check again before touching it.
    if (!next) return false;
    if (isField(document.activeElement) || edited()) return skipped();
    let key = null;
    if (active && active !== main && main.contains(active)) {
      const [s, n] = rank(main, active);
      key = { id: active.id || null, tag: active.tagName, sig: s, n };
    }
    const open = openDetails();
    const x = scrollX, y = scrollY;
    main.replaceChildren(...[...next.childNodes].map((n) => document.importNode(n, true)));
    for (const d of main.querySelectorAll("details")) {
      if (open.includes(d.id || rank(main, d)[0])) d.open = true;
    }
    if (key) {
      const again = findAgain(main, key);
      (again ?? main).focus({ preventScroll: true });
    }
    scrollTo(x, y);
    scrollers();
    say("Updated " + new Date().toISOString().slice(11, 19) + " UTC");
    document.dispatchEvent(new CustomEvent("noc:refreshed"));
    return true;
  };
  setInterval(() => refresh().catch(() => { /* next time */ }), every);
})();
`;
