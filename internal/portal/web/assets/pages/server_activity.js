// A server's Activity log blade: its events from the subscription's activity log (the API
// `pgflex monitor activity-log list` reads), newest first, refreshed live; and a chart of its key
// checks and state over time, from the server's Microsoft.Insights metrics (the key monitor's
// checks of the customer-managed key, and whether the server was accessible after each).
import * as api from '../api.js';
import { h, clear, button, messageArea, table, formatTime } from '../ui.js';

const refreshMs = 3000;
const metricsVersion = '2023-10-01';
const chartMinutes = 30;

// Readable names of the events pgflex records on its own.
const eventNames = {
  keyrevoked: 'Key revoked: server Inaccessible',
  accessrestored: 'Key access restored',
  keyversionupdated: 'Key version followed',
  geobackupkeyinvalid: 'Geo-backup key invalid',
  geobackupkeyrestored: 'Geo-backup key restored',
};

function eventName(op) {
  const m = /\/([^/]+)\/action$/i.exec(op || '');
  return (m && eventNames[m[1].toLowerCase()]) || op || '';
}

const loc = (v) => (v && typeof v === 'object' ? (v.localizedValue || v.value || '') : (v || ''));

export default async function render({ main }, server) {
  const msg = messageArea();
  const updated = h('span', { class: 'hint' });
  const eventsArea = h('div', {});
  const chartArea = h('div', { class: 'chart' });
  main.append(
    h('div', { class: 'toolbar' }, button('Refresh', () => refresh()), updated),
    msg.el,
    h('h2', {}, 'Events'), eventsArea,
    h('h2', {}, 'Key checks and state'), chartArea);

  let lastEvents = '';
  let lastChart = '';
  let running = false;
  let stopped = false;

  async function refresh() {
    if (running || stopped) return;
    running = true;
    try {
      const [events, metrics, fresh] = await Promise.all([loadEvents(server), loadMetrics(server), server.get()]);
      metrics.state = (fresh.properties && fresh.properties.state) || 'Unknown';
      if (stopped) return;
      const ek = events.map((e) => e.eventDataId).join(',');
      if (ek !== lastEvents || !eventsArea.firstChild) {
        lastEvents = ek;
        clear(eventsArea).append(eventsTable(events));
      }
      const ck = JSON.stringify([metrics.buckets, metrics.state]);
      if (ck !== lastChart || !chartArea.firstChild) {
        lastChart = ck;
        clear(chartArea).append(chart(metrics, server));
      }
      msg.clear();
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${refreshMs / 1000} seconds.`;
    } catch (e) {
      if (!stopped) msg.error(e);
    } finally {
      running = false;
    }
  }

  await refresh();
  const timer = setInterval(refresh, refreshMs);
  return () => { stopped = true; clearInterval(timer); };
}

// loadEvents reads the server's events of the last 7 days, newest first.
async function loadEvents(server) {
  const to = new Date();
  const from = new Date(to.getTime() - 7 * 24 * 3600 * 1000);
  const q = (s) => `'${String(s).replace(/'/g, "''")}'`;
  const filter = `eventTimestamp ge ${q(from.toISOString())} and eventTimestamp le ${q(to.toISOString())} and resourceUri eq ${q(server.id)}`;
  const path = `/subscriptions/${api.subscriptionId()}/providers/Microsoft.Insights/eventtypes/management/values?$filter=${encodeURIComponent(filter)}`;
  const events = await api.list(path, api.apiVersions.activity);
  // Newest first, by time (RFC 3339 with fewer fraction digits does not sort as text).
  events.sort((a, b) => Date.parse(b.eventTimestamp) - Date.parse(a.eventTimestamp));
  return events;
}

function eventsTable(events) {
  return table('Activity log', [
    { label: 'Time', render: (e) => h('time', { datetime: e.eventTimestamp }, formatTime(e.eventTimestamp)) },
    { label: 'Event', render: (e) => eventName(loc(e.operationName)) },
    { label: 'Operation name', render: (e) => loc(e.operationName) },
    { label: 'Status', render: (e) => loc(e.status) },
    { label: 'Level', render: (e) => e.level || '' },
    { label: 'Description', render: (e) => e.description || '' },
  ], events, { empty: 'No events for this server in the last 7 days.' });
}

// loadMetrics reads the last chartMinutes minutes of the server's key checks and state, per
// minute: {buckets: [{t, ok, failed, accessible (1, 0 or null)}]}.
async function loadMetrics(server) {
  const to = new Date();
  to.setUTCSeconds(0, 0);
  to.setUTCMinutes(to.getUTCMinutes() + 1);
  const from = new Date(to.getTime() - chartMinutes * 60 * 1000);
  const params = new URLSearchParams({
    metricnames: 'key_checks_succeeded,key_checks_failed,server_accessible',
    timespan: `${from.toISOString()}/${to.toISOString()}`,
    interval: 'PT1M',
    aggregation: 'Total,Minimum',
  });
  const res = await api.arm('GET', `${server.id}/providers/Microsoft.Insights/metrics?${params}`, metricsVersion);
  const series = {};
  for (const m of (res && res.value) || []) {
    series[m.name.value] = ((m.timeseries && m.timeseries[0] && m.timeseries[0].data) || []);
  }
  const ok = series.key_checks_succeeded || [];
  const failed = series.key_checks_failed || [];
  const acc = series.server_accessible || [];
  const buckets = ok.map((p, i) => ({
    t: p.timeStamp,
    ok: p.total || 0,
    failed: (failed[i] && failed[i].total) || 0,
    accessible: acc[i] && typeof acc[i].minimum === 'number' ? acc[i].minimum : null,
  }));
  return { buckets };
}

