package isolate

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// oldURLModule is the module of testdata/oldurl.snap: an isolate of it,
// after one request, snapshotted by the commit before URL parsed through
// the host, when url.js was a parser in JavaScript.
const oldURLModule = `let n = 0;
export default { async fetch(req) {
	n++;
	const u = new URL(req.url);
	const r = new URL("../x/y?a=1&b=2#h", u);
	r.searchParams.append("c", "d e");
	r.hash = "frag";
	r.pathname = "/p/q";
	r.port = "8080";
	const before = r.searchParams.get("a");
	r.search = "?z=1";
	const sp = new URLSearchParams("k=w&k=v&j=1");
	sp.sort();
	const req2 = new Request(r);
	const enc = new URL("http://h/a b/\u00e9?\u00e9#\u00e9").href;
	return Response.json({n, enc, href: u.href, q: u.searchParams.get("q"), rel: r.href, before, sp: r.searchParams.toString(), sorted: sp.toString(),
		req: req2.url, origin: r.origin, host: r.host, canParse: URL.canParse("nope"), json: JSON.stringify({r})});
} }`

// TestURLOldPreludeClass restores testdata/oldurl.snap, a session
// hibernated with the prelude whose URL parsed in JavaScript, and checks
// that it keeps running (its heap holds its own URL, which calls no host
// op that was removed) and answers as a new isolate of the same module
// does, its state (the request count) carried over.
func TestURLOldPreludeClass(t *testing.T) {
	rt := testRuntime(t)
	ctx := ctxTimeout(t, 20*time.Second)
	old, err := os.ReadFile("testdata/oldurl.snap")
	if err != nil {
		t.Fatal(err)
	}
	restored, err := rt.Restore(ctx, Spec{SessionID: "s1", Agent: "a1", Module: oldURLModule}, old, nil)
	if errors.Is(err, ErrBadSnapshot) && strings.Contains(err.Error(), "quickjs.wasm") {
		t.Skipf("oldurl.snap was made with another quickjs.wasm: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restored.Close(ctx) })
	fresh := newIsolate(t, oldURLModule)
	answer := func(iso *Isolate) map[string]any {
		resp, err := iso.Fetch(ctx, Request{Method: "GET", URL: "http://a/p/r?q=1"}, newMemHost())
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(resp.Body, &m); err != nil {
			t.Fatalf("%v: %s", err, resp.Body)
		}
		return m
	}
	got, want := answer(restored), answer(fresh)
	if got["n"] != 2.0 || want["n"] != 1.0 {
		t.Fatalf("request counts: restored %v (want 2), fresh %v (want 1)", got["n"], want["n"])
	}
	delete(got, "n")
	delete(want, "n")
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("the old heap answers\n  %s\nthe new prelude\n  %s", g, w)
	}
	if want["rel"] != "http://a:8080/p/q?z=1#frag" || want["sp"] != "z=1" || want["sorted"] != "j=1&k=w&k=v" {
		t.Fatalf("unexpected answer %s", w)
	}
}

// TestURLSizeLimitClass: a URL with a 1 MiB query, fragment or opaque
// path parses and its searchParams work, and so does one with a 64 KiB
// path (the longest request line the server takes); a string over the
// host's limit (maxURLBytes, in UTF-8 bytes) as input, base or setter
// value, or an input and base, or an href and a setter's value, together
// over it (a new search or hash: what the URL would be), is a TypeError that says so, also when only its UTF-8 form is
// over, and canParse and parse answer false and null for it; so is a head
// (what comes before the query) over maxURLHeadBytes, in an input, a base
// or given to a setter other than search and hash, and credentials (what
// precedes the head's last @) over maxURLCredsBytes. The origin of a
// blob: URL whose path is such a head is opaque (the path is not parsed),
// and an href replaced by code in the URL object meets the limits too.
func TestURLSizeLimitClass(t *testing.T) {
	// Four isolates, each with its own time limit: the megabyte strings
	// are slow to build and walk in the guest on a loaded machine.
	const errFn = `const err = (f) => { try { f(); return "no error"; } catch (e) { return e.name + ": " + e.message.replace(/[0-9]+/g, "N"); } };`
	parts := []string{
		evalJS(t, `(() => {
		const out = [];
		const u = new URL("http://h/?q=" + "a".repeat(1 << 20));
		out.push(u.search.length, u.searchParams.get("q").length);
		u.searchParams.append("z", "1");
		out.push(u.href.endsWith("aaa&z=1"), u.search.length);
		return out.join("\n");
	})()`),
		evalJS(t, `(() => {
		`+errFn+`
		const out = [];
		const over = "http://h/?" + "a".repeat(2 << 20);
		const overBytes = "http://h/?" + "\u00e9".repeat(1 << 20);
		out.push(err(() => new URL(over)), err(() => new URL(overBytes)), err(() => new URL("/p", over)));
		out.push(err(() => { new URL("http://h/").search = over; }), URL.canParse(over), URL.parse(overBytes));
		out.push(err(() => new URL("?" + "a".repeat(3 << 19), "http://h/?" + "b".repeat(1 << 20))));
		return out.join("\n");
	})()`),
		evalJS(t, `(() => {
		`+errFn+`
		const out = [];
		const mb = "a".repeat(1 << 20), head = "/p".repeat(32765);
		const d = new URL("data:text/plain," + mb.slice(3 << 18) + "#" + mb.slice(3 << 18));
		out.push(d.pathname.length, d.hash.length);
		d.search = mb;
		out.push(err(() => { d.hash = mb; }), d.hash.length, d.search.length, URL.canParse("http://h" + head), URL.canParse("http://h" + head.slice(2)));
		out.push(URL.canParse("http://h/" + "a/".repeat(30000)), new URL("/" + "seg/".repeat(16000), "http://h/").pathname.length);
		return out.join("\n");
	})()`),
		evalJS(t, `(() => {
		`+errFn+`
		const out = [];
		const head = "/p".repeat(32765);
		out.push(err(() => new URL("http://h" + head)), err(() => new URL("x", "http://h" + head)), err(() => new URL(head + "/x/y/z/w", "http://h/")));
		out.push(err(() => { new URL("http://h/").pathname = head + "/x/y/z/w"; }), err(() => { new URL("http://h/").username = head + "/x/y/z/w"; }));
		out.push(URL.canParse("http://" + "a".repeat(8185) + "@h/"), err(() => new URL("http://" + "a".repeat(8186) + "@h/")), err(() => new URL("/", "http://" + "@".repeat(9000) + "h/")));
		out.push(new URL("blob:http://h" + head.slice(10)).origin, new URL("blob:http://h" + head + "/x/y/z/w").origin);
		const forged = new URL("http://h/");
		forged._p[0] = "http://" + "@".repeat(1 << 20);
		out.push(err(() => { forged.hash = "x"; }));
		return out.join("\n");
	})()`),
	}
	got := strings.Join(parts, "\n")
	want := strings.Join([]string{"1048579", "1048576", "true", "1048583",
		"TypeError: Invalid URL: N characters, more than the N bytes the runtime parses",
		"TypeError: Invalid URL: the input is N bytes, more than the N the runtime parses",
		"TypeError: Invalid URL: N characters, more than the N bytes the runtime parses",
		"TypeError: Invalid URL: N characters, more than the N bytes the runtime parses",
		"false", "",
		"TypeError: Invalid URL: the input and its base are N bytes, more than the N the runtime parses",
		"262155", "262145",
		"TypeError: Invalid URL: with the new hash it would be N bytes, more than the N the runtime parses", "262145", "1048577", "false", "true",
		"true", "64001",
		"TypeError: Invalid URL: the input has N bytes before its query, more than the N the runtime parses",
		"TypeError: Invalid URL: the base has N bytes before its query, more than the N the runtime parses",
		"TypeError: Invalid URL: the input has N bytes before its query, more than the N the runtime parses",
		"TypeError: Invalid URL: the pathname has N bytes before its query, more than the N the runtime parses",
		"TypeError: Invalid URL: the username has N bytes before its query, more than the N the runtime parses",
		"true",
		"TypeError: Invalid URL: the input has N bytes before its last @ (its credentials), more than the N the runtime parses",
		"TypeError: Invalid URL: the base has N bytes before its last @ (its credentials), more than the N the runtime parses",
		"http://h", "null",
		"TypeError: Invalid URL: the URL has N bytes before its query, more than the N the runtime parses",
	}, "\n")
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// urlSetters are the names url.set takes.
var urlSetters = []string{"href", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"}

// checkURLResult checks what url.parse or url.set answered: a TypeError,
// or ten parts of printable ASCII whose href parses again to the same
// parts (the setters work from the href alone, so it must keep the URL).
func checkURLResult(t *testing.T, what string, res string, err error) {
	t.Helper()
	if err != nil {
		var he *HostError
		if !errors.As(err, &he) || he.Name != "TypeError" {
			t.Fatalf("%.200s: %.200v, not a TypeError", what, err)
		}
		if strings.Contains(he.Message, "the parser failed") {
			t.Fatalf("%.200s: %.200v", what, err)
		}
		return
	}
	parts := strings.Split(res, "\n")
	if len(parts) != 10 {
		t.Fatalf("%.200s: %d parts in %.200q", what, len(parts), res)
	}
	for i := 0; i < len(res); i++ {
		if c := res[i]; c != '\n' && (c < 0x20 || c > 0x7e) {
			t.Fatalf("%.200s: byte %#x in %.200q", what, c, res)
		}
	}
	again, err := urlParse(parts[0], "", false)
	if err != nil {
		t.Fatalf("%.200s: %.200q does not parse again: %.200v", what, res, err)
	}
	if again != res {
		t.Fatalf("%.200s: %.200q parses again as %.200q", what, res, again)
	}
}

// FuzzURLHost: the host ops url.parse and url.set, on any input, base,
// setter and value (malformed, huge, invalid UTF-8 or WTF-8 surrogates),
// answer a TypeError or a URL (checkURLResult), also for a setter given
// any href as the URL (code can replace it in the object); never a panic,
// which the ops would turn into a TypeError saying "the parser failed" (a
// failure here too). Seeds: testdata/urlcases.json and hostile inputs.
func FuzzURLHost(f *testing.F) {
	seeds := urlSeeds(f)
	for i, s := range seeds {
		base := ""
		if s[1] != nil {
			base = *s[1]
		}
		f.Add(*s[0], base, uint8(i), "x")
	}
	for _, s := range []string{"\xff\xfe", "http://h/\xed\xa0\x80\xed\xb0\x80", "http://\xed\xbf\xbf/", "http://" + strings.Repeat("[", 1000),
		"http://h/?" + strings.Repeat("%", 100000), "http://h/" + strings.Repeat("../", 10000), "http://[::1.2.3.4.5]/", "http://xn--a.xn--/",
		"http://0x7f.1/", "file:////\\c|/..", "a:\t/\n/b", strings.Repeat("a", maxURLBytes+1), "blob:blob:http://h/", "http://h:65536/",
		"http://" + strings.Repeat("\u00e9", 10000) + "/", "http://h" + strings.Repeat("/@", maxURLHeadBytes/2),
		"blob:http://" + strings.Repeat("@", 2*maxURLHeadBytes), "blob:https://h" + strings.Repeat("/", maxURLHeadBytes-20),
		"data:," + strings.Repeat("/@", maxURLHeadBytes), "a\t:\n" + strings.Repeat("/", maxURLHeadBytes), "non-special://" + strings.Repeat("%", 1000)} {
		f.Add(s, "http://h/a", uint8(len(s)), s)
	}
	f.Fuzz(func(t *testing.T, input, base string, setter uint8, value string) {
		res, err := urlParse(input, "", false)
		checkURLResult(t, "parse "+input, res, err)
		rel, rerr := urlParse(input, base, true)
		checkURLResult(t, "parse "+input+" against "+base, rel, rerr)
		name := urlSetters[int(setter)%len(urlSetters)]
		forged, err := urlSet(input, name, value) // an href replaced in the URL object
		checkURLResult(t, "set "+name+" of "+input+" to "+value, forged, err)
		if rerr != nil {
			return
		}
		set, err := urlSet(strings.SplitN(rel, "\n", 2)[0], name, value)
		checkURLResult(t, "set "+name+" to "+value, set, err)
	})
}

// TestURLSearchParamsRefusedWriteClass: a change to a URL's searchParams
// that the host refuses (the URL would pass maxURLBytes) throws and leaves
// both the pairs and the URL as they were: they never drift apart.
func TestURLSearchParamsRefusedWriteClass(t *testing.T) {
	got := evalJS(t, `(() => {
		const u = new URL("http://h/?k=" + "a".repeat((2 << 20) - 200));
		const sp = u.searchParams, href = u.href;
		const out = [];
		for (const f of [() => sp.append("x", "y".repeat(300)), () => sp.set("x", "y".repeat(300)), () => sp.set("k", "z".repeat(2 << 20))]) {
			try { f(); out.push("no error"); } catch (e) { out.push(e.name); }
			out.push(sp.size, u.href === href, sp.get("k").length, sp.has("x"));
		}
		sp.append("x", "1");
		out.push(sp.size, u.search.endsWith("&x=1"), sp.toString() === u.search.slice(1));
		sp.set("k", "v"); sp.delete("x"); sp.sort();
		out.push(u.href, sp.size);
		return out.join(",");
	})()`)
	want := "TypeError,1,true,2096952,false,TypeError,1,true,2096952,false,TypeError,1,true,2096952,false,2,true,true,http://h/?k=v,1"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
