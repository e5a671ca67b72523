// The bundle's one export, which the Airflow UI renders for both react_apps of plugin.py: on a DAG run's
// tab (the UI passes dagId and runId) the run's report, in the navigation the Clickstream view.
import { Dashboard } from "./Dashboard";
import { Report } from "./Report";

export interface PluginProps {
  dagId?: string;
  runId?: string;
  taskId?: string;
  mapIndex?: string;
}

export default function ClickstreamPlugin(props: PluginProps) {
  return props.runId ? <Report dagId={props.dagId} runId={props.runId} /> : <Dashboard />;
}
