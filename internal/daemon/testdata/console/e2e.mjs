// Drives the web console in a real headless browser (Debian's chromium via
// playwright-core) against a live daemon, and checks every main view with
// axe-core. Run by internal/daemon TestConsoleBrowser, which passes:
//   CONSOLE_URL      the daemon's base URL
//   CHROMIUM         the browser's path
//   ADMIN_TOKEN      the administrator's token
//   ALICE_TOKEN      tenant alice (owns agent alicebot)
//   BOB_TOKEN        tenant bob (owns nothing)
//   BUNDLE           a tar.gz of examples/hello
//   SHOTS            if set, a directory to save screenshots of the main views in
// It prints one JSON line per step and exits non-zero on the first failure.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const env = (k) => { const v = process.env[k]; if (!v) throw new Error(k + ' is not set'); return v; };
const base = env('CONSOLE_URL');
const tokens = [env('ADMIN_TOKEN'), env('ALICE_TOKEN'), env('BOB_TOKEN')];
const shots = process.env.SHOTS || '';
const log = (step, extra = {}) => console.log(JSON.stringify({ step, ...extra }));
const fail = (msg) => { throw new Error(msg); };

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'), headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
});
const urls = [];
const pages = [];
const consoleErrors = [];
// retried504 counts the 504 answers a retry loop accepted: the browser
// reports each as a failed resource load, which is expected, not an error.
let retried504 = 0;

async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  pages.push(page);
  page.setDefaultTimeout(30000);
  page.on('request', (r) => urls.push(r.url()));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  return page;
}

// axe runs axe-core in the page and fails on serious or critical violations.
async function axe(page, view) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) {
    // The page's CSP forbids inline script: give axe to the page through
    // the DevTools protocol instead (evaluate is not subject to CSP).
    await page.evaluate(axeSource);
  }
  const res = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = res.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  log('axe', { view, violations: res.length, serious_or_critical: bad.length });
  if (bad.length) fail('axe on ' + view + ': ' + JSON.stringify(bad));
}

async function shot(page, name) {
  if (shots) await page.screenshot({ path: shots + '/console-' + name + '.png', fullPage: false });
}

async function view(page, hash, heading) {
  const target = base + '/ui/' + hash;
  if (page.url() === target) await page.reload(); // the same hash: no hashchange
  else await page.goto(target);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

async function signIn(page, token, who) {
  await page.goto(base + '/ui/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Agents' }).waitFor();
  const text = await page.locator('#who').textContent();
  if (!text.includes(who)) fail('signed in as ' + text + ', want ' + who);
  log('signed in', { who });
}

