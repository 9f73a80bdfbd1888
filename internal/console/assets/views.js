// The console's views, one function per route: each renders into main and
// reads and writes only through api(), so Cedar decides what it shows.
import { h, api, say, errorBox, go } from './app.js';
import { metricsView } from './charts.js';
import { logsPanel, terminalPanel } from './panels.js';

const enc = encodeURIComponent;
const when = (t) => (t && !String(t).startsWith('0001-') ? new Date(t).toLocaleString() : '');
const short = (d) => (d ? String(d).replace(/^sha256:/, '').slice(0, 12) : '');
const badge = (s) => h('span', { class: 'badge ' + String(s || '').toLowerCase() }, s || '');
const link = (hash, text) => h('a', { href: hash }, text);

// show replaces main's content with children (nested arrays flattened,
// empty parts dropped).
function show(main, ...children) {
  main.replaceChildren(...children.flat(Infinity).filter((c) => c !== '' && c !== null && c !== undefined));
}

// table renders rows (arrays of cells) under a caption and header row.
function table(caption, headers, rows, empty = 'None.') {
  if (!rows.length) return h('p', { class: 'muted' }, caption + ': ' + empty);
  return h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c)))))));
}

// field is a labelled input.
function field(label, attrs) {
  const id = attrs.id || 'f-' + label.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  const tag = attrs.tag || 'input';
  delete attrs.tag;
  const el = h(tag, { ...attrs, id, name: attrs.name || id });
  if (tag === 'select') for (const o of attrs.options || []) el.append(h('option', { value: o }, o));
  el.removeAttribute('options');
  return [h('label', { for: id }, label, el), el];
}

// action runs fn for a button, shows the outcome, and re-renders.
async function action(what, fn, after) {
  try {
    await fn();
    say(what + ': done');
    if (after) after(); else go(location.hash);
  } catch (err) {
    say(what + ' failed: ' + err.message);
    const main = document.getElementById('main');
    main.prepend(errorBox(err));
  }
}

async function maybe(p) {
  try { return await p; } catch { return null; }
}

// --- agents, versions, pipeline runs ---

