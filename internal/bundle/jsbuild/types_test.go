package jsbuild

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/testdeps"
)

const typesManifest = `{"name":"typed","entry":"index.ts","tools":["ping","acme.search"],"secrets":["API_KEY"],
"env":{"GREETING":"hi \"there\"","MAX_ITEMS":"10"}}`

// goodAgent uses every binding as documented; badAgent misuses each.
const goodAgent = `export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const n: number = ((await env.state.get<number>("count")) ?? 0) + 1;
    await env.state.put({ count: n });
    await env.state.setAlarm(Date.now() + 1000);
    const todos: Map<string, { text: string }> = await env.state.list({ prefix: "todo:" });
    const pong = await env.tools.call("ping", {});
    const chat = await env.ai.chat({ model: "default", messages: [{ role: "user", content: "hi" }] });
    const r = await env.sandbox.run({ language: "python", code: "print(1)" });
    const auth: SecretPlaceholder = "{{secret:API_KEY}}";
    await fetch("https://api.example.com/", { headers: { authorization: auth } });
    const greeting: "hi \"there\"" = env.GREETING;
    return Response.json({ n, todos: [...todos.keys()], pong: pong.text, chat, out: r.stdout, greeting,
      max: Number(env.MAX_ITEMS), who: env.session.agent + "/" + env.session.id, url: request.url });
  },
  async alarm(env: Env) { await env.state.put("fired", true); },
} satisfies AgentHandler;
`

// socketAgent uses what the runtime adds for WebSockets: ctx, a
// WebSocketPair, a 101 Response, the hibernation handlers, attachments.
const socketAgent = `let seen = 0;
export default {
  async fetch(request: Request, env: Env, ctx: AgentContext): Promise<Response> {
    ctx.waitUntil(scheduler.wait(1));
    ctx.passThroughOnException();
    const [client, server] = Object.values(new WebSocketPair());
    ctx.acceptWebSocket(server, ["chat", env.session.id]);
    server.serializeAttachment({ joined: Date.now() });
    server.send("welcome");
    const open: number = ctx.getWebSockets("chat").length + env.state.getWebSockets().length;
    const pair = new WebSocketPair();
    pair[1].accept();
    pair[1].addEventListener("message", (ev) => console.log(ev));
    return new Response(null, { status: 101, statusText: String(open), webSocket: client });
  },
  async webSocketMessage(ws, message) {
    seen++;
    const text: string = typeof message === "string" ? message : new TextDecoder().decode(message);
    const att = ws.deserializeAttachment() as { joined: number } | null;
    ws.send(seen + ": " + text + " " + (att?.joined ?? 0));
  },
  async webSocketClose(ws: WebSocket, code: number, reason: string, wasClean: boolean) {
    console.log("closed", code, reason, wasClean, ws.readyState);
  },
  async alarm(env: Env, ctx: AgentContext) { ctx.waitUntil(env.state.put("fired", true)); },
} satisfies AgentHandler;
`

var badAgent = map[string]string{
	"unknown tool":      `export async function f(env: Env) { await env.tools.call("rm_rf", {}); }`,
	"unknown env value": `export function f(env: Env) { return env.NOPE; }`,
	"secret in env":     `export function f(env: Env) { return env.secrets.API_KEY; }`,
	"unknown secret":    `export const p: SecretPlaceholder = "{{secret:OTHER}}";`,
	"bad sandbox lang":  `export async function f(env: Env) { await env.sandbox.run({ language: "cobol", code: "" }); }`,
	"bad handler":       `export default { fetch(request: Request, env: Env) { return 42; } } satisfies AgentHandler;`,
	"bad ctx":           `export default { fetch(request: Request, env: Env, ctx: number) { return new Response(); } } satisfies AgentHandler;`,
	"text-only message": `export default { webSocketMessage(ws: WebSocket, message: string) {} } satisfies AgentHandler;`,
	"bad close":         `export default { webSocketClose(ws: WebSocket, code: string) {} } satisfies AgentHandler;`,
	"unknown handler":   `export default { webSocketError(ws: WebSocket, error: unknown) {} } satisfies AgentHandler;`,
	"non-string tags":   `export function f(ctx: AgentContext) { ctx.acceptWebSocket(new WebSocketPair()[1], [1]); }`,
}

