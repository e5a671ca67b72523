// Formatting: counts with separators, window labels as minutes, ages and rates.
const COUNT = new Intl.NumberFormat("en-US");

export function count(value: number | null | undefined): string {
  return value === null || value === undefined ? "–" : COUNT.format(value);
}

export function rate(value: number | null | undefined): string {
  return value === null || value === undefined ? "–" : `${value.toFixed(value < 10 ? 1 : 0)}/s`;
}

export function seconds(value: number | null | undefined): string {
  if (value === null || value === undefined) return "–";
  if (value < 120) return `${value.toFixed(value < 10 ? 1 : 0)} s`;
  if (value < 7200) return `${Math.round(value / 60)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

/** A window label (2025-06-10T05:04:00, UTC) as its minute: "05:04". */
export function minute(label: string): string {
  const match = /T(\d{2}:\d{2})/.exec(label);
  return match ? match[1] : label;
}

/** An ISO date-time as local "YYYY-MM-DD HH:MM:SS", or a dash. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

export function duration(start: string | null | undefined, end: string | null | undefined): string {
  if (!start || !end) return "–";
  const ms = new Date(end).getTime() - new Date(start).getTime();
  return Number.isFinite(ms) && ms >= 0 ? seconds(ms / 1000) : "–";
}
