// The "Clickstream report" tab of a DAG run: what the run's burst sent against what Redis holds, per page
// and window, and what the batch reconciler found.
import { DAG_ID, REFRESH_MS, type RunReport, usePolled } from "./api";
import { BarChart } from "./Chart";
import { count } from "./format";
import { Badge, ErrorBox, Section, Styles } from "./ui";

const FINISHED = new Set(["success", "failed"]);

export function Report(props: { dagId?: string; runId: string }) {
  const applies = !props.dagId || props.dagId === DAG_ID;
  const path = applies ? `runs/${encodeURIComponent(props.runId)}/report` : null;
  // Once loaded, a finished run's report no longer changes; a running one's fills in.
  const first = usePolled<RunReport>(path, null);
  const running = first.data !== undefined && !FINISHED.has(first.data.state ?? "");
  const again = usePolled<RunReport>(running ? path : null, running ? REFRESH_MS : null);
  const report = again.data ?? first.data;
  const error = again.error ?? first.error;
  return (
    <div className="cs-root" data-testid="clickstream-report" data-loaded={report ? "true" : "false"}>
      <Styles />
      <header>
        <h2>Clickstream report</h2>
        <div className="cs-muted">
          Run <span className="cs-page">{props.runId}</span>
          {report ? (
            <>
              {" "}
              <Badge state={report.state} testId="report-state" />
            </>
          ) : null}
        </div>
      </header>
      {!applies ? (
        <div className="cs-note" data-testid="report-not-applicable">
          The Clickstream report applies to {DAG_ID} runs only; this is a run of {props.dagId}.
        </div>
      ) : null}
      <ErrorBox message={error} stale={Boolean(report)} />
      {applies && !report && !error ? <div className="cs-muted">Loading…</div> : null}
      {report ? <ReportBody report={report} /> : null}
    </div>
  );
}

function ReportBody(props: { report: RunReport }) {
  const { report } = props;
  const perWindow = report.windows.map((w) => ({
    label: w,
    value: report.pages.reduce((sum, p) => sum + (p.per_window[w] ?? 0), 0),
  }));
  const difference = report.in_redis_total - report.sent_total;
  return (
    <div className="cs-grid">
      <Section title="Sent and in Redis" wide testId="report-summary">
        <div data-testid="report-totals" data-sent={report.sent_total} data-in-redis={report.in_redis_total}>
          The burst sent <b>{count(report.sent_total)}</b> countable page views; Redis holds{" "}
          <b>{count(report.in_redis_total)}</b> for those pages in the burst's {report.windows.length} windows
          {difference === 0 ? (
            <span className="cs-good"> (equal)</span>
          ) : (
            <span className={difference < 0 ? "cs-bad" : undefined}>
              {" "}
              ({difference > 0 ? "+" : ""}
              {count(difference)}
              {difference > 0 ? ": other traffic in the same windows" : ": missing from Redis"})
            </span>
          )}
          .
        </div>
      </Section>
      <Section title="Per page" testId="report-pages">
        <table className="cs-table">
          <thead>
            <tr>
              <th>page</th>
              <th className="cs-num">sent</th>
              <th className="cs-num">in Redis</th>
              <th className="cs-num">difference</th>
            </tr>
          </thead>
          <tbody>
            {report.pages.map((p) => {
              const diff = p.in_redis - p.sent;
              return (
                <tr key={p.page} data-testid="report-page-row" data-page={p.page} data-sent={p.sent} data-in-redis={p.in_redis}>
                  <td className="cs-page">{p.page}</td>
                  <td className="cs-num">{count(p.sent)}</td>
                  <td className="cs-num">{count(p.in_redis)}</td>
                  <td className={diff < 0 ? "cs-num cs-bad" : "cs-num"}>{diff === 0 ? "" : `${diff > 0 ? "+" : ""}${count(diff)}`}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </Section>
      <Section title="Windows (in Redis, the burst's pages)" testId="report-windows">
        <BarChart title="clicks in Redis per window" testId="report-window-bar" bars={perWindow} />
        <table className="cs-table">
          <thead>
            <tr>
              <th>window (UTC)</th>
              <th className="cs-num">clicks</th>
            </tr>
          </thead>
          <tbody>
            {perWindow.map((w) => (
              <tr key={w.label} data-testid="report-window-row" data-window={w.label} data-count={w.value}>
                <td>{w.label}</td>
                <td className="cs-num">{count(w.value)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
      <Reconciler reconciler={report.reconciler} />
    </div>
  );
}

const RECONCILER_LABELS: Record<string, string> = {
  events_read: "events read from Kafka",
  valid_events: "valid events",
  cells_compared: "cells (page × window) compared",
  cells_matching: "cells matching",
  cells_missing_in_redis: "cells missing in Redis",
  cells_short_in_redis: "cells short in Redis",
  cells_over_in_redis: "cells over in Redis",
  events_missing_from_redis: "events missing from Redis",
  repaired_cells: "cells repaired",
};

function Reconciler(props: { reconciler: Record<string, unknown> | null }) {
  const r = props.reconciler;
  if (!r) {
    return (
      <Section title="Reconciler" wide testId="reconciler-report">
        <div className="cs-muted" data-testid="reconciler-missing">
          No reconciler report for this run: run_spark_batch has not finished, or it failed.
        </div>
      </Section>
    );
  }
  const scalars = Object.entries(r).filter(([, v]) => v === null || ["number", "string", "boolean"].includes(typeof v));
  const nested = Object.entries(r).filter(([, v]) => v !== null && typeof v === "object");
  const invalid = (r.invalid_events ?? {}) as Record<string, number>;
  return (
    <Section title="Reconciler" wide testId="reconciler-report">
      <dl className="cs-kv">
        {scalars.map(([key, value]) => {
          const bad = /missing|short|over|invalid/.test(key) && typeof value === "number" && value > 0;
          return (
            <div key={key} style={{ display: "contents" }} data-testid="reconciler-field" data-field={key} data-value={String(value)}>
              <dt>{RECONCILER_LABELS[key] ?? key}</dt>
              <dd className={bad ? "cs-bad" : undefined}>{typeof value === "number" ? count(value) : String(value)}</dd>
            </div>
          );
        })}
      </dl>
      {typeof invalid === "object" && !Array.isArray(invalid) && Object.keys(invalid).length ? (
        <>
          <h3 style={{ marginTop: 12 }}>Invalid events by reason</h3>
          <table className="cs-table">
            <tbody>
              {Object.entries(invalid).map(([reason, n]) => (
                <tr key={reason} data-testid="reconciler-invalid" data-reason={reason} data-count={n}>
                  <td className="cs-page">{reason}</td>
                  <td className="cs-num">{count(n)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
      {nested
        .filter(([key]) => key !== "invalid_events")
        .map(([key, value]) => (
          <details key={key} data-testid="reconciler-detail" data-field={key}>
            <summary className="cs-muted">
              {key} ({Array.isArray(value) ? `${value.length} entries` : "details"})
            </summary>
            <pre style={{ fontSize: 12, overflowX: "auto" }}>{JSON.stringify(value, null, 2)}</pre>
          </details>
        ))}
    </Section>
  );
}
