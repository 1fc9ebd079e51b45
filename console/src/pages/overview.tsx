// Overview: the live stats as numbers and uPlot charts.

import { statsStore, useStats } from '../stats-store.js';
import { Chart, type Series } from '../components/chart.js';
import { bytes, count, duration, millis, rate } from '../format.js';

const MESSAGES: Series[] = [
  { label: 'in/s', value: (s) => s.messages.inPerSecond, color: '#2563eb' },
  { label: 'out/s', value: (s) => s.messages.outPerSecond, color: '#16a34a' },
];
const CONNECTIONS: Series[] = [
  { label: 'connections', value: (s) => s.connections, color: '#9333ea' },
  { label: 'sessions', value: (s) => s.sessions, color: '#ea580c' },
];
const STORAGE: Series[] = [
  { label: 'log', value: (s) => s.storage.bytesUsed, color: '#0891b2' },
  { label: 'stored messages', value: (s) => s.storage.storedBytes, color: '#ca8a04' },
];
const FSYNC: Series[] = [
  { label: 'p50', value: (s) => s.latency.fsync?.p50 ?? null, color: '#16a34a' },
  { label: 'p90', value: (s) => s.latency.fsync?.p90 ?? null, color: '#ca8a04' },
  { label: 'p99', value: (s) => s.latency.fsync?.p99 ?? null, color: '#dc2626' },
];
const DELIVERY: Series[] = [
  { label: 'p50', value: (s) => s.latency.delivery?.p50 ?? null, color: '#16a34a' },
  { label: 'p90', value: (s) => s.latency.delivery?.p90 ?? null, color: '#ca8a04' },
  { label: 'p99', value: (s) => s.latency.delivery?.p99 ?? null, color: '#dc2626' },
];

export function OverviewPage() {
  const stats = useStats();
  const history = statsStore.history;
  if (!stats) return <p class="muted">{statsStore.error ? `Live stats unavailable: ${statsStore.error}` : 'Waiting for the live stats…'}</p>;
  const figures: Array<[string, string]> = [
    ['messages in/s', rate(stats.messages.inPerSecond)],
    ['messages out/s', rate(stats.messages.outPerSecond)],
    ['connections', count(stats.connections)],
    ['sessions', count(stats.sessions)],
    ['subscriptions', count(stats.subscriptions)],
    ['groups', count(stats.groups)],
    ['dead letters', count(stats.deadLetters)],
    ['dropped', count(stats.messages.dropped)],
    ['storage', `${stats.storage.engine} ${bytes(stats.storage.bytesUsed)}`],
    ['retained', `${count(stats.storage.retained)} (${bytes(stats.storage.retainedBytes)})`],
    ['heap', bytes(stats.heapUsed)],
    ['uptime', duration(stats.uptime)],
  ];
  return (
    <div>
      <div class="figures" data-testid="figures">
        {figures.map(([label, value]) => (
          <div class="figure">
            <span class="figure-value" data-figure={label}>{value}</span>
            <span class="figure-label">{label}</span>
          </div>
        ))}
      </div>
      <div class="charts">
        <Chart title="Messages per second" series={MESSAGES} history={history} format={rate} testId="chart-messages" />
        <Chart title="Connections and sessions" series={CONNECTIONS} history={history} format={(v) => (Number.isInteger(v) ? count(v) : '')} testId="chart-connections" />
        <Chart title="Storage used" series={STORAGE} history={history} format={bytes} testId="chart-storage" />
        <Chart title="fsync latency" series={FSYNC} history={history} format={millis} testId="chart-fsync" />
        <Chart title="Publish-to-deliver latency" series={DELIVERY} history={history} format={millis} testId="chart-delivery" />
      </div>
      <p class="muted small">Eddy {stats.version}; one sample a second from /v1/admin/stats/stream.</p>
    </div>
  );
}
