// Charts drawn as inline SVG (no chart library: the bundle stays small), as wide as their box: the SVG's
// own units are the box's pixels, so labels keep their size at any width.
import { type RefObject, useEffect, useRef, useState } from "react";

import { count, minute } from "./format";

export const PALETTE = [
  "#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed",
  "#0891b2", "#db2777", "#65a30d", "#9333ea", "#475569",
];

const HEIGHT = 220;
const PAD = { left: 48, right: 16, top: 10, bottom: 26 };

/** The element's width in pixels, followed as it changes. */
function useWidth(ref: RefObject<HTMLDivElement | null>, initial = 640): number {
  const [width, setWidth] = useState(initial);
  useEffect(() => {
    const element = ref.current;
    if (!element) return undefined;
    const measure = () => setWidth(Math.max(240, Math.floor(element.getBoundingClientRect().width)));
    measure();
    if (typeof ResizeObserver === "undefined") return undefined;
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    return () => observer.disconnect();
  }, [ref]);
  return width;
}

/** A round upper bound for the y axis: 1, 2 or 5 times a power of ten. */
function niceMax(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function xAt(index: number, n: number, width: number): number {
  const span = width - PAD.left - PAD.right;
  return n <= 1 ? PAD.left + span / 2 : PAD.left + (index * span) / (n - 1);
}

function yAt(value: number, max: number): number {
  return PAD.top + (1 - value / max) * (HEIGHT - PAD.top - PAD.bottom);
}

function Axes(props: { labels: string[]; max: number; width: number; x: (index: number) => number }) {
  const { labels, max, width, x } = props;
  const ticks = [0, max / 2, max];
  const shown = labels.length <= 3 ? labels.map((_, i) => i) : [0, Math.floor((labels.length - 1) / 2), labels.length - 1];
  return (
    <g>
      {ticks.map((tick) => (
        <g key={tick}>
          <line className="cs-axis" x1={PAD.left} x2={width - PAD.right} y1={yAt(tick, max)} y2={yAt(tick, max)} strokeDasharray={tick ? "3 3" : undefined} />
          <text x={PAD.left - 6} y={yAt(tick, max) + 4} textAnchor="end">
            {count(tick)}
          </text>
        </g>
      ))}
      {shown.map((i) => (
        <text key={i} x={x(i)} y={HEIGHT - 8} textAnchor={anchor(x(i), width)}>
          {minute(labels[i])}
        </text>
      ))}
    </g>
  );
}

/** Labels near an edge are anchored inside the chart. */
function anchor(x: number, width: number): "start" | "middle" | "end" {
  if (x < PAD.left + 20) return "start";
  return x > width - PAD.right - 20 ? "end" : "middle";
}

export interface Series {
  name: string;
  values: number[];
}

/** One line per series over the window labels (clicks per minute for each top page). */
export function LineChart(props: { labels: string[]; series: Series[]; title: string }) {
  const { labels, series } = props;
  const box = useRef<HTMLDivElement>(null);
  const width = useWidth(box);
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const x = (i: number) => xAt(i, labels.length, width);
  return (
    <div ref={box}>
      <svg className="cs-chart" viewBox={`0 0 ${width} ${HEIGHT}`} width={width} height={HEIGHT} role="img" aria-label={props.title}>
        <Axes labels={labels} max={max} width={width} x={x} />
        {series.map((s, k) => {
          const color = PALETTE[k % PALETTE.length];
          const points = s.values.map((v, i) => `${x(i).toFixed(1)},${yAt(v, max).toFixed(1)}`);
          return (
            <g key={s.name} data-testid="series-line" data-page={s.name} data-values={s.values.join(",")}>
              <polyline points={points.join(" ")} fill="none" stroke={color} strokeWidth={2} />
              {s.values.map((v, i) => (
                <circle key={labels[i]} cx={x(i)} cy={yAt(v, max)} r={2.5} fill={color}>
                  <title>{`${s.name} ${minute(labels[i])}: ${count(v)}`}</title>
                </circle>
              ))}
            </g>
          );
        })}
      </svg>
      <div className="cs-legend">
        {series.map((s, k) => (
          <span key={s.name}>
            <span className="cs-swatch" style={{ background: PALETTE[k % PALETTE.length] }} />
            <span className="cs-page">{s.name}</span>
          </span>
        ))}
      </div>
    </div>
  );
}

export interface Bar {
  label: string;
  value: number;
  detail?: string;
}

/** One bar per window. */
export function BarChart(props: { bars: Bar[]; title: string; testId: string; color?: string }) {
  const { bars } = props;
  const box = useRef<HTMLDivElement>(null);
  const width = useWidth(box);
  const max = niceMax(Math.max(0, ...bars.map((b) => b.value)));
  const span = width - PAD.left - PAD.right;
  const slot = span / Math.max(bars.length, 1);
  const center = (i: number) => PAD.left + i * slot + slot / 2;
  return (
    <div ref={box}>
    <svg className="cs-chart" viewBox={`0 0 ${width} ${HEIGHT}`} width={width} height={HEIGHT} role="img" aria-label={props.title}>
      <Axes labels={bars.map((b) => b.label)} max={max} width={width} x={center} />
      {bars.map((b, i) => {
        const top = yAt(b.value, max);
        return (
          <rect
            key={b.label}
            data-testid={props.testId}
            data-window={b.label}
            data-value={b.value}
            x={PAD.left + i * slot + slot * 0.15}
            width={Math.max(1, slot * 0.7)}
            y={top}
            height={HEIGHT - PAD.bottom - top}
            fill={props.color ?? PALETTE[0]}
          >
            <title>{`${b.label}: ${count(b.value)}${b.detail ? ` (${b.detail})` : ""}`}</title>
          </rect>
        );
      })}
    </svg>
    </div>
  );
}
