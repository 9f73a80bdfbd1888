package isolate

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"strings"
	"testing"
	"time"
)

// TestEventsBlobFormDataClass: EventTarget/Event/CustomEvent, Blob, File,
// FormData (built into a multipart body and parsed back, urlencoded too),
// AbortSignal.timeout, navigator.userAgent and scheduler.wait behave as on
// Workers, and malformed form bodies reject with TypeError.
func TestEventsBlobFormDataClass(t *testing.T) {
	cases := []struct{ name, expr, want string }{
		{"event target", `(() => { const t = new EventTarget(); const out = []; const f = (e) => out.push(e.type + ":" + (e.target === t));
			t.addEventListener("x", f); t.addEventListener("x", f); t.addEventListener("x", { handleEvent: () => out.push("obj") }, { once: true });
			t.dispatchEvent(new Event("x")); t.dispatchEvent(new Event("x")); t.removeEventListener("x", f); t.dispatchEvent(new Event("x")); return out.join() })()`,
			"x:true,obj,x:true"},
		{"event cancel", `(() => { const t = new EventTarget(); t.addEventListener("c", (e) => e.preventDefault()); return [t.dispatchEvent(new Event("c", {cancelable: true})), t.dispatchEvent(new Event("c"))].join() })()`, "false,true"},
		{"custom event", `(() => { const t = new EventTarget(); let d; t.addEventListener("c", (e) => d = e.detail); t.dispatchEvent(new CustomEvent("c", {detail: {a: 1}})); return JSON.stringify(d) })()`, `{"a":1}`},
		{"stop immediate", `(() => { const t = new EventTarget(); const out = []; t.addEventListener("s", (e) => { out.push(1); e.stopImmediatePropagation(); }); t.addEventListener("s", () => out.push(2)); t.dispatchEvent(new Event("s")); return out.join() })()`, "1"},
		{"listener signal", `(() => { const t = new EventTarget(); const c = new AbortController(); let n = 0; t.addEventListener("e", () => n++, {signal: c.signal}); t.dispatchEvent(new Event("e")); c.abort(); t.dispatchEvent(new Event("e")); return n })()`, "1"},
		{"dispatch non-event", `(() => { try { new EventTarget().dispatchEvent({type: "x"}); return "ok" } catch (e) { return e.name } })()`, "TypeError"},
		{"subclass", `(() => { class T extends EventTarget {}; const t = new T(); let n = 0; t.addEventListener("e", () => n++); t.dispatchEvent(new Event("e")); return n })()`, "1"},
		{"blob", `(async () => { const b = new Blob(["hé", new Uint8Array([33]), new Blob(["?"])], {type: "Text/Plain"}); return [b.size, b.type, await b.text(), await b.slice(1, 3).text(), await b.slice(-1).text()].join("|") })()`, "5|text/plain|hé!?|é|?"},
		{"blob bad parts", `(() => { try { new Blob("abc"); return "ok" } catch (e) { return e.name } })()`, "TypeError"},
		{"blob stream", `(async () => { const r = new Blob(["abc"]).stream().getReader(); const {value} = await r.read(); return value.length })()`, "3"},
		{"file", `(async () => { const f = new File(["x"], "a.txt", {type: "text/plain", lastModified: 5}); return [f.name, f.lastModified, f.size, f.type, f instanceof Blob].join() })()`, "a.txt,5,1,text/plain,true"},
		{"formdata", `(() => { const f = new FormData(); f.append("a", "1"); f.append("a", 2); f.append("b", new Blob(["z"])); f.set("a", "3");
			return [f.get("a"), f.getAll("a").length, f.get("b").name, f.has("c"), [...f.keys()].join("")].join("|") })()`, "3|1|blob|false|ab"},
		{"formdata round trip", `(async () => { const f = new FormData(); f.append("name", "line1\nline2"); f.append("q\"uote", "é");
			f.append("up", new File([new Uint8Array([0, 255, 1])], "b\"in.dat", {type: "application/x-bin"}));
			const r = new Response(f); const ct = r.headers.get("content-type");
			const g = await r.formData(); const up = g.get("up");
			return [ct.startsWith("multipart/form-data; boundary="), JSON.stringify(g.get("name")), g.get("q%22uote"), up.name, up.type, Array.from(new Uint8Array(await up.arrayBuffer())).join(".")].join("|") })()`,
			`true|"line1\r\nline2"|é|b%22in.dat|application/x-bin|0.255.1`},
		{"request formdata", `(async () => { const f = new FormData(); f.append("k", "v"); const r = new Request("http://h/", {method: "POST", body: f}); return (await r.formData()).get("k") })()`, "v"},
		{"urlencoded", `(async () => { const r = new Request("http://h/", {method: "POST", body: new URLSearchParams("a=1&b=x+y")}); const f = await r.formData(); return f.get("a") + f.get("b") })()`, "1x y"},
		{"formdata wrong type", `new Response("x", {headers: {"content-type": "text/plain"}}).formData().then(() => "ok", (e) => e.name)`, "TypeError"},
		{"formdata no boundary", `new Response("x", {headers: {"content-type": "multipart/form-data"}}).formData().then(() => "ok", (e) => e.name)`, "TypeError"},
		{"formdata truncated", `new Response("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nxx", {headers: {"content-type": "multipart/form-data; boundary=b"}}).formData().then(() => "ok", (e) => e.name)`, "TypeError"},
		{"blob body", `(async () => { const r = new Response(new Blob(["hi"], {type: "text/x"})); return r.headers.get("content-type") + (await r.text()) })()`, "text/xhi"},
		{"response blob", `(async () => { const b = await new Response("abc", {headers: {"content-type": "text/y"}}).blob(); return b.type + b.size })()`, "text/y3"},
		{"abort timeout", `new Promise((r) => { const s = AbortSignal.timeout(1); s.addEventListener("abort", () => r(s.reason.name + " " + (s.reason instanceof DOMException))); })`, "TimeoutError true"},
		{"navigator", `navigator.userAgent`, "agentcloud"},
		{"scheduler wait", `(async () => { const t = Date.now(); await scheduler.wait(5); return Date.now() - t >= 4 })()`, "true"},
		{"scheduler wait abort", `scheduler.wait(10000, {signal: AbortSignal.abort("stop")}).then(() => "ok", (e) => e)`, "stop"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := evalJS(t, c.expr); got != c.want {
				t.Fatalf("%s\n got %q\nwant %q", c.expr, got, c.want)
			}
		})
	}
}

