import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { gql, messageOf, type Scope } from './api';
import { TagSelect } from './pages';
import { DASHBOARD_QUERY } from './documents';

type Grouping = 'HOUR' | 'DAY' | 'WEEK' | 'MONTH';

interface Period {
  start: string;
  sessionsCreated: number;
  sessionsExpired: number;
  activeSessions: number;
  sessionsRevoked: number;
  starts: number;
  verifies: number;
  refreshes: number;
  revokes: number;
  successes: number;
  failures: number;
}

interface Dashboard {
  totalUsers: number;
  activeUsers: number;
  totalSessions: number;
  activeSessions: number;
  revokedSessions: number;
  expiredSessions: number;
  errorRate: number | null;
  averageDurationMs: number | null;
  periods: Period[];
}

/** How far back each grouping looks, in its own periods (within the API's range limit). */
const SPAN: Record<Grouping, number> = { HOUR: 48, DAY: 30, WEEK: 26, MONTH: 12 };

/** The start (UTC) of the period holding `t`: weeks start on Monday, as the API counts them. */
function periodStart(t: Date, grouping: Grouping): Date {
  const d = new Date(t);
  if (grouping === 'HOUR') d.setUTCMinutes(0, 0, 0);
  else d.setUTCHours(0, 0, 0, 0);
  if (grouping === 'WEEK') d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
  if (grouping === 'MONTH') d.setUTCDate(1);
  return d;
}

function step(t: Date, grouping: Grouping, n: number): Date {
  const d = new Date(t);
  if (grouping === 'HOUR') d.setUTCHours(d.getUTCHours() + n);
  else if (grouping === 'DAY') d.setUTCDate(d.getUTCDate() + n);
  else if (grouping === 'WEEK') d.setUTCDate(d.getUTCDate() + 7 * n);
  else d.setUTCMonth(d.getUTCMonth() + n);
  return d;
}

/**
 * Every period of the range, with zeros where the API has no row: it sends the periods with any
 * figure, active sessions included, so one it leaves out had none live at its end either.
 */
function fill(periods: Period[], from: Date, to: Date, grouping: Grouping): Period[] {
  const byStart = new Map(periods.map((p) => [new Date(p.start).getTime(), p]));
  const all: Period[] = [];
  for (let t = from; t < to; t = step(t, grouping, 1)) {
    all.push(
      byStart.get(t.getTime()) ?? {
        start: t.toISOString(),
        sessionsCreated: 0,
        sessionsExpired: 0,
        activeSessions: 0,
        sessionsRevoked: 0,
        starts: 0,
        verifies: 0,
        refreshes: 0,
        revokes: 0,
        successes: 0,
        failures: 0,
      },
    );
  }
  return all;
}

interface Series {
  label: string;
  color: string;
  values: (number | null)[];
  /** Drawn on the right-hand axis (a percentage). */
  percent?: boolean;
  /** A level, not a count per period: the table shows its latest value, not a sum. */
  level?: boolean;
}

/** What the table beneath a chart shows for a series: a sum, the latest level, or nothing. */
function summaryOf(s: Series): string {
  if (s.percent) return '—';
  if (s.level) return String(s.values.at(-1) ?? 0);
  return String(s.values.reduce<number>((sum, v) => sum + (v ?? 0), 0));
}

/** A uPlot chart, redrawn when its data or width changes; a table beneath gives the totals. */
function Chart({ title, x, series }: { title: string; x: number[]; series: Series[] }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const hasPercent = series.some((s) => s.percent);
    const options: uPlot.Options = {
      width: Math.max(320, element.clientWidth),
      height: 260,
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          scale: s.percent ? '%' : 'n',
          points: { show: x.length < 60 },
          value: (_u: uPlot, v: number | null) =>
            v === null ? '–' : s.percent ? `${v.toFixed(1)}%` : String(v),
        })),
      ],
      scales: { x: { time: true }, n: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [
        {},
        { scale: 'n' },
        ...(hasPercent
          ? [
              {
                scale: '%',
                side: 1 as const,
                values: (_u: uPlot, v: number[]) => v.map((n) => `${n}%`),
              },
            ]
          : []),
      ],
    };
    const chart = new uPlot(options, [x, ...series.map((s) => s.values)], element);
    const resize = new ResizeObserver(() =>
      chart.setSize({ width: Math.max(320, element.clientWidth), height: 260 }),
    );
    resize.observe(element);
    return () => {
      resize.disconnect();
      chart.destroy();
    };
  }, [x, series]);
  return (
    <figure class="chart" data-chart={title}>
      <figcaption>{title}</figcaption>
      <div ref={box} />
      <table class="totals">
        <tbody>
          <tr>
            {series.map((s) => (
              <td key={s.label} data-series={s.label}>
                <span class="swatch" style={{ background: s.color }} />
                {s.label}: <strong>{summaryOf(s)}</strong>
              </td>
            ))}
          </tr>
        </tbody>
      </table>
    </figure>
  );
}