async function agents(main) {
  const list = await api('GET', '/v1/agents');
  const [fileLabel, file] = field('Bundle (.tar.gz of an agent directory)', { id: 'deploy-bundle', type: 'file', accept: '.tar.gz,.tgz,application/gzip', required: true });
  const out = h('div', { id: 'deploy-result' });
  const deploy = async (ev) => {
    ev.preventDefault();
    out.replaceChildren(h('p', {}, 'Deploying…'));
    try {
      const res = await api('POST', '/v1/agents', file.files[0], { type: 'application/gzip' });
      out.replaceChildren(h('p', { role: 'status' }, res.digest
        ? ['Deployed ', res.agent, ' version ', short(res.digest), '. ', link('#/agent/' + enc(res.agent), 'Open the agent')]
        : ['Pipeline run ', link('#/run/' + enc(res.id), res.id), ' is ', res.state, '.']));
      say('deployed');
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  };
  show(main, 
    h('h1', { tabindex: '-1' }, 'Agents'),
    table('Deployed agents', ['Agent', 'Current version', 'Updated'],
      list.agents.map((a) => [link('#/agent/' + enc(a.name), a.name), h('code', {}, short(a.current)), when(a.updated)]), 'no agents yet: deploy one below.'),
    h('h2', {}, 'Deploy'),
    h('form', { onsubmit: deploy, 'aria-label': 'Deploy an agent' }, fileLabel, h('button', { type: 'submit' }, 'Deploy')),
    out);
}

async function agent(main, [name]) {
  const [a, versions, runs, dep] = await Promise.all([
    api('GET', '/v1/agents/' + enc(name)),
    api('GET', '/v1/agents/' + enc(name) + '/versions'),
    maybe(api('GET', '/v1/pipeline/runs?agent=' + enc(name))),
    maybe(api('GET', '/v1/agents/' + enc(name) + '/deployment')),
  ]);
  show(main, 
    h('h1', { tabindex: '-1' }, 'Agent ', a.name),
    h('p', {}, 'Current version ', h('code', {}, short(a.current)), ' · ', link('#/sessions/' + enc(name), 'Sessions')),
    table('Versions', ['Digest', 'Created', 'Runtime', 'Files', 'Bytes', 'Run'],
      versions.versions.slice().reverse().map((v) => [h('code', {}, short(v.digest)), when(v.created), v.runtime, h('td', { class: 'num' }, v.files),
        h('td', { class: 'num' }, v.size), v.run ? link('#/run/' + enc(v.run), v.run_state || v.run) : ''])),
    runs ? runTable(runs.runs) : '',
    dep ? [h('h2', {}, 'Deployment'), h('pre', {}, JSON.stringify(dep, null, 2))] : '',
    h('h2', {}, 'Manifest'), h('pre', {}, JSON.stringify(a.manifest || {}, null, 2)));
}

// awaitsReview reports whether run r waits for a reviewer: waiting, with no
// decision recorded yet (a decided run shows "waiting" until the runner takes
// the decision up, which may be a moment later).
function awaitsReview(r) {
  return r.state === 'waiting' && !!r.review && !!r.review.approval && !r.review.decision;
}

function runTable(runs) {
  return table('Pipeline runs', ['Run', 'Agent', 'State', 'Stage', 'Created'],
    runs.map((r) => [link('#/run/' + enc(r.id), r.id), r.agent, badge(r.state), r.stage, when(r.created)]));
}

async function runs(main) {
  const list = await api('GET', '/v1/pipeline/runs?limit=100');
  show(main, h('h1', { tabindex: '-1' }, 'Pipeline runs'), runTable(list.runs));
}

async function run(main, [id]) {
  const base = '/v1/pipeline/runs/' + enc(id);
  const [r, diff, logs] = await Promise.all([api('GET', base), maybe(api('GET', base + '/diff')), maybe(api('GET', base + '/logs?limit=200'))]);
  const [cLabel, comment] = field('Review comment', { type: 'text', size: 40 });
  const review = awaitsReview(r);
  show(main, 
    h('h1', { tabindex: '-1' }, 'Run ', r.id),
    h('p', {}, 'Agent ', link('#/agent/' + enc(r.agent), r.agent), ' · ', badge(r.state), ' · stage ', r.stage, ' · by ', r.principal.id),
    r.error ? h('p', { class: 'error' }, r.error) : '',
    table('Stages', ['Stage', 'State', 'Duration (ms)', 'Reason'],
      r.stages.map((s) => [s.name, badge(s.state), h('td', { class: 'num' }, s.duration_ms || ''), s.reason || ''])),
    r.decision ? [h('h2', {}, 'Release decision'), h('p', {}, badge(r.decision.result), ' ', (r.decision.reasons || []).join('; '))] : '',
    review ? h('form', { 'aria-label': 'Review', onsubmit: (ev) => ev.preventDefault() }, cLabel,
      h('button', { type: 'button', onclick: () => action('approve run', () => api('POST', base + '/approve', { comment: comment.value })) }, 'Approve release'),
      h('button', { type: 'button', class: 'danger', onclick: () => action('reject run', () => api('POST', base + '/reject', { comment: comment.value })) }, 'Reject')) : '',
    diff ? [h('h2', {}, 'Diff'), diff.files.length ? diff.files.map((f) => [h('h3', {}, f.path, ' ', badge(f.status)), f.diff ? h('pre', {}, f.diff) : '']) : h('p', { class: 'muted' }, 'No changes.')] : '',
    logs && logs.events.length ? [h('h2', {}, 'Events'), h('pre', {}, logs.events.map((e) => [when(e.time), e.type, e.stage || '', e.state || '', e.message || ''].join(' ')).join('\n'))] : '');
}

// --- sessions ---

async function sessions(main, [agentName]) {
  const list = await api('GET', '/v1/agents');
  const names = list.agents.map((a) => a.name);
  const [sLabel, sel] = field('Agent', { id: 'sessions-agent', tag: 'select', options: names });
  if (agentName) sel.value = agentName;
  const pick = h('form', { 'aria-label': 'Pick an agent', onsubmit: (ev) => { ev.preventDefault(); go('#/sessions/' + enc(sel.value)); } },
    sLabel, h('button', { type: 'submit' }, 'Show sessions'));
  const name = agentName || names[0];
  const parts = [h('h1', { tabindex: '-1' }, 'Sessions'), pick];
  if (name) {
    const ss = await api('GET', '/v1/agents/' + enc(name) + '/sessions');
    parts.push(table('Sessions of ' + name, ['Session', 'State', 'Version', 'Last active', 'Memory (bytes)', 'Snapshot (bytes)'],
      ss.sessions.map((s) => [link('#/session/' + enc(name) + '/' + enc(s.id), s.id), badge(s.state), h('code', {}, short(s.version)),
        when(s.last_active), h('td', { class: 'num' }, s.memory_bytes || ''), h('td', { class: 'num' }, s.snapshot_bytes || '')]), 'no sessions yet: call the agent below.'));
    parts.push(callForm(name, ''));
    parts.push(logsPanel(name, ''));
  }
  show(main, ...parts);
}

// callForm sends a request to a session's fetch handler.
function callForm(agentName, sessionID) {
  const [idLabel, id] = field('Session id', { id: 'call-session', type: 'text', value: sessionID || 'console', required: true, size: 16 });
  const [mLabel, method] = field('Method', { id: 'call-method', tag: 'select', options: ['GET', 'POST', 'PUT', 'DELETE'] });
  const [pLabel, path] = field('Path', { id: 'call-path', type: 'text', value: '/', size: 24 });
  const [bLabel, body] = field('Body', { id: 'call-body', tag: 'textarea', rows: 3 });
  const out = h('pre', { id: 'call-output', role: 'log', 'aria-label': 'Response' });
  const send = async (ev) => {
    ev.preventDefault();
    const url = '/agents/' + enc(agentName) + '/sessions/' + enc(id.value) + '/' + path.value.replace(/^\/+/, '');
    try {
      const res = await api(method.value, url, method.value === 'GET' ? undefined : body.value, { raw: true, type: 'text/plain', accept: '*/*' });
      out.textContent = res.status + ' ' + res.statusText + '\n' + (await res.text());
    } catch (err) {
      out.textContent = 'error: ' + err.message;
    }
  };
  return [h('h2', {}, 'Call ', agentName),
    h('form', { 'aria-label': 'Call the agent', onsubmit: send }, idLabel, mLabel, pLabel, bLabel, h('button', { type: 'submit' }, 'Send')), out];
}

async function session(main, [agentName, id]) {
  const base = '/v1/agents/' + enc(agentName) + '/sessions/' + enc(id);
  const [s, labels, state] = await Promise.all([api('GET', base), maybe(api('GET', base + '/labels')), maybe(api('GET', base + '/state?limit=1000'))]);
  show(main, 
    h('h1', { tabindex: '-1' }, 'Session ', agentName, '/', id),
    table('Session', ['State', 'Version', 'Created', 'Last active', 'Alarm'],
      [[badge(s.state), h('code', {}, short(s.version)), when(s.created), when(s.last_active), when(s.alarm)]]),
    labels ? h('p', {}, 'Labels: integrity ', badge(labels.integrity), ' confidentiality ', badge(labels.confidentiality)) : '',
    state ? table('State keys', ['Key', 'Value (bytes)'], state.keys.map((k) => [h('code', {}, k.key), h('td', { class: 'num' }, k.bytes)]), 'no state stored.') : '',
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', onclick: () => action('hibernate', () => api('POST', base + '/hibernate')) }, 'Hibernate'),
      h('button', { type: 'button', class: 'danger', onclick: () => action('delete session', () => api('DELETE', base), () => go('#/sessions/' + enc(agentName))) }, 'Delete')),
    callForm(agentName, id), logsPanel(agentName, id));
}

