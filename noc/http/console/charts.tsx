/**
 * Server-rendered SVG charts: no script, readable at any width. Each chart carries its values as
 * text: a summary (points, span, lowest, highest, last) as its accessible name, and the points
 * themselves in a folded table after it.
 */

/** One point of a series. */
export interface Point {
  /** Time, ms since the epoch. */
  t: number;
  /** What was measured at `t`. */
  v: number;
}

/** At most this many points are listed in a chart's table (the most recent ones). */
export const tablePoints = 500;

const when = (t: number) => new Date(t).toISOString().slice(0, 16).replace("T", " ");

/** A number as the chart shows it: whole from 100, two decimals below. */
export function chartNumber(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2);
}

/**
 * The words a chart of `points` (sorted by time, at least one) is summed up in: how many points
 * from when to when (UTC), the lowest and highest values with their times, and the last one.
 */
export function chartSummary(label: string, points: Point[], unit?: string): string {
  const u = unit ? ` ${unit}` : "";
  const first = points[0]!, last = points[points.length - 1]!;
  let lo = first, hi = first;
  for (const p of points) {
    if (p.v < lo.v) lo = p;
    if (p.v > hi.v) hi = p;
  }
  return `${label}: ${points.length} point${points.length === 1 ? "" : "s"} from ${
    when(first.t)
  } to ${when(last.t)} UTC; lowest ${chartNumber(lo.v)}${u} at ${when(lo.t)}, highest ${
    chartNumber(hi.v)
  }${u} at ${when(hi.t)}, last ${chartNumber(last.v)}${u}.`;
}

/**
 * A line chart of `points` over time, with its y range labelled; its accessible name is
 * {@link chartSummary}, and a `<details>` after it lists the points (the last {@link tablePoints}).
 */
export function LineChart(
  props: { points: Point[]; label: string; unit?: string; width?: number; height?: number },
) {
  const w = props.width ?? 720, h = props.height ?? 180, pad = 36;
  const pts = [...props.points].sort((a, b) => a.t - b.t);
  if (pts.length === 0) {
    return <p class="muted">{props.label}: no data yet.</p>;
  }
  const t0 = pts[0]!.t, t1 = Math.max(pts[pts.length - 1]!.t, t0 + 1);
  const max = Math.max(...pts.map((p) => p.v), 0) || 1;
  const x = (t: number) => pad + ((t - t0) / (t1 - t0)) * (w - pad - 8);
  const y = (v: number) => h - 22 - (v / max) * (h - 40);
  const d = pts.map((p, i) => `${i === 0 ? "M" : "L"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`)
    .join(" ");
  const fmt = chartNumber;
  const summary = chartSummary(props.label, pts, props.unit);
  return (
    <>
      <svg class="chart" viewBox={`0 0 ${w} ${h}`} role="img" aria-label={summary}>
        <title>{summary}</title>
        <text x="8" y="14" font-size="12" fill="#444">{props.label}</text>
        <line x1={pad} y1={h - 22} x2={w - 8} y2={h - 22} stroke="#ccd" />
        <line x1={pad} y1={18} x2={pad} y2={h - 22} stroke="#ccd" />
        <text x="4" y={y(max) + 4} font-size="10" fill="#667">{fmt(max)}</text>
        <text x="4" y={h - 22} font-size="10" fill="#667">0</text>
        <text x={pad} y={h - 6} font-size="10" fill="#667">
          {new Date(t0).toISOString().slice(5, 16).replace("T", " ")}
        </text>
        <text x={w - 8} y={h - 6} font-size="10" fill="#667" text-anchor="end">
          {new Date(t1).toISOString().slice(5, 16).replace("T", " ")}
        </text>
        <path d={d} fill="none" stroke="#2f66c0" stroke-width="2" />
        {pts.length <= 60 &&
          pts.map((p) => (
            <circle cx={x(p.t).toFixed(1)} cy={y(p.v).toFixed(1)} r="2.5" fill="#2f66c0" />
          ))}
        {props.unit && (
          <text x={w - 8} y="14" font-size="11" fill="#667" text-anchor="end">{props.unit}</text>
        )}
      </svg>
      <details class="chart-data">
        <summary>{props.label}: the values</summary>
        <table>
          <tr>
            <th scope="col">time (UTC)</th>
            <th scope="col" class="num">
              {props.unit ? `${props.label} (${props.unit})` : props.label}
            </th>
          </tr>
          {pts.slice(-tablePoints).map((p) => (
            <tr>
              <td>
                <time datetime={new Date(p.t).toISOString()}>{when(p.t)}</time>
              </td>
              <td class="num">{chartNumber(p.v)}</td>
            </tr>
          ))}
        </table>
      </details>
    </>
  );
}
