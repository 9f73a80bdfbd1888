package isolate

import (
	"strings"
	"testing"
)

// TestStructuredClonePlatformClass: Blob and File clone to a Blob or File
// with the same bytes, type, name and lastModified; every other object of
// a class the runtime defines (FormData, Event, EventTarget, WebSocket,
// streams, Request, ...) and its singletons (console, crypto) throw a
// DataCloneError instead of coming back as a plain object of internal
// fields.
func TestStructuredClonePlatformClass(t *testing.T) {
	iso := harness(t)
	h := newMemHost()
	runJSCases(t, iso, h, []jsCase{{"helpers", `((0, eval)(` + q(cloneHelpers) + `), "ok")`, `"ok"`}})
	runJSCases(t, iso, h, []jsCase{
		{"blob", `(async () => { const b = new Blob(["hé", new Uint8Array([0, 255])], {type: "text/x"}); const c = structuredClone(b);
			return [c instanceof Blob, c instanceof File, c !== b, c.type, c.size, Array.from(new Uint8Array(await c.arrayBuffer()))]; })()`,
			`[true,false,true,"text/x",5,[104,195,169,0,255]]`},
		{"file", `(async () => { const f = new File(["abc"], "n.txt", {type: "text/plain", lastModified: 1234}); const c = structuredClone(f);
			return [c instanceof File, c !== f, c.name, c.lastModified, c.type, await c.text()]; })()`, `[true,true,"n.txt",1234,"text/plain","abc"]`},
		{"blob copied, shared kept", `(async () => { const b = new Blob(["x"]); const c = structuredClone({a: b, b: b, m: new Map([[1, b]])}); b._b = new ArrayBuffer(0);
			return [c.a === c.b, c.m.get(1) === c.a, await c.a.text()]; })()`, `[true,true,"x"]`},
		{"empty blob", `structuredClone(new Blob([])).size`, `0`},
		{"formdata refused", `dce(() => structuredClone(new FormData()))`, `"DataCloneError"`},
		{"events refused", `[dce(() => structuredClone(new Event("x"))), dce(() => structuredClone(new CustomEvent("x", {detail: 1}))), dce(() => structuredClone(new EventTarget()))]`,
			`["DataCloneError","DataCloneError","DataCloneError"]`},
		{"subclass refused", `(() => { class T extends EventTarget { constructor() { super(); this.x = 1; } } return dce(() => structuredClone({t: new T()})); })()`, `"DataCloneError"`},
		{"websocket refused", `(() => { const p = new WebSocketPair(); return [dce(() => structuredClone(p)), dce(() => structuredClone(p[0]))]; })()`, `["DataCloneError","DataCloneError"]`},
		{"streams refused", `[dce(() => structuredClone(new ReadableStream())), dce(() => structuredClone(new TransformStream())), dce(() => structuredClone(new TextDecoderStream())),
			dce(() => structuredClone(new ReadableStream().getReader())), dce(() => structuredClone(new CompressionStream("gzip")))]`,
			`["DataCloneError","DataCloneError","DataCloneError","DataCloneError","DataCloneError"]`},
		{"others refused", `[new AbortController(), AbortSignal.abort(), new TextDecoder(), new TextEncoder(), new URLSearchParams("a=1"), crypto.subtle, console, crypto, navigator].map((v) => dce(() => structuredClone([v])))`,
			`["DataCloneError","DataCloneError","DataCloneError","DataCloneError","DataCloneError","DataCloneError","DataCloneError","DataCloneError","DataCloneError"]`},
		// Every global class that is not the engine's (native code) is the
		// runtime's: an object of its prototype must not clone as a plain
		// object. A class added later is covered without being listed.
		{"every runtime class", `(() => { const out = [];
			for (const k of Object.getOwnPropertyNames(globalThis)) {
				const C = globalThis[k];
				if (typeof C !== "function" || Function.prototype.toString.call(C).includes("[native code]")) continue;
				const p = Object.getOwnPropertyDescriptor(C, "prototype");
				if (!p || p.writable) continue;
				const r = dce(() => structuredClone(Object.create(C.prototype)));
				if (r !== "DataCloneError") out.push(k + ": " + r);
			}
			return out.length ? out : "all " + (Object.getOwnPropertyNames(globalThis).filter((k) => typeof globalThis[k] === "function" && !Function.prototype.toString.call(globalThis[k]).includes("[native code]")).length > 30); })()`,
			`"all true"`},
	})
}

// TestStatePlatformObjectsClass: env.state stores a Blob or File with its
// bytes and gives it back as one; other platform objects are refused
// before anything is written, and no internal field is ever stored.
func TestStatePlatformObjectsClass(t *testing.T) {
	h := newMemHost()
	mod := newIsolate(t, stateEvalModule)
	runJSCases(t, mod, h, []jsCase{
		{"put", `(async () => { await st.put("b", new Blob([new Uint8Array([1, 2, 250])], {type: "application/x"}));
			await st.put("f", {file: new File(["hi"], "a.txt", {lastModified: 99})}); return "ok"; })()`, `"ok"`},
		{"get", `(async () => { const b = await st.get("b"), f = (await st.get("f")).file;
			return [b instanceof Blob, b.type, Array.from(new Uint8Array(await b.arrayBuffer())), f instanceof File, f.name, f.lastModified, await f.text()]; })()`,
			`[true,"application/x",[1,2,250],true,"a.txt",99,"hi"]`},
		{"formdata refused", `dce(st.put("x:fd", new FormData()))`, `"DataCloneError"`},
		{"event refused", `dce(st.put("x:ev", {e: new Event("e")}))`, `"DataCloneError"`},
		{"stream refused", `dce(st.put("x:rs", new ReadableStream()))`, `"DataCloneError"`},
		{"nothing written", `(async () => (await st.list({prefix: "x:"})).size)()`, `0`},
	})
	for k, v := range h.state {
		if s := string(v); strings.Contains(s, `"_b"`) || strings.Contains(s, `"_t"`) || strings.Contains(s, `"_e"`) {
			t.Errorf("%s stored with internal fields: %s", k, s)
		}
	}
	if s := string(h.state["b"]); !strings.Contains(s, `"L"`) {
		t.Errorf("blob stored as %s, want a Blob record", s)
	}
}