// --- sandboxes ---

async function sandboxes(main) {
  const list = await api('GET', '/v1/sandboxes');
  const [tLabel, tier] = field('Tier', { tag: 'select', options: ['process', 'gvisor'] });
  const [toLabel, timeout] = field('Timeout (s)', { type: 'number', value: '600', min: '1', size: 6 });
  const create = (ev) => {
    ev.preventDefault();
    action('create sandbox', async () => {
      const sb = await api('POST', '/v1/sandboxes', { tier: tier.value, timeout_s: Number(timeout.value) });
      go('#/sandbox/' + enc(sb.id));
    }, () => {});
  };
  show(main, 
    h('h1', { tabindex: '-1' }, 'Sandboxes'),
    table('Sandboxes', ['Sandbox', 'Tier', 'State', 'Owner', 'Expires'],
      list.sandboxes.map((s) => [link('#/sandbox/' + enc(s.id), s.id), s.tier, badge(s.paused ? 'paused' : s.state), s.owner || '', when(s.expires)])),
    h('h2', {}, 'New sandbox'),
    h('form', { 'aria-label': 'Create a sandbox', onsubmit: create }, tLabel, toLabel, h('button', { type: 'submit' }, 'Create')));
}

// readStream shows an NDJSON exec stream as it arrives.
async function readStream(res, out) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      const ev = JSON.parse(line);
      if (ev.type === 'stdout' || ev.type === 'stderr') out.append(ev.data);
      else if (ev.type === 'exit') out.append('\n[exit ' + ev.exit_code + ']');
      else if (ev.type === 'error') out.append('\n[error ' + ((ev.problem && ev.problem.detail) || '') + ']');
    }
  }
}

