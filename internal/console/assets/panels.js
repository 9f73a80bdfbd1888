// Panels that stay open: an agent's logs (followed with a streamed fetch
// of NDJSON) and a sandbox terminal (a WebSocket). Both go through the same
// front door as every other call: the session cookie becomes the bearer
// token in front of it, and a WebSocket is let through only from this
// page's own origin. Each panel closes its stream when the view changes.
import { h, api, errorBox } from './app.js';

const enc = encodeURIComponent;
const maxChars = 200000; // what a panel keeps of its output

// onLeave runs fn once, when the route changes.
function onLeave(fn) {
  window.addEventListener('hashchange', fn, { once: true });
}

// append adds text to a scrolled output, keeping its tail, and follows
// the end when the reader was at the end.
function append(out, text) {
  const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
  let t = out.textContent + text;
  if (t.length > maxChars) t = t.slice(t.length - maxChars);
  out.textContent = t;
  if (atEnd) out.scrollTop = out.scrollHeight;
}

function logLine(e) {
  const t = e.time ? new Date(e.time).toISOString().slice(11, 23) : '';
  return (e.missed ? '[' + e.missed + ' entries missed]\n' : '') + t + ' ' + e.session + ' ' + e.level + ' ' + e.text +
    (e.truncated ? ' [+' + e.truncated + ' bytes cut]' : '') + '\n';
}

// logsPanel shows an agent's log entries, optionally of one session, and
// follows new ones while "Follow" is checked.
export function logsPanel(agentName, sessionID) {
  const filter = h('input', { id: 'logs-session', name: 'logs-session', type: 'text', size: 20, value: sessionID || '' });
  const follow = h('input', { id: 'logs-follow', name: 'logs-follow', type: 'checkbox' });
  const out = h('pre', { id: 'logs-output', class: 'logs', role: 'log', 'aria-label': 'Log entries of ' + agentName });
  const msg = h('div', { id: 'logs-error' });
  let ctl = null;
  const stop = () => { if (ctl) ctl.abort(); ctl = null; };
  onLeave(stop);
  const path = (q) => '/v1/agents/' + enc(agentName) + '/logs?' + new URLSearchParams(q).toString();
  const load = async (ev) => {
    if (ev) ev.preventDefault();
    stop();
    msg.replaceChildren();
    out.textContent = '';
    const q = {};
    if (filter.value.trim()) q.session = filter.value.trim();
    try {
      const l = await api('GET', path({ ...q, limit: '500' }));
      append(out, l.entries.map(logLine).join(''));
      if (!l.entries.length && !follow.checked) out.textContent = 'No log entries' + (q.session ? ' of session ' + q.session : '') + '.';
      if (follow.checked) await stream({ ...q, after: String(l.next), follow: 'true' });
    } catch (err) {
      if (err.name !== 'AbortError') msg.replaceChildren(errorBox(err));
    }
  };
  // stream reads the followed NDJSON answer until it ends or is aborted.
  const stream = async (q) => {
    const mine = new AbortController();
    ctl = mine;
    const res = await api('GET', path(q), undefined, { raw: true, accept: 'application/x-ndjson', signal: mine.signal });
    if (!res.ok) {
      const p = await res.json().catch(() => ({}));
      msg.replaceChildren(errorBox({ problem: p, message: p.detail || 'HTTP ' + res.status }));
      return;
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        let text = '';
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) text += logLine(JSON.parse(line));
        }
        if (text) append(out, text);
      }
    } finally {
      if (ctl === mine) ctl = null;
    }
  };
  follow.addEventListener('change', () => { if (follow.checked) load(); else stop(); });
  const form = h('form', { 'aria-label': 'Show logs', onsubmit: load },
    h('label', { for: 'logs-session' }, 'Session (empty: all)', filter),
    h('label', { for: 'logs-follow', class: 'check' }, follow, 'Follow new entries'),
    h('button', { type: 'submit' }, 'Show logs'));
  load();
  return [h('h2', {}, 'Logs'), form, msg, out];
}

// clean turns terminal bytes into plain text: escape sequences dropped,
// carriage returns and backspaces applied to the line being written.
function clean(prev, text) {
  text = text.replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)?/g, '') // OSC (window titles)
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '') // CSI (colours, cursor)
    .replace(/\x1b[()][0-9A-Za-z]/g, '').replace(/\x1b./g, '')
    .replace(/\r+\n/g, '\n').replace(/[\x00-\x07\x0b-\x0c\x0e-\x1f\x7f]/g, (c) => (c === '\b' || c === '\r' ? c : ''));
  let s = prev;
  for (const ch of text) {
    if (ch === '\b') s = s.endsWith('\n') ? s : s.slice(0, -1);
    else if (ch === '\r') s = s.slice(0, s.lastIndexOf('\n') + 1);
    else s += ch;
  }
  return s;
}

