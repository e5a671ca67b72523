// The plugin's serving API (same origin, under <Airflow base URL>/clickstream/api/v1): types and a fetch
// that sends the UI's login. Airflow 3.3's UI keeps its JWT in the `_token` cookie (HttpOnly, so no script
// can read it) and the API accepts it from there: a same-origin request with credentials is logged in.
import { useEffect, useState } from "react";

export const DAG_ID = "clickstream_pipeline";
// The dag_run tab's url_route in plugin.py: a run's report lives at dags/<dag>/runs/<run>/plugin/<this>.
export const REPORT_ROUTE = "clickstream_report";
export const REFRESH_MS = 15_000;

export interface WindowSummary {
  window: string;
  total: number;
  unique_users: number;
}

export interface DeadLetterWindow {
  window: string;
  reasons: Record<string, number>;
  total: number;
}

export interface Streaming {
  query: string;
  state: string;
  batch_id: number | null;
  input_rows_per_s: number | null;
  processed_rows_per_s: number | null;
  last_batch_age_s: number | null;
  watermark: string | null;
  newest_window: string | null;
  offsets_behind_latest: number | null;
  restarts: number | null;
  last_restart_reason: string | null;
  error: string | null;
}

export interface DashboardData {
  windows: WindowSummary[];
  top_pages: { page: string; count: number }[];
  series: Record<string, number[]>;
  dead_letters: DeadLetterWindow[];
  dead_letter_totals: Record<string, number>;
  streaming: Streaming | null;
  generated_ms: number;
}

export interface Run {
  run_id: string;
  state: string | null;
  run_after: string | null;
  start_date: string | null;
  end_date: string | null;
  run_type: string | null;
}

export interface ReportPage {
  page: string;
  sent: number;
  in_redis: number;
  per_window: Record<string, number>;
}

export interface RunReport {
  run_id: string;
  state: string | null;
  windows: string[];
  pages: ReportPage[];
  sent_total: number;
  in_redis_total: number;
  reconciler: Record<string, unknown> | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function apiUrl(path: string): string {
  // Relative to the page's <base href>, which carries Airflow's base_url path when it has one.
  return new URL(`clickstream/api/v1/${path}`, document.baseURI).href;
}

/** The route's JSON, or an ApiError whose message is the API's own `detail` (or what the status means). */
export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  let response: Response;
  try {
    response = await fetch(apiUrl(path), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      signal,
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(0, `the Clickstream API did not answer (${String(error)})`);
  }
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, describeFailure(response, body, text));
  }
  return body as T;
}

function describeFailure(response: Response, body: unknown, text: string): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  let message: string;
  if (typeof detail === "string") message = detail;
  else if (Array.isArray(detail)) message = detail.map((d) => (d as { msg?: string }).msg ?? JSON.stringify(d)).join("; ");
  else if (detail !== undefined) message = JSON.stringify(detail);
  else message = text.slice(0, 300) || response.statusText || "no answer";
  if (response.status === 401) message += " (your login has expired: reload the page to sign in again)";
  if (response.status === 403) message += " (you need read access to the clickstream_pipeline DAG)";
  return `HTTP ${response.status}: ${message}`;
}

export interface Polled<T> {
  data?: T;
  error?: string;
  status?: number;
  loadedAt?: number;
}

/** GET `path` now and every `everyMs` (none: once). The last good answer stays while a later one fails. */
export function usePolled<T>(path: string | null, everyMs: number | null): Polled<T> {
  const [state, setState] = useState<Polled<T>>({});
  useEffect(() => {
    if (path === null) return undefined;
    let live = true;
    let controller: AbortController | undefined;
    const load = async () => {
      controller?.abort();
      controller = new AbortController();
      try {
        const data = await getJson<T>(path, controller.signal);
        if (live) setState({ data, loadedAt: Date.now() });
      } catch (error) {
        if (!live || controller.signal.aborted) return;
        const status = error instanceof ApiError ? error.status : undefined;
        setState((previous) => ({ ...previous, error: String((error as Error).message ?? error), status }));
      }
    };
    void load();
    const timer = everyMs ? setInterval(() => void load(), everyMs) : undefined;
    return () => {
      live = false;
      controller?.abort();
      if (timer !== undefined) clearInterval(timer);
    };
  }, [path, everyMs]);
  return state;
}
