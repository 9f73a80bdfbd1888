/**
 * TypeScript client of the agentcloud HTTP API, on Node's standard library
 * (fetch, zlib, fs) alone.
 *
 * Every route of the daemon is reachable through `Client.op(operationId,
 * ...)` (the route table in routes.ts is generated from the daemon's
 * OpenAPI document, and a test fails when it drifts); the common tasks have
 * methods of their own: deploying an agent from a directory or files,
 * calling sessions (also streaming), sandboxes (create, exec with streaming
 * output, files, pause and resume), tools over REST and MCP, and tokens.
 */

import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { gzipSync } from "node:zlib";
import { ROUTES, type OperationId } from "./routes.js";

export { ROUTES, type OperationId } from "./routes.js";

/** A problem+json answer (status 0: the daemon could not be reached). */
export class APIError extends Error {
  readonly status: number;
  readonly problem: Record<string, unknown>;
  readonly type: string;
  readonly detail: string;
  constructor(status: number, problem: Record<string, unknown>) {
    super(`${status} ${String(problem.title ?? "")}: ${String(problem.detail ?? "")}`);
    this.status = status;
    this.problem = problem;
    this.type = String(problem.type ?? "");
    this.detail = String(problem.detail ?? "");
  }
}

/** One event of a command's output stream. */
export interface ExecEvent {
  type: "stdout" | "stderr" | "exit" | "error";
  data?: string;
  exit_code?: number;
  problem?: Record<string, unknown>;
}

/** A finished command. */
export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  problem?: Record<string, unknown>;
}

/** Options of a request. */
export interface RequestOptions {
  params?: Record<string, string | number>;
  query?: Record<string, string | number | undefined>;
  json?: unknown;
  body?: Uint8Array | string;
  contentType?: string;
  headers?: Record<string, string>;
}

/** The type URIs of the platform's own problems (api/problem.go). */
const PROBLEM_TYPES = "https://agentcloud.dev/problems/";

/** Bundles larger than this are refused before the upload. */
export const MAX_BUNDLE_BYTES = 64 << 20;

/** The tar.gz of {name: content} (what `agentcloud deploy` uploads). */
export function bundleFiles(files: Record<string, string | Uint8Array>): Uint8Array {
  const blocks: Buffer[] = [];
  for (const name of Object.keys(files).sort()) {
    const raw = files[name];
    const data = typeof raw === "string" ? Buffer.from(raw) : Buffer.from(raw);
    if (Buffer.byteLength(name) > 100) throw new Error(`bundle: file name over 100 bytes: ${name}`);
    const h = Buffer.alloc(512);
    h.write(name, 0, "utf8");
    h.write("0000644\0", 100);
    h.write("0000000\0", 108);
    h.write("0000000\0", 116);
    h.write(data.length.toString(8).padStart(11, "0") + "\0", 124);
    h.write("00000000000\0", 136);
    h.write("        ", 148);
    h.write("0", 156);
    h.write("ustar\0" + "00", 257);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const out = gzipSync(Buffer.concat(blocks));
  if (out.length > MAX_BUNDLE_BYTES) throw new Error(`bundle over ${MAX_BUNDLE_BYTES} bytes`);
  return out;
}

/** The tar.gz of an agent directory (version-control directories left out). */
export function bundleDir(dir: string): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (name === ".git" || name === ".hg" || name === ".svn") continue;
      const full = join(d, name);
      const st = statSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile()) files[relative(dir, full).split(sep).join("/")] = readFileSync(full);
    }
  };
  walk(dir);
  return bundleFiles(files);
}

/** A client of one daemon. */
export class Client {
  readonly url: string;
  readonly token: string | undefined;

  /** url and token default to AGENTCLOUD_URL and AGENTCLOUD_TOKEN. */
  constructor(url = process.env.AGENTCLOUD_URL, token = process.env.AGENTCLOUD_TOKEN) {
    if (!url) throw new Error("no daemon URL: pass one or set AGENTCLOUD_URL");
    this.url = (url.includes("://") ? url : "http://" + url).replace(/\/+$/, "");
    this.token = token;
  }

