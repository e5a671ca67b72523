// Shared pieces: styles (plain CSS, themed by the host's Chakra variables when present), sections, badges,
// an error box and links into the host's router.
import type { ReactNode } from "react";

const CSS = `
.cs-root { display: flex; flex-direction: column; gap: 16px; padding: 8px 4px 24px; font-size: 14px; }
.cs-root h2 { font-size: 20px; font-weight: 600; }
.cs-root h3 { font-size: 15px; font-weight: 600; margin-bottom: 8px; }
.cs-muted { color: var(--chakra-colors-fg-muted, #71717a); font-size: 12px; }
.cs-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
.cs-card { border: 1px solid var(--chakra-colors-border, #d4d4d8); border-radius: 8px; padding: 12px 14px;
  min-width: 0; background: var(--chakra-colors-bg, transparent); }
.cs-wide { grid-column: 1 / -1; }
.cs-table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
.cs-table th { text-align: left; font-weight: 600; color: var(--chakra-colors-fg-muted, #71717a); font-size: 12px; }
.cs-table th, .cs-table td { padding: 4px 8px; border-bottom: 1px solid var(--chakra-colors-border-muted, #e4e4e7);
  vertical-align: top; }
.cs-table td.cs-num, .cs-table th.cs-num { text-align: right; }
.cs-page { font-family: var(--chakra-fonts-mono, ui-monospace, monospace); word-break: break-all; }
.cs-error { border: 1px solid #dc2626; background: rgba(220, 38, 38, 0.08); color: inherit; border-radius: 8px;
  padding: 8px 12px; }
.cs-note { border: 1px solid var(--chakra-colors-border, #d4d4d8); border-radius: 8px; padding: 8px 12px; }
.cs-badge { display: inline-block; border-radius: 999px; padding: 0 8px; font-size: 12px; font-weight: 600;
  color: #fff; background: #71717a; }
.cs-kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
.cs-kv dt { color: var(--chakra-colors-fg-muted, #71717a); }
.cs-kv dd { font-variant-numeric: tabular-nums; word-break: break-word; }
.cs-legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin-top: 6px; font-size: 12px; }
.cs-swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; }
.cs-bad { color: #dc2626; font-weight: 600; }
.cs-good { color: #16a34a; }
.cs-root a { color: var(--chakra-colors-blue-500, #2563eb); text-decoration: underline; }
.cs-chart text { fill: var(--chakra-colors-fg-muted, #71717a); font-size: 11px; }
.cs-chart .cs-axis { stroke: var(--chakra-colors-border, #d4d4d8); }
`;

export function Styles() {
  return <style>{CSS}</style>;
}

export function Section(props: { title: string; wide?: boolean; testId?: string; children: ReactNode }) {
  return (
    <section className={props.wide ? "cs-card cs-wide" : "cs-card"} data-testid={props.testId}>
      <h3>{props.title}</h3>
      {props.children}
    </section>
  );
}

export function ErrorBox(props: { message?: string; stale?: boolean }) {
  if (!props.message) return null;
  return (
    <div className="cs-error" role="alert" data-testid="api-error">
      {props.message}
      {props.stale ? " The figures below are from the last answer that came." : ""}
    </div>
  );
}

const STATE_COLORS: Record<string, string> = {
  success: "#16a34a",
  failed: "#dc2626",
  running: "#2563eb",
  queued: "#71717a",
  ACTIVE: "#16a34a",
  RUNNING: "#16a34a",
  STOPPED: "#71717a",
  TERMINATED: "#71717a",
  FAILED: "#dc2626",
  ERROR: "#dc2626",
};

export function Badge(props: { state: string | null | undefined; testId?: string }) {
  const state = props.state ?? "none";
  return (
    <span className="cs-badge" style={{ background: STATE_COLORS[state] ?? "#71717a" }} data-testid={props.testId}>
      {state}
    </span>
  );
}

interface HostRouter {
  Link?: (props: { to: string; children: ReactNode; "data-testid"?: string }) => ReactNode;
  useInRouterContext?: () => boolean;
}

// The host shares its react-router as a global: links through it stay inside the single-page app.
const hostRouter = (globalThis as { ReactRouterDOM?: HostRouter }).ReactRouterDOM;

/** A link to `path` in the Airflow UI (no leading slash; relative to the UI's base URL). */
export function UiLink(props: { path: string; testId?: string; children: ReactNode }) {
  const inRouter = hostRouter?.useInRouterContext ? hostRouter.useInRouterContext() : false;
  if (inRouter && hostRouter?.Link) {
    const HostLink = hostRouter.Link;
    return (
      <HostLink to={`/${props.path}`} data-testid={props.testId}>
        {props.children}
      </HostLink>
    );
  }
  return (
    <a href={new URL(props.path, document.baseURI).href} data-testid={props.testId}>
      {props.children}
    </a>
  );
}

export function reportPath(runId: string, dagId = "clickstream_pipeline", route = "clickstream_report"): string {
  return `dags/${encodeURIComponent(dagId)}/runs/${encodeURIComponent(runId)}/plugin/${route}`;
}
