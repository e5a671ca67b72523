// The "Clickstream" view in the UI's navigation: what the feature store holds now, refreshed every 15 s.
import { type DashboardData, DAG_ID, REFRESH_MS, REPORT_ROUTE, type Run, type Streaming, usePolled } from "./api";
import { BarChart, LineChart } from "./Chart";
import { count, duration, minute, rate, seconds, when } from "./format";
import { Badge, ErrorBox, Section, Styles, UiLink, reportPath } from "./ui";

const WINDOWS = 30;
const RUNS = 10;

export function Dashboard() {
  const dashboard = usePolled<DashboardData>(`dashboard?windows=${WINDOWS}`, REFRESH_MS);
  const runs = usePolled<{ runs: Run[] }>(`runs?limit=${RUNS}`, REFRESH_MS);
  const data = dashboard.data;
  return (
    <div className="cs-root" data-testid="clickstream-dashboard" data-loaded={data ? "true" : "false"}>
      <Styles />
      <header>
        <h2>Clickstream</h2>
        <div className="cs-muted" data-testid="dashboard-updated" data-generated-ms={data?.generated_ms ?? ""}>
          The newest {WINDOWS} one-minute windows in the feature store, refreshed every {REFRESH_MS / 1000} s
          {data ? `; read at ${when(new Date(data.generated_ms).toISOString())}` : ""}.
        </div>
      </header>
      <ErrorBox message={dashboard.error} stale={Boolean(data)} />
      {!data && !dashboard.error ? <div className="cs-muted">Loading…</div> : null}
      {data ? (
        <div className="cs-grid">
          <Section title="Clicks per minute, top pages" wide testId="clicks-chart">
            {data.windows.length ? (
              <LineChart
                title="clicks per minute for the top pages"
                labels={data.windows.map((w) => w.window)}
                series={data.top_pages.map((p) => ({ name: p.page, values: data.series[p.page] ?? [] }))}
              />
            ) : (
              <div className="cs-muted" data-testid="no-windows">
                No window in the feature store yet: run clickstream_pipeline (or clickstream_streaming).
              </div>
            )}
          </Section>
          <TopPages data={data} />
          <Section title="Unique users per window" testId="users-chart">
            <BarChart
              title="unique users per window"
              testId="users-bar"
              bars={data.windows.map((w) => ({ label: w.window, value: w.unique_users, detail: `${count(w.total)} clicks` }))}
            />
            <WindowTable data={data} />
          </Section>
          <StreamingHealth streaming={data.streaming} />
          <DeadLetters data={data} />
          <Runs runs={runs.data?.runs} error={runs.error} />
        </div>
      ) : null}
    </div>
  );
}

