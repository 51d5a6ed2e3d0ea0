// A dependency-free SVG line plot of loss curves: steps on x, loss on a log10 y axis when every value is
// positive (KL at τ = 40 sits orders of magnitude below CE), else linear; a legend, optional markers and a
// dashed horizontal reference line (the teacher's val loss).

export interface Series {
  readonly name: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  readonly markers?: boolean;
}

export interface PlotOptions {
  readonly title?: string;
  readonly width?: number;
  readonly height?: number;
  readonly reference?: { readonly name: string; readonly value: number };
  /** Axis titles (default "step" and "loss"). */
  readonly xLabel?: string;
  readonly yLabel?: string;
}

/** About four round values between lo and hi (linear). */
function linearTicks(lo: number, hi: number): number[] {
  const raw = (hi - lo) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((st) => st >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function fmt(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  if (a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}

/** Renders the series as an SVG document. */
export function lossPlotSvg(series: readonly Series[], opts: PlotOptions = {}): string {
  const W = opts.width ?? 820, H = opts.height ?? 440;
  const m = { l: 64, r: 180, t: 34, b: 44 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const ys = all.map(([, y]) => y);
  if (opts.reference !== undefined && Number.isFinite(opts.reference.value)) ys.push(opts.reference.value);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="20" font-size="14" font-weight="bold">${esc(opts.title ?? "loss")}</text>`,
  ];
  if (all.length === 0) {
    out.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data yet</text></svg>`);
    return out.join("\n");
  }
  const xMin = Math.min(...all.map(([x]) => x)), xMax = Math.max(...all.map(([x]) => x));
  const logY = ys.every((y) => y > 0);
  const tf = (y: number) => (logY ? Math.log10(y) : y);
  let yLo = Math.min(...ys.map(tf)), yHi = Math.max(...ys.map(tf));
  if (yHi - yLo < 1e-9) {
    yLo -= 0.5;
    yHi += 0.5;
  }
  const pad = (yHi - yLo) * 0.05;
  yLo -= pad;
  yHi += pad;
  const sx = (x: number) => m.l + (xMax === xMin ? pw / 2 : ((x - xMin) / (xMax - xMin)) * pw);
  const sy = (y: number) => m.t + ph - ((tf(y) - yLo) / (yHi - yLo)) * ph;
  // Axes and grid.
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  let yTicks: number[] = [];
  if (logY) {
    // 1-2-5 per decade up to 3 decades (1 to 30 gets 1, 2, 5, 10, 20), the powers of ten beyond.
    for (let e = Math.floor(yLo); e <= Math.ceil(yHi); e++)
      for (const k of yHi - yLo <= 3 ? [1, 2, 5] : [1]) {
        const v = k * 10 ** e;
        if (Math.log10(v) >= yLo && Math.log10(v) <= yHi) yTicks.push(v);
      }
    // A range narrower than the 1-2-5 grid (under a decade): round linear values inside it.
    if (yTicks.length < 3 && yHi - yLo < 1) yTicks = linearTicks(10 ** yLo, 10 ** yHi).filter((v) => v > 0);
  } else {
    yTicks = linearTicks(yLo, yHi);
  }
  for (const v of yTicks) {
    const y = sy(v).toFixed(1);
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(v)}</text>`);
  }
  const xStep = Math.max(1, 10 ** Math.floor(Math.log10(Math.max(1, xMax - xMin) / 4)));
  for (let v = Math.ceil(xMin / xStep) * xStep; v <= xMax; v += xStep * (Math.floor((xMax - xMin) / xStep) > 8 ? 2 : 1)) {
    const x = sx(v).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${m.t + ph}" stroke="#f3f3f3"/>`);
    out.push(`<text x="${x}" y="${m.t + ph + 16}" text-anchor="middle">${fmt(v)}</text>`);
  }
  out.push(`<text x="${m.l + pw / 2}" y="${H - 8}" text-anchor="middle">${esc(opts.xLabel ?? "step")}</text>`);
  out.push(`<text x="14" y="${m.t + ph / 2}" text-anchor="middle" transform="rotate(-90 14 ${m.t + ph / 2})">${esc(opts.yLabel ?? "loss")}${logY ? " (log scale)" : ""}</text>`);
  // Curves.
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0));
    if (pts.length === 0) return;
    const d = pts.map(([x, y], j) => `${j === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="1.5"/>`);
    if (s.markers) for (const [x, y] of pts) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${c}"/>`);
    const ly = m.t + 10 + i * 18;
    out.push(`<line x1="${m.l + pw + 12}" x2="${m.l + pw + 36}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<text x="${m.l + pw + 42}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  const ref = opts.reference;
  if (ref !== undefined && Number.isFinite(ref.value) && (!logY || ref.value > 0)) {
    const y = sy(ref.value).toFixed(1);
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="#555" stroke-dasharray="6 4"/>`);
    const ly = m.t + 10 + series.length * 18;
    out.push(`<line x1="${m.l + pw + 12}" x2="${m.l + pw + 36}" y1="${ly}" y2="${ly}" stroke="#555" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.l + pw + 42}" y="${ly}" dominant-baseline="middle">${esc(ref.name)}</text>`);
  }
  out.push("</svg>");
  return out.join("\n");
}