func typesDir(t *testing.T) string {
	t.Helper()
	m, err := bundle.Parse([]byte(strings.ReplaceAll(typesManifest, "index.ts", "index.js")))
	if err != nil {
		t.Fatal(err)
	}
	m.Entry = "index.ts"
	dir := t.TempDir()
	write(t, dir, "agent.json", typesManifest)
	write(t, dir, TypesFile, string(Types(m)))
	write(t, dir, "index.ts", goodAgent)
	write(t, dir, "socket.ts", socketAgent)
	return dir
}

// TestTypesBuildWithEsbuild: an agent written against the declarations
// builds (esbuild strips the types; it does not check them).
func TestTypesBuildWithEsbuild(t *testing.T) {
	dir := typesDir(t)
	res, err := BuildDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Bundle.Files[TypesFile]; !ok || strings.Contains(string(res.Bundle.EntryFile()), "satisfies") {
		t.Fatalf("bundle: %v, entry:\n%s", res.Bundle.Paths(), res.Bundle.EntryFile())
	}
	d := string(Types(res.Bundle.Manifest))
	for _, want := range []string{`type ToolName = "ping" | "acme.search";`, `type SecretName = "API_KEY";`, `readonly GREETING: "hi \"there\"";`, `readonly agent: "typed"`} {
		if !strings.Contains(d, want) {
			t.Errorf("declarations lack %s", want)
		}
	}
	empty := string(Types(bundle.Manifest{Name: "bare"}))
	if !strings.Contains(empty, "type ToolName = never;") || !strings.Contains(empty, "type SecretName = never;") {
		t.Errorf("no tools or secrets should give never:\n%s", empty)
	}
}

// TestTypesCompileWithTSC type-checks the declarations with tsc: the good
// agent compiles under --strict, and each misuse is a type error. tsc is
// npm's typescript, installed by scripts/deps.sh into testdata/tsc.
func TestTypesCompileWithTSC(t *testing.T) {
	tsc, err := filepath.Abs("testdata/tsc/node_modules/typescript/bin/tsc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tsc); err != nil {
		testdeps.Missing(t, "typescript is not installed in testdata/tsc (run scripts/deps.sh)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testdeps.Missing(t, "no node")
	}
	dir := typesDir(t)
	// One tsc run (it takes seconds): the good agent and each misuse in
	// a file of its own.
	files := []string{TypesFile, "index.ts", "socket.ts"}
	names := slices.Sorted(maps.Keys(badAgent))
	for i, name := range names {
		f := fmt.Sprintf("bad%d.ts", i)
		write(t, dir, f, badAgent[name])
		files = append(files, f)
	}
	cmd := exec.Command(node, append([]string{tsc, "--noEmit", "--strict", "--target", "es2022", "--module", "esnext",
		"--moduleResolution", "bundler", "--lib", "es2022,webworker"}, files...)...)
	cmd.Dir = dir
	raw, err := cmd.CombinedOutput()
	out := string(raw)
	if err == nil {
		t.Fatalf("tsc accepted every misuse:\n%s", out)
	}
	if strings.Contains(out, "index.ts(") || strings.Contains(out, "socket.ts(") || strings.Contains(out, TypesFile+"(") {
		t.Fatalf("a good agent or the declarations do not type-check:\n%s", out)
	}
	for i, name := range names {
		if !strings.Contains(out, fmt.Sprintf("bad%d.ts(", i)) {
			t.Errorf("%s: tsc accepted it:\n%s", name, badAgent[name])
		}
	}
}