try {
  // Sign-in page: accessible, keyboard usable.
  const page = await newPage();
  await page.goto(base + '/ui/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await axe(page, 'sign-in');
  await shot(page, 'signin');
  // Keyboard: the skip link comes first, then the token field; Enter submits.
  await page.keyboard.press('Tab');
  if ((await page.evaluate(() => document.activeElement.textContent)) !== 'Skip to content') fail('first Tab stop is not the skip link');
  await page.keyboard.press('Tab');
  if ((await page.evaluate(() => document.activeElement.id)) !== 'token') fail('second Tab stop is not the token field');
  await page.keyboard.type(tokens[0]);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Agents' }).waitFor();
  log('signed in by keyboard');
  // The navigation is reachable and usable by keyboard, in order.
  await page.reload();
  await page.getByRole('heading', { level: 1, name: 'Agents' }).waitFor();
  await page.keyboard.press('Tab'); // the skip link
  const stops = [];
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('Tab');
    stops.push(await page.evaluate(() => document.activeElement.textContent.trim()));
  }
  const want = ['Sign out', 'Agents', 'Pipeline runs', 'Sessions', 'Sandboxes', 'Approvals'];
  if (JSON.stringify(stops) !== JSON.stringify(want)) fail('focus order: ' + JSON.stringify(stops));
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Approvals' }).waitFor();
  if ((await page.evaluate(() => document.activeElement.tagName)) !== 'H1') fail('focus did not move to the new view heading');
  log('keyboard navigation', { stops });

  // Deploy examples/hello through the console.
  await view(page, '#/agents', 'Agents');
  await page.getByLabel('Bundle (.tar.gz of an agent directory)').setInputFiles(env('BUNDLE'));
  await page.getByRole('button', { name: 'Deploy', exact: true }).click();
  await page.locator('#deploy-result').getByText('Deployed hello').waitFor();
  await page.getByRole('heading', { level: 1, name: 'Agents' }).waitFor();
  await view(page, '#/agents', 'Agents');
  await page.getByRole('link', { name: 'hello' }).waitFor();
  await axe(page, 'agents');
  await shot(page, 'agents');
  log('deployed');

  // Call it, then see the session in the sessions view.
  await view(page, '#/sessions/hello', 'Sessions');
  await page.getByLabel('Session id').fill('from-console');
  await page.getByLabel('Path').fill('/json?x=1');
  // On a loaded machine the first activation may pass the example's 1 s
  // wall-clock limit (504 session-timeout): send again, as a user would.
  for (let i = 0; ; i++) {
    await page.evaluate(() => { document.getElementById('call-output').textContent = ''; });
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('#call-output').filter({ hasText: /\d{3} / }).waitFor();
    const txt = await page.locator('#call-output').textContent();
    if (txt.includes('"session":"from-console"')) break;
    if (i >= 4 || !txt.startsWith('504')) fail('call: ' + txt);
    retried504++;
    log('call retried', { answer: txt.slice(0, 60) });
  }
  await view(page, '#/sessions/hello', 'Sessions');
  await page.getByRole('link', { name: 'from-console' }).waitFor();
  await axe(page, 'sessions');
  await shot(page, 'sessions');
  await page.getByRole('link', { name: 'from-console' }).click();
  await page.getByRole('heading', { level: 1, name: 'Session hello/from-console' }).waitFor();
  await axe(page, 'session');
  log('called and seen in sessions');

  // The logs panel: follow logbot's log (a streamed fetch of NDJSON), call
  // it from the same view, see its console.log line arrive; filter by a
  // session that logged nothing.
  await view(page, '#/sessions/logbot', 'Sessions');
  await page.getByLabel('Follow new entries').check();
  await page.getByLabel('Session id').fill('log-one');
  await page.getByLabel('Path').fill('/from-the-console');
  for (let i = 0; ; i++) {
    await page.evaluate(() => { document.getElementById('call-output').textContent = ''; });
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('#call-output').filter({ hasText: /\d{3} / }).waitFor();
    const txt = await page.locator('#call-output').textContent();
    if (txt.startsWith('200')) break;
    if (i >= 4 || !txt.startsWith('504')) fail('call logbot: ' + txt);
    retried504++;
    log('call retried', { answer: txt.slice(0, 60) });
  }
  await page.locator('#logs-output').getByText(/log-one log logbot saw \/from-the-console/).waitFor();
  await axe(page, 'logs');
  await shot(page, 'logs');
  await page.getByLabel('Follow new entries').uncheck();
  await page.getByLabel('Session (empty: all)').fill('nobody-here');
  await page.getByRole('button', { name: 'Show logs' }).click();
  await page.locator('#logs-output').getByText('No log entries of session nobody-here.').waitFor();
  await page.getByLabel('Session (empty: all)').fill('log-one');
  await page.getByRole('button', { name: 'Show logs' }).click();
  await page.locator('#logs-output').getByText(/logbot saw \/from-the-console/).waitFor();
  log('logs panel', { text: (await page.locator('#logs-output').textContent()).slice(0, 120) });

  // Open a sandbox and run a command.
  await view(page, '#/sandboxes', 'Sandboxes');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('heading', { level: 1, name: /^Sandbox sb-/ }).waitFor();
  await page.getByLabel('Command (run with sh -c)').fill('echo hello-from-$((6*7)); ls / | head -3 >&2');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page.locator('#exec-output').getByText('[exit 0]').waitFor();
  const out = await page.locator('#exec-output').textContent();
  if (!out.includes('hello-from-42')) fail('exec output: ' + out);
  await axe(page, 'sandbox');
  await shot(page, 'sandbox');
  log('sandbox exec', { output: out.slice(0, 80) });

  // The terminal panel: a WebSocket through the cookie session; type a
  // line, see the shell's answer on a line of its own (the typed line is
  // echoed too, so the answer is looked for alone on its line).
  await page.getByRole('button', { name: 'Open terminal' }).click();
  await page.getByText(/^Connected \(\d+×\d+\)\.$/).waitFor();
  await page.getByLabel('Line to send (Enter sends it)').fill('echo hi-term');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('terminal-output').textContent.split('\n').some((l) => l.trim() === 'hi-term'));
  await axe(page, 'terminal');
  await shot(page, 'terminal');
  await page.getByRole('button', { name: 'Close terminal' }).click();
  await page.getByText(/^Closed/).waitFor();
  log('terminal', { output: (await page.locator('#terminal-output').textContent()).slice(-120) });

  // Approve the pending approval: alice's release waiting for review.
  await view(page, '#/approvals', 'Approvals');
  const approve = page.getByRole('button', { name: /^Approve release .* of fresh$/ });
  await approve.waitFor();
  await axe(page, 'approvals');
  await shot(page, 'approvals');
  await approve.click();
  await page.getByText('approve run').first().waitFor(); // the status message
  await view(page, '#/approvals', 'Approvals');
  await page.getByText('no release waits for review').waitFor();
  log('approved');

  // The remaining views render, pass axe, and are photographed.
  for (const [hash, heading, name] of [['#/runs', 'Pipeline runs', 'runs'], ['#/tools', 'Tools and registry', 'tools'],
    ['#/policies', 'Policies', 'policies'], ['#/audit', 'Audit and ledger', 'audit'], ['#/traffic', 'Traffic', 'traffic'],
    ['#/models', 'Models', 'models'], ['#/metrics', 'Metrics', 'metrics'], ['#/agent/hello', 'Agent hello', 'agent']]) {
    await view(page, hash, heading);
    if (name === 'metrics') await page.waitForTimeout(4500); // two more samples for the charts
    if (name === 'policies') {
      await page.getByRole('button', { name: 'Decide' }).click();
      await page.locator('#policy-decision .badge').waitFor();
    }
    if (name === 'audit') {
      await page.getByRole('button', { name: 'Show and prove' }).click();
      await page.locator('#ledger-entry p').waitFor();
    }
    await axe(page, name);
    await shot(page, name);
  }

  // Two tenants: alice sees her agent and not the administrator's; bob sees neither.
  const alice = await newPage();
  await signIn(alice, tokens[1], 'user/alice');
  await alice.getByRole('link', { name: 'alicebot' }).waitFor();
  if (await alice.getByRole('link', { name: 'hello', exact: true }).count()) fail("alice sees the administrator's agent");
  const bob = await newPage();
  await signIn(bob, tokens[2], 'user/bob');
  if (await bob.getByRole('link', { name: 'alicebot' }).count()) fail("bob sees alice's agent");
  await view(bob, '#/agent/alicebot', 'agent');
  const err = await bob.locator('main .error').textContent();
  if (!/forbidden|not-found/.test(err)) fail("bob reading alice's agent: " + err);
  log('tenants', { bob_sees: err });

  // Sign out ends the session: the cookie no longer works.
  await bob.getByRole('button', { name: 'Sign out' }).click();
  await bob.getByRole('heading', { name: 'Sign in' }).waitFor();
  const after = await bob.evaluate(async () => (await fetch('/v1/whoami')).status);
  if (after !== 401) fail('after sign-out /v1/whoami answered ' + after);

  for (const t of tokens) if (urls.some((u) => u.includes(t))) fail('a token appeared in a URL');
  const is504 = (e) => /status of 504/.test(e);
  const others = consoleErrors.filter((e) => !is504(e));
  if (others.length || consoleErrors.filter(is504).length > retried504) fail('console errors: ' + JSON.stringify(consoleErrors));
  log('done', { requests: urls.length });
} catch (err) {
  // Say what the pages showed when the step failed.
  for (const p of pages) log('page at failure', { url: p.url(), main: (await p.locator('main').innerText().catch(() => '')).slice(0, 600), errors: consoleErrors });
  throw err;
} finally {
  await browser.close();
}