function TopPages(props: { data: DashboardData }) {
  const { data } = props;
  const total = data.windows.reduce((sum, w) => sum + w.total, 0);
  const span = data.windows.length
    ? `${minute(data.windows[0].window)}–${minute(data.windows[data.windows.length - 1].window)}`
    : "";
  return (
    <Section title={`Top pages ${span}`} testId="top-pages">
      <table className="cs-table">
        <thead>
          <tr>
            <th>#</th>
            <th>page</th>
            <th className="cs-num">clicks</th>
            <th className="cs-num">share</th>
          </tr>
        </thead>
        <tbody>
          {data.top_pages.map((p, i) => (
            <tr key={p.page} data-testid="top-page-row" data-page={p.page} data-count={p.count}>
              <td>{i + 1}</td>
              <td className="cs-page">{p.page}</td>
              <td className="cs-num">{count(p.count)}</td>
              <td className="cs-num">{total ? `${((100 * p.count) / total).toFixed(1)}%` : "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="cs-muted" data-testid="top-pages-windows" data-windows={data.windows.map((w) => w.window).join(",")}>
        Over {data.windows.length} windows, {count(total)} clicks in all.
      </div>
    </Section>
  );
}

function WindowTable(props: { data: DashboardData }) {
  return (
    <details>
      <summary className="cs-muted">Each window</summary>
      <table className="cs-table">
        <thead>
          <tr>
            <th>window (UTC)</th>
            <th className="cs-num">clicks</th>
            <th className="cs-num">unique users</th>
          </tr>
        </thead>
        <tbody>
          {[...props.data.windows].reverse().map((w) => (
            <tr key={w.window} data-testid="window-row" data-window={w.window} data-total={w.total} data-users={w.unique_users}>
              <td>{w.window}</td>
              <td className="cs-num">{count(w.total)}</td>
              <td className="cs-num">{count(w.unique_users)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

function StreamingHealth(props: { streaming: Streaming | null }) {
  const s = props.streaming;
  if (!s) {
    return (
      <Section title="Streaming" testId="streaming">
        <div className="cs-muted" data-testid="streaming-none">
          No streaming query has reported its progress yet.
        </div>
      </Section>
    );
  }
  // A stopped query's last batch is old by nature; a running one's should be recent.
  const stopped = /stop|terminat|finish/i.test(s.state);
  const stale = !stopped && s.last_batch_age_s !== null && s.last_batch_age_s > 120;
  const fields: [string, string, string, boolean][] = [
    ["state", "state", s.state, false],
    ["input_rows_per_s", "input rate", rate(s.input_rows_per_s), false],
    ["processed_rows_per_s", "processing rate", rate(s.processed_rows_per_s), false],
    ["offsets_behind_latest", "lag (records behind Kafka's end)", count(s.offsets_behind_latest), (s.offsets_behind_latest ?? 0) > 0],
    ["watermark", "watermark", s.watermark ?? "–", false],
    ["newest_window", "newest window", s.newest_window ?? "–", false],
    ["last_batch_age_s", "last batch", s.last_batch_age_s === null ? "–" : `${seconds(s.last_batch_age_s)} ago`, stale],
    ["batch_id", "batch", count(s.batch_id), false],
    ["restarts", "restarts", count(s.restarts), (s.restarts ?? 0) > 0],
    ["last_restart_reason", "last restart reason", s.last_restart_reason ?? "–", false],
  ];
  const raw = s as unknown as Record<string, unknown>;
  return (
    <Section title={`Streaming (${s.query})`} testId="streaming">
      <dl className="cs-kv">
        {fields.map(([key, label, shown, bad]) => (
          <div key={key} style={{ display: "contents" }} data-testid="streaming-field" data-field={key} data-value={String(raw[key] ?? "")}>
            <dt>{label}</dt>
            <dd className={bad ? "cs-bad" : undefined}>{key === "state" ? <Badge state={s.state} /> : shown}</dd>
          </div>
        ))}
      </dl>
      {s.error ? (
        <div className="cs-error" data-testid="streaming-error" style={{ marginTop: 8 }}>
          {s.error}
        </div>
      ) : null}
    </Section>
  );
}

function DeadLetters(props: { data: DashboardData }) {
  const totals = Object.entries(props.data.dead_letter_totals).sort((a, b) => b[1] - a[1]);
  const all = totals.reduce((sum, [, n]) => sum + n, 0);
  return (
    <Section title="Dead letters by reason" testId="dead-letters">
      {totals.length ? (
        <table className="cs-table">
          <thead>
            <tr>
              <th>reason</th>
              <th className="cs-num">records</th>
            </tr>
          </thead>
          <tbody>
            {totals.map(([reason, n]) => (
              <tr key={reason} data-testid="dead-letter-row" data-reason={reason} data-count={n}>
                <td className="cs-page">{reason}</td>
                <td className="cs-num">{count(n)}</td>
              </tr>
            ))}
            <tr>
              <td>all</td>
              <td className="cs-num" data-testid="dead-letter-total" data-count={all}>
                {count(all)}
              </td>
            </tr>
          </tbody>
        </table>
      ) : (
        <div className="cs-muted">No dead letter in these windows.</div>
      )}
      {props.data.dead_letters.length ? (
        <BarChart
          title="dead letters per window"
          testId="dead-letter-bar"
          color="#dc2626"
          bars={props.data.dead_letters.map((d) => ({
            label: d.window,
            value: d.total,
            detail: Object.entries(d.reasons).map(([r, n]) => `${r} ${n}`).join(", "),
          }))}
        />
      ) : null}
    </Section>
  );
}

function Runs(props: { runs?: Run[]; error?: string }) {
  return (
    <Section title={`Recent ${DAG_ID} runs`} wide testId="runs">
      <ErrorBox message={props.error} stale={Boolean(props.runs)} />
      {props.runs && !props.runs.length ? <div className="cs-muted">No run yet.</div> : null}
      {props.runs?.length ? (
        <table className="cs-table">
          <thead>
            <tr>
              <th>run</th>
              <th>state</th>
              <th>type</th>
              <th>started</th>
              <th className="cs-num">took</th>
              <th>report</th>
            </tr>
          </thead>
          <tbody>
            {props.runs.map((run) => (
              <tr key={run.run_id} data-testid="run-row" data-run-id={run.run_id} data-state={run.state ?? ""}>
                <td className="cs-page">{run.run_id}</td>
                <td>
                  <Badge state={run.state} />
                </td>
                <td>{run.run_type ?? "–"}</td>
                <td>{when(run.start_date ?? run.run_after)}</td>
                <td className="cs-num">{duration(run.start_date, run.end_date)}</td>
                <td>
                  <UiLink path={reportPath(run.run_id, DAG_ID, REPORT_ROUTE)} testId="run-report-link">
                    report
                  </UiLink>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}
