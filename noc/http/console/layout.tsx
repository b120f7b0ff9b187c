/** The console's page frame and small shared pieces (hono/jsx, rendered on the server). */
import type { Child } from "hono/jsx";

/** What every page knows about the request. */
export interface PageContext {
  /** The signed-in operator's token label. */
  label: string;
  /** The session's CSRF token, put in every form. */
  csrf: string;
  /** A one-line message from the last action, if any. */
  flash?: string | undefined;
  /** A one-line refusal from the last action, if any (shown in the error style). */
  error?: string | undefined;
}

const nav: Array<[string, string]> = [
  ["/ui", "Fleet"],
  ["/ui/appliances", "Appliances"],
  ["/ui/alerts", "Alerts"],
  ["/ui/releases", "Releases"],
  ["/ui/tokens", "Enrolment"],
  ["/ui/local-servers", "Local servers"],
  ["/ui/maintenance", "Maintenance"],
  ["/ui/operators", "Operators"],
  ["/ui/audit", "Audit"],
];

/** The page frame: navigation, flash message, `main` (live-refreshed when `live`). */
export function Layout(
  props: { title: string; ctx: PageContext | null; live?: boolean; children?: Child },
) {
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
        <header>
          <a class="brand" href="/ui">Appliance NOC</a>
          {props.ctx && (
            <nav>
              {nav.map(([href, text]) => <a href={href}>{text}</a>)}
              <form method="post" action="/ui/logout" class="inline">
                <Csrf ctx={props.ctx} />
                <button type="submit" class="link">Sign out ({props.ctx.label})</button>
              </form>
            </nav>
          )}
        </header>
        {props.ctx?.flash && <p class="flash" role="status">{props.ctx.flash}</p>}
        {props.ctx?.error && <p class="flash error" role="alert">{props.ctx.error}</p>}
        <main data-live={props.live ? "15" : undefined}>
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

/** A state badge. */
export function State(props: { state: string }) {
  return <span class={`state ${props.state}`}>{props.state}</span>;
}

/** A time, shown in UTC to the minute, with the full value on hover. */
export function Time(props: { at: string | null | undefined }) {
  if (!props.at) return <span class="muted">never</span>;
  return <time datetime={props.at} title={props.at}>{props.at.slice(0, 16).replace("T", " ")}
  </time>;
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

/** The console's stylesheet. */
export const css = `
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1d2430;background:#f6f7f9}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.6rem 1rem;background:#1d2a3a;color:#fff}
header a{color:#dfe8f3;text-decoration:none}.brand{font-weight:700;color:#fff!important;margin-right:1rem}
nav{display:flex;flex-wrap:wrap;gap:.3rem 1rem;align-items:center}
main{max-width:1200px;margin:0 auto;padding:1rem}h1{font-size:1.35rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%;background:#fff;font-size:14px}th,td{border-bottom:1px solid #e3e7ec;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{text-decoration:none;color:inherit;background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:.7rem 1rem;min-width:8.5rem}
.card b{display:block;font-size:1.8rem}.state{padding:.05rem .45rem;border-radius:10px;font-size:12px;font-weight:600;background:#e3e7ec}
.state.ok{background:#d8f3e3;color:#0b6b36}.state.late{background:#fff0c7;color:#7a5600}.state.missing{background:#fde0e0;color:#a01818}.state.revoked{background:#e4e4e4;color:#555}
.flash{max-width:1200px;margin:.8rem auto 0;padding:.5rem 1rem;background:#e7f0ff;border:1px solid #b9d0f5;border-radius:6px}
.flash.error{background:#fdecea;border-color:#e0a19b;color:#8c1c13;font-weight:600}
form.inline{display:inline}form.panel{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:.8rem;margin:.6rem 0;display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}
label{display:flex;flex-direction:column;font-size:13px;gap:.15rem}input,select,textarea{font:inherit;padding:.25rem .4rem}
button{font:inherit;padding:.3rem .8rem;border-radius:6px;border:1px solid #2b5aa8;background:#2f66c0;color:#fff;cursor:pointer}
button.link{background:none;border:none;color:#dfe8f3;padding:0;text-decoration:underline}button.danger{background:#b42318;border-color:#8c1c13}
.muted{color:#667085}pre{background:#fff;border:1px solid #e3e7ec;padding:.6rem;overflow:auto;font-size:12px;max-height:22rem}
svg.chart{background:#fff;border:1px solid #dde2e8;border-radius:8px;width:100%;max-width:720px;height:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:1rem}a{color:#1f56b0}
@media (max-width:600px){th:nth-child(n+5),td:nth-child(n+5){display:none}}
`;

/** The console's one script: refresh `main[data-live]` in place while the tab is visible. */
export const liveJs = `
(() => {
  const main = document.querySelector("main[data-live]");
  if (!main) return;
  const every = Number(main.dataset.live) * 1000;
  setInterval(async () => {
    if (document.hidden || document.activeElement?.closest("form")) return;
    try {
      const res = await fetch(location.href, { headers: { "x-live": "1" } });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const next = doc.querySelector("main[data-live]");
      if (next) document.querySelector("main[data-live]").replaceWith(next);
    } catch { /* next time */ }
  }, every);
})();
`;