async function sandbox(main, [id]) {
  const base = '/v1/sandboxes/' + enc(id);
  const sb = await api('GET', base);
  const [cLabel, cmd] = field('Command (run with sh -c)', { id: 'exec-cmd', type: 'text', size: 50, required: true });
  const out = h('pre', { id: 'exec-output', role: 'log', 'aria-label': 'Command output' });
  const exec = async (ev) => {
    ev.preventDefault();
    out.textContent = '';
    try {
      const res = await api('POST', base + '/exec', { cmd: 'sh', args: ['-c', cmd.value] }, { raw: true, accept: 'application/x-ndjson' });
      if (!res.ok) { const p = await res.json().catch(() => ({})); out.textContent = 'error: ' + (p.detail || res.status); return; }
      await readStream(res, out);
    } catch (err) {
      out.append('\nerror: ' + err.message);
    }
  };
  const [dLabel, dir] = field('Directory', { type: 'text', value: '/workspace', size: 30 });
  const files = h('div', { id: 'files' });
  const list = async (ev) => {
    if (ev) ev.preventDefault();
    try {
      const fl = await api('GET', base + '/files/list?path=' + enc(dir.value));
      files.replaceChildren(table('Files in ' + dir.value, ['Name', 'Mode', 'Size', 'Modified'],
        fl.files.map((f) => [f.is_dir ? f.name + '/' : f.name, h('code', {}, f.mode), h('td', { class: 'num' }, f.size), when(f.mod_time)]), 'empty.'));
    } catch (err) { files.replaceChildren(errorBox(err)); }
  };
  show(main, 
    h('h1', { tabindex: '-1' }, 'Sandbox ', sb.id),
    h('p', {}, sb.tier, ' · ', badge(sb.paused ? 'paused' : sb.state), ' · expires ', when(sb.expires), sb.owner ? ' · owner ' + sb.owner : ''),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', onclick: () => action(sb.paused ? 'resume' : 'pause', () => api('POST', base + (sb.paused ? '/resume' : '/pause'))) }, sb.paused ? 'Resume' : 'Pause'),
      h('button', { type: 'button', class: 'danger', onclick: () => action('delete sandbox', () => api('DELETE', base), () => go('#/sandboxes')) }, 'Delete')),
    h('h2', {}, 'Run a command'),
    h('form', { 'aria-label': 'Run a command', onsubmit: exec }, cLabel, h('button', { type: 'submit' }, 'Run')), out,
    h('h2', {}, 'Files'),
    h('form', { 'aria-label': 'List files', onsubmit: list }, dLabel, h('button', { type: 'submit' }, 'List')), files,
    terminalPanel(sb.id));
  await list();
}

