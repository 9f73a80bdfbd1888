// Smoke test for examples/*: runs each agent's fetch and alarm handlers in
// Node against an in-memory env that behaves like the isolate's prelude
// (state.get gives undefined when missing, state.list gives a Map in key
// order, one alarm per session). Run by TestExamplesRunInNode when node is
// installed: node examples_smoke.mjs <examples dir>.
import assert from "node:assert/strict";
import path from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.argv[2];

function makeEnv(agent, vars = {}) {
  const data = new Map();
  let alarm = null;
  const copy = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
  const state = {
    async get(k) { return copy(data.get(k)); },
    async put(k, v) { data.set(k, copy(v)); },
    async delete(k) { return data.delete(k); },
    async list({ prefix = "", limit = 0 } = {}) {
      const keys = [...data.keys()].filter((k) => k.startsWith(prefix)).sort();
      return new Map((limit > 0 ? keys.slice(0, limit) : keys).map((k) => [k, copy(data.get(k))]));
    },
    async setAlarm(when) { alarm = when instanceof Date ? when.getTime() : Number(when); },
    async getAlarm() { return alarm; },
    async deleteAlarm() { alarm = null; },
  };
  return { ...vars, state, session: { id: "s1", agent } };
}

async function load(name) {
  const mod = await import(pathToFileURL(path.join(dir, name, "index.js")));
  return mod.default;
}

async function call(agent, env, method, p, body) {
  const init = { method };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const res = await agent.fetch(new Request("http://agent.local" + p, init), env, { waitUntil() {} });
  assert.ok(res instanceof Response, `${method} ${p}: not a Response`);
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, text, json };
}

// hello
{
  const a = await load("hello");
  const env = makeEnv("hello");
  let r = await call(a, env, "GET", "/");
  assert.equal(r.status, 200);
  assert.equal(r.text, "Hello from hello/s1!\n");
  r = await call(a, env, "GET", "/json?x=1&t=a&t=b");
  assert.deepEqual(r.json, { agent: "hello", session: "s1", method: "GET", path: "/json", query: { x: "1", t: ["a", "b"] } });
  r = await call(a, env, "POST", "/");
  assert.equal(r.status, 405);
}

// counter
{
  const a = await load("counter");
  const env = makeEnv("counter");
  assert.deepEqual((await call(a, env, "GET", "/")).json, { global: 1, stored: 1 });
  assert.deepEqual((await call(a, env, "GET", "/")).json, { global: 2, stored: 2 });
  assert.equal((await call(a, env, "GET", "/reset")).status, 405);
  assert.deepEqual((await call(a, env, "POST", "/reset")).json, { global: 4, stored: 0, reset: true });
  assert.deepEqual((await call(a, env, "GET", "/")).json, { global: 5, stored: 1 });
}

// notes
{
  const a = await load("notes");
  const env = makeEnv("notes", { MAX_NOTE_BYTES: "100" });
  assert.equal((await call(a, env, "GET", "/notes/a")).status, 404);
  let r = await call(a, env, "PUT", "/notes/todo-1", { text: "buy milk" });
  assert.equal(r.status, 201);
  assert.deepEqual(r.json.note, { text: "buy milk" });
  assert.equal((await call(a, env, "PUT", "/notes/todo-1", { text: "buy oat milk" })).status, 200);
  await call(a, env, "PUT", "/notes/todo-2", [1, 2]);
  await call(a, env, "PUT", "/notes/idea-1", "\"fly\"");
  r = await call(a, env, "GET", "/notes?prefix=todo");
  assert.deepEqual(r.json.notes.map((n) => n.id), ["todo-1", "todo-2"]);
  assert.equal((await call(a, env, "GET", "/notes?limit=1")).json.count, 1);
  assert.equal((await call(a, env, "GET", "/notes?limit=x")).status, 400);
  assert.deepEqual((await call(a, env, "GET", "/notes/todo-1")).json.note, { text: "buy oat milk" });
  assert.equal((await call(a, env, "PUT", "/notes/bad", "{oops")).status, 400);
  assert.equal((await call(a, env, "PUT", "/notes/bad", "")).status, 400);
  assert.equal((await call(a, env, "PUT", "/notes/big", { t: "x".repeat(200) })).status, 413);
  assert.equal((await call(a, env, "PUT", "/notes/a%2Fb", {})).status, 400);
  assert.equal((await call(a, env, "PUT", "/notes/%zz", {})).status, 400);
  assert.deepEqual((await call(a, env, "DELETE", "/notes/todo-1")).json, { deleted: "todo-1" });
  assert.equal((await call(a, env, "DELETE", "/notes/todo-1")).status, 404);
  assert.equal((await call(a, env, "POST", "/notes")).status, 405);
  assert.equal((await call(a, env, "GET", "/nope")).status, 404);
  assert.equal((await call(a, env, "GET", "/nope")).json.error !== undefined, true);
}

// reminder
{
  const a = await load("reminder");
  const env = makeEnv("reminder");
  assert.equal((await call(a, env, "POST", "/remind", { in_seconds: -1, text: "x" })).status, 400);
  assert.equal((await call(a, env, "POST", "/remind", { in_seconds: 1 })).status, 400);
  assert.equal((await call(a, env, "POST", "/remind", "nope")).status, 400);
  const later = await call(a, env, "POST", "/remind", { in_seconds: 3600, text: "later" });
  assert.equal(later.status, 201);
  const first = await env.state.getAlarm();
  assert.equal(first, later.json.due);
  const soon = await call(a, env, "POST", "/remind", { in_seconds: 0, text: "now" });
  assert.equal(await env.state.getAlarm(), soon.json.due, "alarm moves earlier");
  let r = await call(a, env, "GET", "/reminders");
  assert.deepEqual(r.json.pending.map((p) => p.text), ["now", "later"]);
  assert.deepEqual(r.json.fired, []);
  await a.alarm(env, {});
  r = await call(a, env, "GET", "/reminders");
  assert.deepEqual(r.json.pending.map((p) => p.text), ["later"]);
  assert.deepEqual(r.json.fired.map((p) => p.text), ["now"]);
  assert.equal(await env.state.getAlarm(), later.json.due, "alarm set for the next one");
}

console.log("examples ok");