export function DashboardPage({ scope }: { scope: Scope }) {
  const [tag, setTag] = useState('');
  const [grouping, setGrouping] = useState<Grouping>('HOUR');
  const [data, setData] = useState<{ dashboard: Dashboard; periods: Period[] } | null>(null);
  const [error, setError] = useState<string | null>(null);

  const latest = useRef(0);
  const load = async () => {
    if (!tag) return;
    const call = ++latest.current;
    const to = step(periodStart(new Date(), grouping), grouping, 1);
    const from = step(to, grouping, -SPAN[grouping]);
    try {
      const result = await gql<{ sessionDashboard: Dashboard }>(scope, DASHBOARD_QUERY, {
        tag,
        from: from.toISOString(),
        to: to.toISOString(),
        groupBy: grouping,
      });
      // An answer to an older request (another tag or grouping) is dropped.
      if (call !== latest.current) return;
      setData({
        dashboard: result.sessionDashboard,
        periods: fill(result.sessionDashboard.periods, from, to, grouping),
      });
      setError(null);
    } catch (caught) {
      setError(messageOf(caught));
    }
  };
  useEffect(() => {
    void load();
  }, [scope, tag, grouping]);

  const d = data?.dashboard;
  const { x, sessionSeries, operationSeries } = useMemo(() => {
    const periods = data?.periods ?? [];
    const x = periods.map((p) => new Date(p.start).getTime() / 1000);
    const sessionSeries: Series[] = [
      {
        label: 'active',
        color: '#059669',
        level: true,
        values: periods.map((p) => p.activeSessions),
      },
      { label: 'started', color: '#2563eb', values: periods.map((p) => p.sessionsCreated) },
      { label: 'revoked', color: '#dc2626', values: periods.map((p) => p.sessionsRevoked) },
      { label: 'expired', color: '#9333ea', values: periods.map((p) => p.sessionsExpired) },
    ];
    const operationSeries: Series[] = [
      { label: 'starts', color: '#2563eb', values: periods.map((p) => p.starts) },
      { label: 'verifies', color: '#059669', values: periods.map((p) => p.verifies) },
      { label: 'refreshes', color: '#d97706', values: periods.map((p) => p.refreshes) },
      { label: 'revokes', color: '#dc2626', values: periods.map((p) => p.revokes) },
      {
        label: 'error rate',
        color: '#6b7280',
        percent: true,
        values: periods.map((p) =>
          p.successes + p.failures === 0 ? null : (100 * p.failures) / (p.successes + p.failures),
        ),
      },
    ];
    return { x, sessionSeries, operationSeries };
  }, [data]);

  return (
    <section>
      <h2>Dashboard</h2>
      <div class="filters">
        <TagSelect scope={scope} value={tag} onChange={setTag} />
        <label>
          Per
          <select
            name="groupBy"
            value={grouping}
            onChange={(e) => setGrouping(e.currentTarget.value as Grouping)}
          >
            <option value="HOUR">hour (48 h)</option>
            <option value="DAY">day (30 days)</option>
            <option value="WEEK">week (26 weeks)</option>
            <option value="MONTH">month (12 months)</option>
          </select>
        </label>
        <button type="button" class="secondary" onClick={() => void load()}>
          Refresh
        </button>
      </div>
      {error && <p class="error">{error}</p>}
      {d && (
        <>
          <dl class="stats">
            <div>
              <dt>Active sessions</dt>
              <dd data-stat="activeSessions">{d.activeSessions}</dd>
            </div>
            <div>
              <dt>Revoked</dt>
              <dd data-stat="revokedSessions">{d.revokedSessions}</dd>
            </div>
            <div>
              <dt>Expired</dt>
              <dd data-stat="expiredSessions">{d.expiredSessions}</dd>
            </div>
            <div>
              <dt>Users (active 24 h)</dt>
              <dd>
                {d.totalUsers} ({d.activeUsers})
              </dd>
            </div>
            <div>
              <dt>Error rate</dt>
              <dd>{d.errorRate === null ? '–' : `${(100 * d.errorRate).toFixed(1)}%`}</dd>
            </div>
            <div>
              <dt>Average ms</dt>
              <dd>{d.averageDurationMs === null ? '–' : d.averageDurationMs.toFixed(1)}</dd>
            </div>
          </dl>
          <Chart title="Sessions" x={x} series={sessionSeries} />
          <Chart title="Operations and error rate" x={x} series={operationSeries} />
        </>
      )}
    </section>
  );
}
