// A live uPlot line chart over the stats history: one x axis of sample times, one or more series.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { StatsSnapshot } from '../../../src/core/admin/views.js';

export interface Series {
  label: string;
  value: (s: StatsSnapshot) => number | null;
  color: string;
}

export interface ChartProps {
  title: string;
  series: Series[];
  history: StatsSnapshot[];
  /** Formats the y axis and the legend's values. */
  format?: (v: number) => string;
  testId?: string;
}

const WIDTH = 460;
const HEIGHT = 180;

function columns(history: StatsSnapshot[], series: Series[]): uPlot.AlignedData {
  const xs = history.map((s) => Date.parse(s.time) / 1000);
  return [xs, ...series.map((line) => history.map((s) => line.value(s)))];
}

export function Chart(props: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const { series, history, format } = props;

  useEffect(() => {
    if (!host.current) return;
    const value = (_u: uPlot, v: number | null): string => (v === null || v === undefined ? '–' : format ? format(v) : String(v));
    const options: uPlot.Options = {
      width: host.current.clientWidth || WIDTH,
      height: HEIGHT,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1e-9, max ?? 1) * 1.1] } },
      axes: [{}, { size: 64, values: (_u, ticks) => ticks.map((t) => (format ? format(t) : String(t))) }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, spanGaps: false, value }))],
    };
    const chart = new uPlot(options, columns(history, series), host.current);
    plot.current = chart;
    const observer = new ResizeObserver(() => host.current && chart.setSize({ width: host.current.clientWidth || WIDTH, height: HEIGHT }));
    observer.observe(host.current);
    return () => {
      observer.disconnect();
      chart.destroy();
      plot.current = null;
    };
    // The chart is made once; new samples go through setData below.
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  // The history array grows in place: every render (one per sample) gives the chart its data.
  useEffect(() => {
    plot.current?.setData(columns(history, series));
  });

  return (
    <section class="card chart" data-testid={props.testId}>
      <h3>{props.title}</h3>
      <div ref={host} />
    </section>
  );
}