  /** Sends one request and returns the response; problems are thrown. */
  async raw(method: string, path: string, o: RequestOptions = {}): Promise<Response> {
    let url = this.url + path;
    const q = Object.entries(o.query ?? {}).filter(([, v]) => v !== undefined);
    if (q.length) url += (url.includes("?") ? "&" : "?") + new URLSearchParams(q.map(([k, v]) => [k, String(v)])).toString();
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (this.token) headers.Authorization = "Bearer " + this.token;
    let body: Uint8Array | string | undefined = o.body;
    if (o.json !== undefined) {
      body = JSON.stringify(o.json);
      headers["Content-Type"] = "application/json";
    } else if (o.contentType) headers["Content-Type"] = o.contentType;
    let resp: Response;
    try {
      resp = await fetch(url, { method, headers, body: body as RequestInit["body"] });
    } catch (e) {
      throw new APIError(0, { title: "unreachable", detail: `${this.url}: ${(e as Error).message}` });
    }
    if (resp.status >= 400) {
      const text = await resp.text();
      let problem: Record<string, unknown>;
      try {
        problem = JSON.parse(text) as Record<string, unknown>;
      } catch {
        problem = { title: resp.statusText, detail: text.slice(0, 500) };
      }
      throw new APIError(resp.status, problem);
    }
    return resp;
  }