// TestIncomingMultipart: a multipart body written by Go's mime/multipart
// reaches request.formData() with its fields and files.
func TestIncomingMultipart(t *testing.T) {
	iso := newIsolate(t, `export default { async fetch(req) {
		const f = await req.formData();
		const file = f.get("doc");
		return Response.json({title: f.get("title"), n: f.getAll("tag").length, file: file.name, type: file.type, text: await file.text()});
	} }`)
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("title", "hello")
	_ = w.WriteField("tag", "a")
	_ = w.WriteField("tag", "b")
	fw, _ := w.CreateFormFile("doc", "notes.txt")
	_, _ = fw.Write([]byte("file body"))
	_ = w.Close()
	resp, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{Method: "POST", URL: "http://x/",
		Headers: [][2]string{{"Content-Type", w.FormDataContentType()}}, Body: body.Bytes()}, newMemHost())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatalf("%s: %v", resp.Body, err)
	}
	if got["title"] != "hello" || got["n"] != 2.0 || got["file"] != "notes.txt" || got["type"] != "application/octet-stream" || got["text"] != "file body" {
		t.Fatalf("got %v", got)
	}
}

var formSeeds = []struct{ ct, body string }{
	{"multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--\r\n"},
	{"multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\nContent-Type: text/plain\r\n\r\nxyz\r\n--b--\r\n"},
	{"multipart/form-data; boundary=b", "--b\r\nContent-Disposition: attachment\r\n\r\n1\r\n--b--\r\n"},
	{"multipart/form-data; boundary=b", "--b\r\n\r\n"},
	{"multipart/form-data", ""},
	{"application/x-www-form-urlencoded", "a=1"},
	{"text/plain", "x"},
	{";;", ""},
}

// FuzzParseForm: no content type and body make the form parser panic,
// answer other than a JSON array or "urlencoded", exceed its part limit or
// fail with anything but a TypeError.
func FuzzParseForm(f *testing.F) {
	for _, s := range formSeeds {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		out, err := parseForm(ct, body, 1<<16)
		if err != nil {
			if he, ok := err.(*HostError); !ok || he.Name != "TypeError" {
				t.Fatalf("error %v", err)
			}
			return
		}
		if out == `"urlencoded"` {
			return
		}
		var parts []formPart
		if err := json.Unmarshal([]byte(out), &parts); err != nil || len(parts) > maxFormParts {
			t.Fatalf("answer %q: %v", out, err)
		}
		for _, p := range parts {
			if !p.File && strings.ToValidUTF8(p.Value, "") != p.Value {
				t.Fatalf("invalid UTF-8 field %q", p.Value)
			}
		}
	})
}