// terminalPanel opens a terminal in a sandbox: a line-based text terminal
// (type a line, Enter sends it with a carriage return) sized from the
// panel.
export function terminalPanel(sandboxID) {
  const out = h('pre', { id: 'terminal-output', class: 'terminal', role: 'log', 'aria-label': 'Terminal output' });
  const line = h('input', { id: 'terminal-input', name: 'terminal-input', type: 'text', size: 50, autocomplete: 'off', spellcheck: 'false', disabled: true });
  const send = h('button', { type: 'submit', disabled: true }, 'Send line');
  const intr = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Send Ctrl-C');
  const open = h('button', { type: 'button' }, 'Open terminal');
  const state = h('p', { id: 'terminal-state', role: 'status' }, 'Closed.');
  let ws = null;
  let ro = null;
  let text = '';
  const size = () => {
    const probe = h('span', {}, 'M');
    out.append(probe);
    const r = probe.getBoundingClientRect();
    probe.remove();
    const cols = Math.max(20, Math.min(500, Math.floor((out.clientWidth - 16) / (r.width || 8))));
    const rows = Math.max(5, Math.min(200, Math.floor((out.clientHeight - 16) / (r.height || 16))));
    return { rows, cols };
  };
  const setOpen = (on) => {
    line.disabled = send.disabled = intr.disabled = !on;
    open.textContent = on ? 'Close terminal' : 'Open terminal';
  };
  const close = () => {
    if (ro) ro.disconnect();
    ro = null;
    if (ws) ws.close(1000, 'closed by the console');
    ws = null;
    setOpen(false);
  };
  onLeave(close);
  const start = () => {
    const { rows, cols } = size();
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/sandboxes/' + enc(sandboxID) +
      '/terminal?' + new URLSearchParams({ rows: String(rows), cols: String(cols) }).toString();
    text = '';
    out.textContent = '';
    state.textContent = 'Connecting…';
    const sock = new WebSocket(url);
    sock.binaryType = 'arraybuffer';
    ws = sock;
    const dec = new TextDecoder();
    sock.addEventListener('open', () => {
      state.textContent = 'Connected (' + cols + '×' + rows + ').';
      setOpen(true);
      line.focus();
      ro = new ResizeObserver(() => {
        if (ws !== sock || sock.readyState !== WebSocket.OPEN) return;
        sock.send(JSON.stringify({ type: 'resize', ...size() }));
      });
      ro.observe(out);
    });
    sock.addEventListener('message', (ev) => {
      if (typeof ev.data === 'string') {
        let c = {};
        try { c = JSON.parse(ev.data); } catch { /* not a control */ }
        if (c.type === 'exit') state.textContent = 'The terminal ended (exit ' + c.exit_code + ').';
        else if (c.type === 'error') state.textContent = 'Error: ' + ((c.problem && c.problem.detail) || 'unknown');
        return;
      }
      text = clean(text, dec.decode(ev.data, { stream: true }));
      if (text.length > maxChars) text = text.slice(text.length - maxChars);
      out.textContent = text;
      out.scrollTop = out.scrollHeight;
    });
    sock.addEventListener('close', (ev) => {
      if (ws === sock) {
        ws = null;
        if (ro) ro.disconnect();
        ro = null;
        setOpen(false);
      }
      if (!/ended|Error/.test(state.textContent)) state.textContent = 'Closed' + (ev.reason ? ': ' + ev.reason : '') + '.';
    });
    sock.addEventListener('error', () => { state.textContent = 'The terminal could not be opened (is the sandbox running?).'; });
  };
  const enc8 = new TextEncoder();
  const submit = (ev) => {
    ev.preventDefault();
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(enc8.encode(line.value + '\r'));
    line.value = '';
  };
  open.addEventListener('click', () => { if (ws) close(); else start(); });
  intr.addEventListener('click', () => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(enc8.encode('\x03')); });
  return [h('h2', {}, 'Terminal'),
    h('div', { class: 'row' }, open, intr), state, out,
    h('form', { 'aria-label': 'Terminal input', onsubmit: submit },
      h('label', { for: 'terminal-input' }, 'Line to send (Enter sends it)', line), send)];
}