  /** Sends one request; returns the decoded JSON answer (undefined when empty). */
  async request<T = any>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const resp = await this.raw(method, path, o);
    const text = await resp.text();
    if (!text) return undefined as T;
    return ((resp.headers.get("content-type") ?? "").includes("json") ? JSON.parse(text) : text) as T;
  }

  /** The path of a route with its parameters filled in. */
  path(id: OperationId, params: Record<string, string | number> = {}): string {
    const route = ROUTES[id];
    if (!route) throw new Error(`no route ${id} in this SDK's route table (regenerate it from /openapi.json)`);
    let p: string = route[1];
    for (const [k, v] of Object.entries(params)) {
      const enc = k === "path" ? String(v).split("/").map(encodeURIComponent).join("/") : encodeURIComponent(String(v));
      p = p.replace(`{${k}}`, enc);
    }
    if (p.includes("{")) throw new Error(`${id}: missing path parameters in ${p}`);
    return p;
  }

  /** Calls any route by its OpenAPI operationId. */
  op<T = any>(id: OperationId, o: RequestOptions = {}): Promise<T> {
    return this.request<T>(ROUTES[id][0], this.path(id, o.params), o);
  }

  status() {
    return this.op("get-v1-status");
  }
  whoami() {
    return this.op("get-v1-whoami");
  }

  // Agents.
  deploy(tarGz: Uint8Array, wait = true) {
    return this.op("post-v1-agents", {
      body: tarGz, contentType: "application/gzip", headers: wait ? {} : { Prefer: "respond-async" },
    });
  }
  deployDir(dir: string, wait = true) {
    return this.deploy(bundleDir(dir), wait);
  }
  deployFiles(files: Record<string, string | Uint8Array>, wait = true) {
    return this.deploy(bundleFiles(files), wait);
  }
  async agents(): Promise<any[]> {
    return (await this.op("get-v1-agents")).agents;
  }

  // Sessions.
  sessionPath(agent: string, session: string, path = "/"): string {
    return `/agents/${encodeURIComponent(agent)}/sessions/${encodeURIComponent(session)}${path.startsWith("/") ? path : "/" + path}`;
  }
  /**
   * Calls a session; whatever the agent answers is returned (its own error
   * statuses included, body and headers as sent); the platform's problems
   * (unauthenticated, no such agent, ...) are thrown as APIError.
   */
  async call(agent: string, session: string, path = "/", init: { method?: string; body?: string | Uint8Array; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (this.token) headers.Authorization = "Bearer " + this.token;
    let resp: Response;
    try {
      resp = await fetch(this.url + this.sessionPath(agent, session, path), { method: init.method ?? "GET", headers, body: init.body as RequestInit["body"] });
    } catch (e) {
      throw new APIError(0, { title: "unreachable", detail: `${this.url}: ${(e as Error).message}` });
    }
    if (resp.status < 400 || !(resp.headers.get("content-type") ?? "").includes("problem+json")) return resp;
    const text = await resp.text();
    let problem: Record<string, unknown> | undefined;
    try {
      problem = JSON.parse(text) as Record<string, unknown>;
    } catch {
      problem = undefined;
    }
    if (problem && String(problem.type ?? "").startsWith(PROBLEM_TYPES)) throw new APIError(resp.status, problem);
    return new Response(text, { status: resp.status, statusText: resp.statusText, headers: resp.headers });
  }
  /** Calls a session and yields its answer's body as it arrives. */
  async *callStream(agent: string, session: string, path = "/", init: { method?: string; body?: string } = {}): AsyncGenerator<Uint8Array> {
    const resp = await this.call(agent, session, path, init);
    if (!resp.body) return;
    for await (const chunk of resp.body) yield chunk as Uint8Array;
  }
  async sessions(agent: string): Promise<any[]> {
    return (await this.op("get-v1-agents-by-agent-sessions", { params: { agent } })).sessions;
  }
  hibernate(agent: string, session: string) {
    return this.op("post-v1-agents-by-agent-sessions-by-session-hibernate", { params: { agent, session } });
  }

  // Sandboxes.
  createSandbox(spec: Record<string, unknown> = {}) {
    return this.op("post-v1-sandboxes", { json: spec });
  }
  deleteSandbox(sandbox: string) {
    return this.op("delete-v1-sandboxes-by-sandbox", { params: { sandbox } });
  }
  pauseSandbox(sandbox: string) {
    return this.op("post-v1-sandboxes-by-sandbox-pause", { params: { sandbox } });
  }
  resumeSandbox(sandbox: string) {
    return this.op("post-v1-sandboxes-by-sandbox-resume", { params: { sandbox } });
  }
  /** Runs a command; yields its events (stdout, stderr, then exit or error). */
  async *execStream(sandbox: string, cmd: string, args: string[] = [], opts: Record<string, unknown> = {}): AsyncGenerator<ExecEvent> {
    const resp = await this.raw("POST", this.path("post-v1-sandboxes-by-sandbox-exec", { sandbox }), { json: { ...opts, cmd, args } });
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of resp.body as AsyncIterable<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const ev = JSON.parse(line) as ExecEvent;
        yield ev;
        if (ev.type === "exit" || ev.type === "error") return;
      }
    }
    throw new APIError(0, { title: "stream ended", detail: "exec stream ended without an exit event" });
  }
  /** Runs a command to completion. */
  async exec(sandbox: string, cmd: string, args: string[] = [], opts: Record<string, unknown> = {}): Promise<ExecResult> {
    let stdout = "", stderr = "";
    for await (const ev of this.execStream(sandbox, cmd, args, opts)) {
      if (ev.type === "stdout") stdout += ev.data ?? "";
      else if (ev.type === "stderr") stderr += ev.data ?? "";
      else if (ev.type === "error") throw new APIError(Number(ev.problem?.status ?? 0), ev.problem ?? {});
      else return { exitCode: ev.exit_code ?? -1, stdout, stderr, problem: ev.problem };
    }
    throw new Error("unreachable");
  }
  writeFile(sandbox: string, path: string, data: string | Uint8Array) {
    return this.op("put-v1-sandboxes-by-sandbox-files", { params: { sandbox }, query: { path }, body: data, contentType: "application/octet-stream" });
  }
  async readFile(sandbox: string, path: string): Promise<Uint8Array> {
    const resp = await this.raw("GET", this.path("get-v1-sandboxes-by-sandbox-files", { sandbox }), { query: { path } });
    return new Uint8Array(await resp.arrayBuffer());
  }
  async listFiles(sandbox: string, path = ""): Promise<any[]> {
    return (await this.op("get-v1-sandboxes-by-sandbox-files-list", { params: { sandbox }, query: { path } })).files;
  }

  // Tools.
  async tools(): Promise<any[]> {
    return (await this.op("get-v1-tools")).tools;
  }
  callTool(tool: string, args: Record<string, unknown> = {}) {
    return this.op("post-v1-tools-by-tool-call", { params: { tool }, json: args });
  }
  /** One MCP JSON-RPC request to /mcp (stateless Streamable HTTP); returns its result. */
  async mcp(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const resp = await this.raw("POST", "/mcp", {
      json: { jsonrpc: "2.0", id: 1, method, params },
      headers: { Accept: "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18" },
    });
    let text = await resp.text();
    if ((resp.headers.get("content-type") ?? "").includes("text/event-stream")) {
      const datas = text.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim());
      text = datas.at(-1) ?? "{}";
    }
    const out = JSON.parse(text);
    if (out.error) throw new APIError(400, { title: "mcp error", detail: out.error.message, mcp: out.error });
    return out.result;
  }
  async mcpTools(): Promise<any[]> {
    return (await this.mcp("tools/list")).tools;
  }
  mcpCall(name: string, args: Record<string, unknown> = {}) {
    return this.mcp("tools/call", { name, arguments: args });
  }

  // Tokens.
  createToken(subject: string, ttl?: string, audience?: string[]) {
    return this.op("post-v1-tokens", { json: { subject, ttl, audience } });
  }
  revokeToken(id: string) {
    return this.op("post-v1-tokens-revoke", { json: { id } });
  }
}
