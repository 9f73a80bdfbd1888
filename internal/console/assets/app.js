// The agentcloud console: a single page over the same HTTP API as the CLI.
// No framework, no inline code (the page's CSP forbids it). Every call
// sends the session cookie (HttpOnly, set by POST /ui/session) and, when it
// mutates, the per-session CSRF token in X-CSRF-Token. Tokens are sent in
// a request body once, at sign-in, and never put in a URL or in storage.
import { views } from './views.js';

const state = { csrf: '', who: null };

// h builds an element: h('td', {class: 'num'}, 'text', child, ...).
// Text is always set as text, never parsed as HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  // A <pre> may scroll: keyboard users must reach it.
  if (tag === 'pre') el.tabIndex = 0;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// ApiError is a problem+json answer (or a network failure).
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || 'HTTP ' + status);
    this.status = status;
    this.problem = problem || {};
  }
}

// api calls the daemon. body: an object (sent as JSON), a Blob/File (sent
// as is) or undefined. Returns parsed JSON, text, or the Response (raw).
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: opts.accept || 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = state.csrf;
  let payload;
  if (body instanceof Blob) {
    payload = body;
    headers['Content-Type'] = opts.type || 'application/octet-stream';
  } else if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    headers['Content-Type'] = opts.type || 'application/json';
  }
  Object.assign(headers, opts.headers || {});
  const res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store', signal: opts.signal });
  if (opts.raw) return res;
  const ct = res.headers.get('Content-Type') || '';
  if (!res.ok) {
    let problem = null;
    try { problem = ct.includes('json') ? await res.json() : { detail: await res.text() }; } catch { /* empty body */ }
    if (res.status === 401 && path !== '/ui/session') signedOut();
    throw new ApiError(res.status, problem);
  }
  if (res.status === 204) return null;
  return ct.includes('json') ? res.json() : res.text();
}

// say announces a message in the status region (read by screen readers).
export function say(msg) {
  const el = document.getElementById('status');
  el.textContent = msg;
  clearTimeout(say.t);
  say.t = setTimeout(() => { el.textContent = ''; }, 6000);
}

export function errorBox(err) {
  const p = err.problem || {};
  return h('p', { class: 'error', role: 'alert' },
    (p.type ? p.type.split('/').pop() + ': ' : '') + (err.message || String(err)));
}

function signedOut() {
  state.csrf = '';
  state.who = null;
  document.getElementById('who').textContent = '';
  document.getElementById('signout').hidden = true;
  document.getElementById('nav').hidden = true;
  if (location.hash !== '#/signin') location.hash = '#/signin';
  else render();
}

function signedIn(info) {
  state.csrf = info.csrf_token;
  state.who = info;
  document.getElementById('who').textContent = 'Signed in as ' + info.principal + ' (' + info.kind + ', ' + info.method + ')';
  document.getElementById('signout').hidden = false;
  document.getElementById('nav').hidden = false;
}

function signInView(main) {
  const tok = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, size: 60 });
  const out = h('div', { id: 'signin-error' });
  const submit = async (ev, withCert) => {
    ev.preventDefault();
    out.replaceChildren();
    try {
      const info = await api('POST', '/ui/session', { token: withCert ? '' : tok.value });
      tok.value = '';
      signedIn(info);
      location.hash = '#/agents';
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  };
  main.replaceChildren(
    h('section', { class: 'signin' },
      h('h1', { tabindex: '-1' }, 'Sign in'),
      h('p', {}, 'Paste an API token: ', h('code', {}, 'agentcloud token create'),
        ' makes one; a local daemon\'s admin token is in ', h('code', {}, '<data>/admin.token'),
        '. The token is sent once and kept by the daemon, not by this page.'),
      h('form', { class: 'col', onsubmit: (ev) => submit(ev, false) },
        h('label', { for: 'token' }, 'API token', tok),
        h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Sign in'))),
      h('p', {}, 'Connected over TLS with a client certificate?'),
      h('button', { type: 'button', class: 'secondary', onclick: (ev) => submit(ev, true) }, 'Sign in with my client certificate'),
      out));
}

async function render() {
  const main = document.getElementById('main');
  const [route, ...args] = (location.hash.replace(/^#\/?/, '') || 'agents').split('/').map(decodeURIComponent);
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === '#/' + route) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!state.csrf || route === 'signin') {
    if (state.csrf && route === 'signin') { location.hash = '#/agents'; return; }
    signInView(main);
    focusHeading(main);
    return;
  }
  const view = views[route];
  main.replaceChildren(h('p', {}, 'Loading…'));
  if (!view) {
    main.replaceChildren(h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'No view ' + route + '.'));
    focusHeading(main);
    return;
  }
  try {
    await view(main, args);
  } catch (err) {
    main.replaceChildren(h('h1', { tabindex: '-1' }, route), errorBox(err));
  }
  focusHeading(main);
}

// focusHeading moves focus to the new view's heading, so keyboard and
// screen reader users land on what changed.
function focusHeading(main) {
  const h1 = main.querySelector('h1');
  if (h1 && render.moved) h1.focus();
  render.moved = true;
}

export function go(hash) {
  if (location.hash === hash) render(); else location.hash = hash;
}

async function start() {
  document.getElementById('signout').addEventListener('click', async () => {
    try { await api('DELETE', '/ui/session'); } catch { /* already gone */ }
    signedOut();
  });
  window.addEventListener('hashchange', render);
  try {
    signedIn(await api('GET', '/ui/session'));
  } catch { /* not signed in */ }
  render();
}

start();
