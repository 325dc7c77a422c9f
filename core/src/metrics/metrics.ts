/**
 * Connector metrics: gauges a connector sets on its context (`ctx.metrics.gauge`), kept by
 * the runtime per sync and exported in the Prometheus text format — `tributary sync
 * --metrics-file <path>` rewrites the file atomically while the sync runs, for a
 * node_exporter textfile collector or any scraper. Logs say what happened; metrics are for
 * the values an operator graphs and alerts on (e.g. a replication slot's lag).
 */

/** The connector's side: set a gauge; the last value per (name, labels) wins. */
export interface Metrics {
  /**
   * `name`: Prometheus syntax, prefixed `tributary_`, with the unit as suffix
   * (`tributary_postgres_slot_lag_bytes`). `help` is kept from the first call per name.
   * Non-finite values are ignored.
   */
  gauge(name: string, value: number, labels?: Readonly<Record<string, string>>, help?: string): void;
}

export interface MetricSample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
  /** Epoch ms of the last update. */
  updatedAt: number;
}

/** The runtime's side: the gauges set so far, and their Prometheus rendering. */
export interface MetricsRegistry extends Metrics {
  samples(): MetricSample[];
  renderPrometheus(): string;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function createMetricsRegistry(now: () => number = Date.now): MetricsRegistry {
  const samples = new Map<string, MetricSample>();
  const helps = new Map<string, string>();
  return {
    gauge(name, value, labels = {}, help) {
      if (!NAME.test(name)) throw new Error(`Invalid metric name "${name}": use letters, digits, _ and :, not starting with a digit`);
      for (const label of Object.keys(labels)) {
        if (!LABEL.test(label)) throw new Error(`Invalid label "${label}" on metric ${name}`);
      }
      if (!Number.isFinite(value)) return;
      if (help !== undefined && !helps.has(name)) helps.set(name, help);
      const sorted = Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
      samples.set(`${name}${JSON.stringify(sorted)}`, { name, labels: sorted, value, updatedAt: now() });
    },
    samples() {
      return [...samples.values()].sort((a, b) => a.name.localeCompare(b.name) || JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels)));
    },
    renderPrometheus() {
      const lines: string[] = [];
      let current: string | undefined;
      for (const s of this.samples()) {
        if (s.name !== current) {
          current = s.name;
          const help = helps.get(s.name);
          if (help !== undefined) lines.push(`# HELP ${s.name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
          lines.push(`# TYPE ${s.name} gauge`);
        }
        const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`);
        lines.push(`${s.name}${labels.length ? `{${labels.join(',')}}` : ''} ${s.value}`);
      }
      return lines.length ? `${lines.join('\n')}\n` : '';
    },
  };
}
