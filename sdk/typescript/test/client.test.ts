// The TypeScript SDK against a live daemon (AGENTCLOUD_URL, AGENTCLOUD_TOKEN:
// internal/doctest TestTypeScriptSDK starts one).

import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { APIError, Client, ROUTES } from "../src/index.js";

const COUNTER = `
export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname === "/missing") return new Response("not here", { status: 404, headers: { "x-agent": "yes" } });
    if (new URL(request.url).pathname === "/stream") return new Response("a\\nb\\nc\\n");
    const n = ((await env.state.get("n")) ?? 0) + 1;
    await env.state.put("n", n);
    return Response.json({ n, method: request.method });
  },
};
`;

const c = new Client();
const rnd = () => Math.random().toString(16).slice(2, 10);

async function rejects(p: Promise<unknown>, status: number) {
  await assert.rejects(p, (e: unknown) => e instanceof APIError && e.status === status && e.type.startsWith("https://"));
}

test("route table and system", async () => {
  for (const id of ["post-v1-agents", "post-v1-sandboxes-by-sandbox-exec", "post-mcp"] as const) assert.ok(ROUTES[id]);
  assert.equal((await c.status()).healthy, true);
  assert.equal((await c.whoami()).kind, "admin");
});

test("deploy a directory, call, stream, hibernate", async () => {
  const name = "ts-" + rnd();
  const dir = mkdtempSync(join(tmpdir(), "agent-"));
  writeFileSync(join(dir, "agent.json"), JSON.stringify({ name, entry: "agent.js" }));
  writeFileSync(join(dir, "agent.js"), COUNTER);
  const v = await c.deployDir(dir);
  assert.equal(v.agent, name);
  assert.deepEqual(await (await c.call(name, "s1", "/", { method: "POST" })).json(), { n: 1, method: "POST" });
  assert.equal((await (await c.call(name, "s1")).json()).n, 2);
  const missing = await c.call(name, "s1", "/missing"); // the agent's own 404 comes back as it was sent
  assert.deepEqual([missing.status, await missing.text(), missing.headers.get("x-agent")], [404, "not here", "yes"]);
  await rejects(c.call("no-such-agent-" + name, "s1"), 404); // the platform's own problems are thrown
  let streamed = "";
  for await (const chunk of c.callStream(name, "s1", "/stream")) streamed += new TextDecoder().decode(chunk);
  assert.equal(streamed, "a\nb\nc\n");
  await c.hibernate(name, "s1");
  assert.equal((await (await c.call(name, "s1")).json()).n, 3);
  assert.ok((await c.sessions(name)).some((s) => s.id === "s1"));
});

test("bad input is a problem", async () => {
  await rejects(c.deployFiles({ "agent.json": '{"name":"Bad Name!","entry":"agent.js"}', "agent.js": COUNTER }), 422);
  await rejects(c.op("get-v1-agents-by-agent", { params: { agent: "no-such-agent" } }), 404);
  assert.throws(() => c.path("get-v1-agents-by-agent"), /missing path parameters/);
});

test("tokens and another principal", async () => {
  const tok = await c.createToken("user:ts-alice", "10m");
  const alice = new Client(c.url, tok.token);
  assert.match((await alice.whoami()).principal, /\/user\/ts-alice$/);
  await rejects(alice.op("get-v1-traffic"), 403);
  await c.revokeToken(tok.id);
  await rejects(alice.whoami(), 401);
});

test("tools over REST and MCP", async () => {
  assert.ok((await c.tools()).some((t) => t.name === "ping"));
  await c.callTool("ping");
  assert.ok((await c.mcpTools()).some((t) => t.name === "ping"));
  const res = await c.mcpCall("ping");
  assert.notEqual(res.isError, true);
});

test("sandbox: exec with streaming, files, pause and resume", async (t) => {
  let sb: any;
  try {
    sb = await c.createSandbox({ timeout_s: 120 });
  } catch (e) {
    if (e instanceof APIError && e.status === 503) return t.skip("this host cannot run sandboxes: " + e.detail);
    throw e;
  }
  try {
    const kinds: string[] = [];
    for await (const ev of c.execStream(sb.id, "sh", ["-c", "echo out; echo err >&2; exit 3"])) kinds.push(ev.type);
    assert.equal(kinds.at(-1), "exit");
    const r = await c.exec(sb.id, "python3", ["-c", "print(6*7)"]);
    assert.deepEqual([r.exitCode, r.stdout], [0, "42\n"]);
    await c.writeFile(sb.id, "/workspace/hello.txt", "hi there");
    assert.equal(new TextDecoder().decode(await c.readFile(sb.id, "/workspace/hello.txt")), "hi there");
    assert.ok((await c.listFiles(sb.id, "/workspace")).some((f) => f.name === "hello.txt"));
    assert.equal((await c.pauseSandbox(sb.id)).state, "paused");
    assert.equal((await c.resumeSandbox(sb.id)).state, "running");
    assert.equal((await c.exec(sb.id, "cat", ["/workspace/hello.txt"])).stdout, "hi there");
  } finally {
    await c.deleteSandbox(sb.id);
  }
  await rejects(c.exec(sb.id, "true"), 404);
});
