// The metrics view: samples the daemon's Prometheus /metrics every few
// seconds and draws request rate, latency percentiles, the front door's
// queues and live sessions and sandboxes as SVG (built
// with DOM calls; no inline style, no library).
import { h, api } from './app.js';

const NS = 'http://www.w3.org/2000/svg';
const KEEP = 60;
let timer = null;

// parse reads the Prometheus text format into [{name, labels, value}].
export function parse(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function sum(samples, name, pred = () => true) {
  return samples.filter((s) => s.name === name && pred(s.labels)).reduce((a, s) => a + s.value, 0);
}

// buckets sums the histogram's cumulative buckets by upper bound.
function buckets(samples, name) {
  const m = new Map();
  for (const s of samples) if (s.name === name + '_bucket') m.set(s.labels.le, (m.get(s.labels.le) || 0) + s.value);
  return [...m.entries()].map(([le, c]) => [le === '+Inf' ? Infinity : Number(le), c]).sort((a, b) => a[0] - b[0]);
}

// quantile estimates q from the difference of two cumulative bucket lists.
function quantile(q, now, before) {
  const d = now.map(([le, c], i) => [le, c - ((before[i] && before[i][1]) || 0)]);
  const total = d.length ? d[d.length - 1][1] : 0;
  if (total <= 0) return 0;
  const rank = q * total;
  let prevLe = 0;
  let prevC = 0;
  for (const [le, c] of d) {
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevC)) / Math.max(c - prevC, 1e-9);
    }
    prevLe = le;
    prevC = c;
  }
  return prevLe;
}

function svgEl(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

// chart draws series (arrays of numbers) as lines in a 400x160 box.
export function chart(title, unit, names, series) {
  const W = 400, H = 160, P = 30;
  const max = Math.max(1e-9, ...series.flat());
  const svg = svgEl('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title + ' (max ' + max.toPrecision(3) + ' ' + unit + ')' });
  svg.append(svgEl('line', { class: 'axis', x1: P, y1: H - P + 10, x2: W, y2: H - P + 10 }), svgEl('line', { class: 'axis', x1: P, y1: 0, x2: P, y2: H - P + 10 }));
  const top = svgEl('text', { x: 2, y: 12 });
  top.textContent = max.toPrecision(3);
  const bottom = svgEl('text', { x: 2, y: H - P + 10 });
  bottom.textContent = '0';
  svg.append(top, bottom);
  series.forEach((ys, i) => {
    if (ys.length < 2) return;
    const pts = ys.map((y, j) => `${P + ((W - P) * j) / (ys.length - 1)},${H - P + 10 - ((H - P) * y) / max}`).join(' '); // the samples so far fill the width
    svg.append(svgEl('polyline', { class: 's' + i, points: pts }));
  });
  return h('figure', {}, h('figcaption', {}, title + ' (' + unit + ')'), svg,
    h('div', { class: 'legend' }, names.map((n, i) => h('span', { class: 'k' + i }, '— ' + n + ' ' + (series[i].length ? series[i][series[i].length - 1].toPrecision(3) : '')))));
}

export async function metricsView(main) {
  clearInterval(timer);
  const hist = { t: [], rate: [], p50: [], p90: [], p99: [], executing: [], queued: [], sessions: [], sandboxes: [] };
  let prev = null;
  const box = h('div', { class: 'grid', id: 'charts' });
  const sample = async () => {
    if (!document.body.contains(box)) { clearInterval(timer); return; }
    const samples = parse(await api('GET', '/metrics', undefined, { accept: 'text/plain' }));
    const now = { t: performance.now() / 1000, req: sum(samples, 'agentcloud_http_requests_total'), b: buckets(samples, 'agentcloud_http_request_duration_seconds') };
    if (prev) {
      const dt = Math.max(now.t - prev.t, 0.001);
      const push = (k, v) => { hist[k].push(v); if (hist[k].length > KEEP) hist[k].shift(); };
      push('rate', (now.req - prev.req) / dt);
      push('p50', quantile(0.5, now.b, prev.b) * 1000);
      push('p90', quantile(0.9, now.b, prev.b) * 1000);
      push('p99', quantile(0.99, now.b, prev.b) * 1000);
      push('executing', sum(samples, 'agentcloud_gateway_executing'));
      push('queued', sum(samples, 'agentcloud_gateway_queued'));
      push('sessions', sum(samples, 'agentcloud_sessions_live'));
      push('sandboxes', sum(samples, 'agentcloud_sandboxes_live'));
    }
    prev = now;
    box.replaceChildren(
      chart('HTTP request rate', 'requests/s', ['all routes'], [hist.rate]),
      chart('HTTP latency percentiles', 'ms', ['p50', 'p90', 'p99'], [hist.p50, hist.p90, hist.p99]),
      chart('Front door: requests executing and queued', 'requests', ['executing', 'queued'], [hist.executing, hist.queued]),
      chart('Live sessions and sandboxes', 'count', ['sessions', 'sandboxes'], [hist.sessions, hist.sandboxes]));
  };
  main.replaceChildren(h('h1', { tabindex: '-1' }, 'Metrics'),
    h('p', {}, 'Sampled from /metrics every 2 seconds while this view is open (the last two minutes).'), box);
  await sample();
  timer = setInterval(() => sample().catch(() => clearInterval(timer)), 2000);
}