// --- approvals ---

async function approvals(main) {
  const [list, runList] = await Promise.all([api('GET', '/v1/approvals'), maybe(api('GET', '/v1/pipeline/runs?limit=100'))]);
  const pending = list.approvals.filter((a) => a.status === 'pending');
  const rest = list.approvals.filter((a) => a.status !== 'pending');
  const reviews = ((runList && runList.runs) || []).filter(awaitsReview);
  const resolve = (a, verb) => action(verb + ' ' + a.id, () => api('POST', '/v1/approvals/' + enc(a.id) + '/' + verb));
  const review = (r, verb) => action(verb + ' run ' + r.id, () => api('POST', '/v1/pipeline/runs/' + enc(r.id) + '/' + verb, {}));
  show(main,
    h('h1', { tabindex: '-1' }, 'Approvals'),
    table('Releases waiting for review', ['Run', 'Agent', 'Author', 'Why', 'Created', 'Decide'],
      reviews.map((r) => [link('#/run/' + enc(r.id), r.id), r.agent, r.principal.id, ((r.decision && r.decision.reasons) || []).join('; '), when(r.created),
        h('div', { class: 'row' },
          h('button', { type: 'button', 'aria-label': 'Approve release ' + r.id + ' of ' + r.agent, onclick: () => review(r, 'approve') }, 'Approve'),
          h('button', { type: 'button', class: 'danger', 'aria-label': 'Reject release ' + r.id + ' of ' + r.agent, onclick: () => review(r, 'reject') }, 'Reject'))]),
      'no release waits for review.'),
    table('Pending requests', ['Approval', 'Principal', 'Action', 'Resource', 'Reason', 'Created', 'Decide'],
      pending.map((a) => [h('code', {}, a.id), a.principal, a.action, a.resource, a.reason, when(a.created),
        h('div', { class: 'row' },
          h('button', { type: 'button', 'aria-label': 'Approve ' + a.id, onclick: () => resolve(a, 'approve') }, 'Approve'),
          h('button', { type: 'button', class: 'danger', 'aria-label': 'Deny ' + a.id, onclick: () => resolve(a, 'deny') }, 'Deny'))]), 'nothing waits for a decision.'),
    table('Resolved requests', ['Approval', 'Status', 'Principal', 'Action', 'Resource', 'By', 'At'],
      rest.map((a) => [h('code', {}, a.id), badge(a.status), a.principal, a.action, a.resource, a.resolved_by || '', when(a.resolved_at)])));
}

// --- tools and the registry ---

async function tools(main) {
  const [tl, reg] = await Promise.all([api('GET', '/v1/tools'), maybe(api('GET', '/v1/tool-registry'))]);
  const parts = [h('h1', { tabindex: '-1' }, 'Tools and registry'),
    table('Tools you may call', ['Tool', 'Source', 'Status', 'Description'],
      tl.tools.map((t) => [h('code', {}, t.name), t.source, t.quarantined ? badge('quarantined') : badge('ok'), t.description]))];
  if (reg) {
    for (const u of reg.upstreams) {
      const base = '/v1/tool-registry/' + enc(u.name);
      parts.push(h('h2', {}, 'Upstream ', u.name, ' (', u.kind, ')'),
        h('p', {}, u.url || u.base_url || '', u.refresh_error ? h('span', { class: 'error' }, ' refresh error: ' + u.refresh_error) : ''),
        h('div', { class: 'row' },
          h('button', { type: 'button', onclick: () => action('approve ' + u.name, () => api('POST', base + '/approve', {})) }, 'Approve pending changes of ' + u.name),
          h('button', { type: 'button', class: 'secondary', onclick: () => action('refresh ' + u.name, () => api('POST', base + '/refresh')) }, 'Refresh ' + u.name)),
        table('Tools of ' + u.name, ['Tool', 'Status', 'Pinned hash', 'Pending hash', 'Reason'],
          u.tools.map((t) => [h('code', {}, t.name), badge(t.status), h('code', {}, short(t.hash)), h('code', {}, short(t.pending_hash)), t.reason || ''])));
    }
    if (!reg.upstreams.length) parts.push(h('p', { class: 'muted' }, 'No upstream tool servers registered.'));
  }
  show(main, ...parts);
}

