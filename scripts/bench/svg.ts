/**
 * A small hand-written SVG line chart for the benchmarks' growth measurements (no dependency):
 * several series over a shared x axis, linear or logarithmic axes, optional horizontal target
 * lines. Deterministic output for the same data, so committed charts only change with figures.
 */

export interface Series {
  name: string;
  points: [number, number][];
  /** Draw markers only, no line. */
  markersOnly?: boolean;
}

export interface ChartSpec {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  xLog?: boolean;
  yLog?: boolean;
  /** Tick labels for x values; default: the number. */
  xTick?: (x: number) => string;
  yTick?: (y: number) => string;
  series: Series[];
  targets?: { y: number; label: string }[];
  /** Force the y range to include these values. */
  yInclude?: number[];
}

const WIDTH = 760;
const HEIGHT = 440;
const MARGIN = { left: 78, right: 190, top: 58, bottom: 58 };
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"];

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const fmt = (n: number) => (Math.round(n * 10) / 10).toString();

function niceLinearTicks(min: number, max: number, count = 6): number[] {
  const span = max - min || 1;
  const step0 = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => span / s <= count) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) ticks.push(10 ** e);
  return ticks;
}

export function lineChart(spec: ChartSpec): string {
  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = [...spec.series.flatMap((s) => s.points.map((p) => p[1])), ...(spec.targets ?? []).map((t) => t.y), ...(spec.yInclude ?? [])];
  const positive = (v: number[]) => v.filter((n) => n > 0);
  let [xMin, xMax] = spec.xLog ? [Math.min(...positive(xs)), Math.max(...positive(xs))] : [Math.min(...xs), Math.max(...xs)];
  let [yMin, yMax] = spec.yLog ? [Math.min(...positive(ys)), Math.max(...positive(ys))] : [Math.min(0, ...ys), Math.max(...ys)];
  if (spec.xLog) [xMin, xMax] = [10 ** Math.floor(Math.log10(xMin)), 10 ** Math.ceil(Math.log10(xMax))];
  if (spec.yLog) [yMin, yMax] = [10 ** Math.floor(Math.log10(yMin)), 10 ** Math.ceil(Math.log10(yMax))];
  else yMax = yMax + (yMax - yMin) * 0.05 || 1;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const scale = (v: number, lo: number, hi: number, log?: boolean) => (log ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo || 1));
  const px = (x: number) => MARGIN.left + scale(x, xMin, xMax, spec.xLog) * plotW;
  const py = (y: number) => MARGIN.top + plotH - scale(y, yMin, yMax, spec.yLog) * plotH;
  const xTicks = spec.xLog ? logTicks(xMin, xMax) : niceLinearTicks(xMin, xMax);
  const yTicks = spec.yLog ? logTicks(yMin, yMax) : niceLinearTicks(yMin, yMax);
  const xTick = spec.xTick ?? ((x: number) => String(x));
  const yTick = spec.yTick ?? ((y: number) => String(y));

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`);
  out.push(`<text x="${MARGIN.left}" y="22" font-size="15" font-weight="bold">${escape(spec.title)}</text>`);
  if (spec.subtitle) out.push(`<text x="${MARGIN.left}" y="40" fill="#555">${escape(spec.subtitle)}</text>`);
  for (const t of xTicks) {
    if (t < xMin || t > xMax) continue;
    out.push(`<line x1="${fmt(px(t))}" y1="${MARGIN.top}" x2="${fmt(px(t))}" y2="${MARGIN.top + plotH}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${fmt(px(t))}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${escape(xTick(t))}</text>`);
  }
  for (const t of yTicks) {
    if (t < yMin || t > yMax) continue;
    out.push(`<line x1="${MARGIN.left}" y1="${fmt(py(t))}" x2="${MARGIN.left + plotW}" y2="${fmt(py(t))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${fmt(py(t) + 4)}" text-anchor="end">${escape(yTick(t))}</text>`);
  }
  out.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 14}" text-anchor="middle">${escape(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(spec.yLabel)}</text>`);
  for (const target of spec.targets ?? []) {
    const y = fmt(py(target.y));
    out.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotW}" y2="${y}" stroke="#000" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${MARGIN.left + plotW - 4}" y="${fmt(py(target.y) - 5)}" text-anchor="end">${escape(target.label)}</text>`);
  }
  spec.series.forEach((series, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = series.points.filter(([x, y]) => (!spec.xLog || x > 0) && (!spec.yLog || y > 0));
    if (!series.markersOnly && points.length > 1) {
      out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${points.map(([x, y]) => `${fmt(px(x))},${fmt(py(y))}`).join(" ")}"/>`);
    }
    if (points.length <= 40) for (const [x, y] of points) out.push(`<circle cx="${fmt(px(x))}" cy="${fmt(py(y))}" r="3" fill="${colour}"/>`);
    const ly = MARGIN.top + 10 + i * 20;
    out.push(`<line x1="${WIDTH - MARGIN.right + 14}" y1="${ly}" x2="${WIDTH - MARGIN.right + 34}" y2="${ly}" stroke="${colour}" stroke-width="2"/>`);
    out.push(`<text x="${WIDTH - MARGIN.right + 40}" y="${ly + 4}">${escape(series.name)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