const svgNS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

function hhmm(t) {
  const d = new Date(t);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// chart draws the per-minute checks as stacked bars (succeeded below, failed above) and the
// server's state as a strip beneath, with a summary and a table as its text alternative.
function chart({ buckets, state }, server) {
  const cmk = ((server.current && server.current.properties && server.current.properties.dataEncryption) || {}).type === 'AzureKeyVault';
  const withData = buckets.filter((b) => b.ok + b.failed > 0 || b.accessible !== null);
  const totalOk = buckets.reduce((n, b) => n + b.ok, 0);
  const totalFailed = buckets.reduce((n, b) => n + b.failed, 0);
  const inaccessibleMinutes = buckets.filter((b) => b.accessible === 0).length;
  const summaryText = withData.length
    ? `Last ${chartMinutes} minutes: ${totalOk} key checks succeeded, ${totalFailed} failed; the server was Inaccessible in ${inaccessibleMinutes} of the minutes; current state: ${state}.`
    : (cmk ? `No key checks recorded in the last ${chartMinutes} minutes yet.` : 'The server uses a service-managed key: there are no customer-managed key checks to show.');
  const summaryId = `chart-summary-${Math.random().toString(36).slice(2)}`;
  const summary = h('p', { id: summaryId, class: 'chart-summary' }, summaryText);

  const W = 720; const H = 236; const left = 36; const right = 8; const top = 26; const stripH = 14; const axisH = 18;
  const plotH = H - top - stripH - axisH - 8;
  const n = Math.max(buckets.length, 1);
  const bw = (W - left - right) / n;
  const maxY = Math.max(1, ...buckets.map((b) => b.ok + b.failed));
  const y = (v) => top + plotH - (v / maxY) * plotH;
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': summaryId, class: 'keychecks' });
  g.append(svg('title', {}, 'Key checks and state per minute'));
  // Axis and grid.
  g.append(svg('line', { x1: left, y1: top + plotH, x2: W - right, y2: top + plotH, stroke: '#8a8886', 'stroke-width': 1 }));
  for (const v of [0, maxY]) {
    g.append(svg('text', { x: left - 4, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 10, fill: '#605e5c' }, String(v)));
  }
  buckets.forEach((b, i) => {
    const x = left + i * bw + 1;
    const w = Math.max(bw - 2, 1);
    if (b.ok > 0) g.append(svg('rect', { x, y: y(b.ok), width: w, height: top + plotH - y(b.ok), fill: '#107c10', class: 'bar-ok' }));
    if (b.failed > 0) {
      g.append(svg('rect', { x, y: y(b.ok + b.failed), width: w, height: y(b.ok) - y(b.ok + b.failed), fill: '#a4262c', class: 'bar-failed' }));
    }
    const stripY = top + plotH + 4;
    if (b.accessible !== null) {
      g.append(svg('rect', { x, y: stripY, width: w, height: stripH, fill: b.accessible === 0 ? '#a4262c' : '#107c10',
        'fill-opacity': b.accessible === 0 ? 1 : 0.35, class: b.accessible === 0 ? 'state-inaccessible' : 'state-accessible' }));
    }
    if (i % 5 === 0) {
      g.append(svg('text', { x: x + w / 2, y: H - 4, 'text-anchor': 'middle', 'font-size': 10, fill: '#605e5c' }, hhmm(b.t)));
    }
  });
  // Legend, inside the picture (the table below carries the same information as text).
  let lx = left;
  for (const [fill, opacity, text] of [['#107c10', 1, 'Checks succeeded'], ['#a4262c', 1, 'Checks failed'],
    ['#107c10', 0.35, 'Accessible (strip)'], ['#a4262c', 1, 'Inaccessible (strip)']]) {
    g.append(svg('rect', { x: lx, y: 6, width: 10, height: 10, fill, 'fill-opacity': opacity }));
    g.append(svg('text', { x: lx + 14, y: 15, 'font-size': 11, fill: '#1b1a19' }, text));
    lx += 28 + text.length * 6;
  }
  const rows = withData.slice().reverse();
  const detail = table('Key checks and state per minute', [
    { label: 'Minute', render: (b) => h('time', { datetime: b.t }, formatTime(b.t)) },
    { label: 'Checks succeeded', render: (b) => String(b.ok) },
    { label: 'Checks failed', render: (b) => String(b.failed) },
    { label: 'State', render: (b) => (b.accessible === null ? 'Not sampled' : (b.accessible === 0 ? 'Inaccessible (at least once)' : 'Accessible')) },
  ], rows, { empty: 'No minutes with key checks.' });
  return h('div', {}, summary, g, detail);
}