// --- policies ---

async function policies(main) {
  const ps = await api('GET', '/v1/policies');
  const [pLabel, principal] = field('Principal', { type: 'text', value: 'user:bob', required: true });
  const [aLabel, act] = field('Action', { type: 'text', value: 'agent.read', required: true });
  const [rLabel, res] = field('Resource', { type: 'text', value: 'Agent::hello', required: true, size: 30 });
  const out = h('div', { id: 'policy-decision', 'aria-live': 'polite' });
  const test = async (ev) => {
    ev.preventDefault();
    try {
      const d = await api('POST', '/v1/policies/test', { principal: principal.value, action: act.value, resource: res.value });
      out.replaceChildren(h('p', {}, badge(d.allowed ? 'allowed' : 'denied'), d.approvable ? ' (approvable)' : '',
        ' by ', (d.policies || []).join(', ') || 'no policy (default deny)'), (d.errors || []).length ? h('pre', {}, d.errors.join('\n')) : '');
    } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  show(main, 
    h('h1', { tabindex: '-1' }, 'Policies'),
    h('p', {}, 'Version ', ps.version, ps.by ? ' by ' + ps.by : '', ps.updated ? ' · ' + when(ps.updated) : ''),
    h('h2', {}, 'Test a decision'),
    h('form', { 'aria-label': 'Test a decision', onsubmit: test }, pLabel, aLabel, rLabel, h('button', { type: 'submit' }, 'Decide')), out,
    h('h2', {}, 'Policy set'), h('pre', { tabindex: '0', role: 'region', 'aria-label': 'Policy text' }, ps.text));
}

// --- audit and ledger ---

async function audit(main) {
  const [ev, cp] = await Promise.all([api('GET', '/v1/audit?limit=100'), maybe(api('GET', '/v1/ledger/checkpoint', undefined, { accept: 'text/plain' }))]);
  const [iLabel, idx] = field('Entry index', { type: 'number', min: '0', value: '0', required: true });
  const out = h('div', { id: 'ledger-entry', 'aria-live': 'polite' });
  const lookup = async (ev2) => {
    ev2.preventDefault();
    try {
      const [rec, proof] = await Promise.all([api('GET', '/v1/ledger/entries/' + enc(idx.value)), api('GET', '/v1/ledger/entries/' + enc(idx.value) + '/proof')]);
      out.replaceChildren(h('p', {}, 'Entry ', rec.index, ' leaf ', h('code', {}, short(rec.hash)), ': included in the tree of ', proof.tree_size,
        ' entries (', proof.hashes.length, ' proof hashes).'), h('pre', {}, JSON.stringify(rec.entry, null, 2)));
    } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  const verifyOut = h('div', { id: 'ledger-verify', 'aria-live': 'polite' });
  const verify = async () => {
    try {
      const r = await api('POST', '/v1/ledger/verify');
      verifyOut.replaceChildren(h('p', {}, badge(r.ok ? 'ok' : 'failed'), ' ', r.entries, ' entries, ', r.tiles, ' tiles, ', r.checkpoints, ' checkpoints',
        r.failure ? ' — entry ' + r.failure.index + ': ' + r.failure.reason : ''));
    } catch (err) { verifyOut.replaceChildren(errorBox(err)); }
  };
  show(main, 
    h('h1', { tabindex: '-1' }, 'Audit and ledger'),
    h('h2', {}, 'Ledger checkpoint'), cp ? h('pre', {}, cp) : h('p', { class: 'muted' }, 'Not readable by you.'),
    h('form', { 'aria-label': 'Look up a ledger entry', onsubmit: lookup }, iLabel, h('button', { type: 'submit' }, 'Show and prove')), out,
    h('button', { type: 'button', class: 'secondary', onclick: verify }, 'Verify the whole ledger'), verifyOut,
    table('Audit events (latest 100 from the start)', ['Seq', 'Time', 'Type', 'Principal', 'Action', 'Resource', 'Outcome', 'Reason'],
      ev.events.map((e) => [h('td', { class: 'num' }, e.seq), when(e.time), e.type, e.principal || '', e.action || '', e.resource || '', badge(e.outcome), e.reason || ''])));
}

// --- traffic, models ---

async function traffic(main) {
  const t = await api('GET', '/v1/traffic');
  show(main, 
    h('h1', { tabindex: '-1' }, 'Traffic'),
    h('p', {}, 'Concurrency limit ', t.concurrency_limit),
    table('Priority levels', ['Level', 'Seats', 'Executing', 'Queued', 'Dispatched', 'Rejected', 'Timed out', 'Wait p50 (ms)', 'Wait p99 (ms)'],
      t.levels.map((l) => [l.name, h('td', { class: 'num' }, l.nominal_seats), h('td', { class: 'num' }, l.executing), h('td', { class: 'num' }, l.queued),
        h('td', { class: 'num' }, l.dispatched), h('td', { class: 'num' }, l.rejected), h('td', { class: 'num' }, l.timed_out),
        h('td', { class: 'num' }, l.wait_p50_ms.toFixed(2)), h('td', { class: 'num' }, l.wait_p99_ms.toFixed(2))])),
    table('Top flows', ['Level', 'Flow', 'Executing', 'Queued', 'Dispatched', 'Rejected', 'Rate (/s)'],
      (t.top || []).map((f) => [f.level, h('code', {}, f.flow), h('td', { class: 'num' }, f.executing), h('td', { class: 'num' }, f.queued),
        h('td', { class: 'num' }, f.dispatched), h('td', { class: 'num' }, f.rejected), h('td', { class: 'num' }, f.rate_per_second.toFixed(2))])));
}

async function models(main) {
  const [u, b, p] = await Promise.all([api('GET', '/v1/usage'), maybe(api('GET', '/v1/model-budgets')), maybe(api('GET', '/v1/model-providers'))]);
  const counts = (c) => [h('td', { class: 'num' }, c.requests), h('td', { class: 'num' }, c.cache_hits), h('td', { class: 'num' }, c.prompt_tokens),
    h('td', { class: 'num' }, c.completion_tokens), h('td', { class: 'num' }, c.cost_usd.toFixed(4))];
  show(main, 
    h('h1', { tabindex: '-1' }, 'Models'),
    table('Usage', ['Agent', 'Session', 'User', 'Requests', 'Cache hits', 'Prompt tokens', 'Completion tokens', 'Cost (USD)'],
      [...u.records.map((r) => [r.agent || '', r.session || '', r.user || '', ...counts(r)]), ['Total', '', '', ...counts(u.total)]]),
    b ? table('Budgets', ['Agent', 'Session', 'Tokens', 'Used', 'Reserved'],
      b.budgets.map((x) => [x.agent, x.session || '', h('td', { class: 'num' }, x.tokens), h('td', { class: 'num' }, x.used), h('td', { class: 'num' }, x.reserved)])) : '',
    p ? table('Providers', ['Provider', 'Base URL', 'Models', 'Priority'],
      p.providers.map((x) => [x.name, h('code', {}, x.base_url), x.models.join(', '), h('td', { class: 'num' }, x.priority || 0)])) : '');
}

export const views = {
  agents, agent, runs, run, sessions, session, sandboxes, sandbox, approvals, tools, policies, audit, traffic, models, metrics: metricsView,
};
