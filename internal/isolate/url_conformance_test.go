package isolate

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// urlParts reads the parts of new URL(input[, base]) the WHATWG URL
// standard defines, or {failure: true} when the parser throws; the same
// source runs under Node with whatwg-url and in an isolate.
const urlParts = `(cases, URL) => cases.map(([input, base]) => {
  try {
    const u = base === null ? new URL(input) : new URL(input, base);
    return {href: u.href, origin: u.origin, protocol: u.protocol, username: u.username, password: u.password,
      host: u.host, hostname: u.hostname, port: u.port, pathname: u.pathname, search: u.search, hash: u.hash};
  } catch (e) { return {failure: true}; }
})`

// urlConformanceBaseline is how many of testdata/urlcases.json the
// runtime's URL parses exactly as whatwg-url does; the test fails below it.
// All of them pass since URL parses through the host (url.go).
const urlConformanceBaseline = 96

// TestURLConformanceWhatwgURL compares the runtime's URL with whatwg-url
// (the WHATWG URL standard's reference implementation, pinned in
// testdata/whatwg-url) on the cases of testdata/urlcases.json: special and
// non-special schemes, hosts (IPv4 forms, IPv6, IDNA, forbidden code
// points), ports, credentials, percent-encoding per component, dot
// segments, backslashes, whitespace, opaque paths and relative resolution.
// TestURLWPT runs the web-platform-tests data against the spec snapshot of
// the Go parser; this one checks the same parser against the reference
// implementation of a later snapshot, every part of every result. It
// reports the pass count and fails when it drops below
// urlConformanceBaseline.
func TestURLConformanceWhatwgURL(t *testing.T) {
	ref, err := filepath.Abs("testdata/whatwg-url/node_modules/whatwg-url")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ref); err != nil {
		testdeps.Missing(t, "whatwg-url is not installed: run scripts/deps.sh (npm ci in internal/isolate/testdata/whatwg-url)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testdeps.Missing(t, "node is not installed")
	}
	cases, err := os.ReadFile("testdata/urlcases.json")
	if err != nil {
		t.Fatal(err)
	}
	var n []json.RawMessage
	if err := json.Unmarshal(cases, &n); err != nil {
		t.Fatal(err)
	}
	script := `const {URL} = require(` + jsString(ref) + `);
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify((` + urlParts + `)(cases, URL)));`
	cmd := exec.Command(node, "-e", script)
	cmd.Stdin = bytes.NewReader(cases)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var want, got []map[string]any
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("whatwg-url results: %v", err)
	}
	res := evalJS(t, `(`+urlParts+`)(`+string(cases)+`, URL)`)
	if err := json.Unmarshal([]byte(res), &got); err != nil {
		t.Fatalf("runtime results: %v: %s", err, res)
	}
	if len(got) != len(n) || len(want) != len(n) {
		t.Fatalf("%d cases, %d runtime results, %d reference results", len(n), len(got), len(want))
	}
	pass := 0
	for i := range n {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[i])
		if string(g) == string(w) {
			pass++
			continue
		}
		t.Logf("case %s:\n  runtime     %s\n  whatwg-url  %s", n[i], g, w)
	}
	t.Logf("URL conformance against whatwg-url: %d of %d cases pass", pass, len(n))
	if pass < urlConformanceBaseline {
		t.Fatalf("%d of %d cases pass; the baseline is %d", pass, len(n), urlConformanceBaseline)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// FuzzURLParse: any input, alone or against a base, either parses into a
// URL whose href parses again to the same href, or throws a TypeError —
// never another error, a hang or a crash of the isolate. Seeds: the
// conformance cases.
func FuzzURLParse(f *testing.F) {
	for _, s := range urlSeeds(f) {
		f.Add(*s[0])
	}
	iso := newIsolate(f, `export default { async fetch(request) {
		const input = await request.text();
		for (const base of [undefined, "http://example.com/a/b?q#f", "foo://h/p", "file:///c/d"]) {
			let u;
			try { u = base === undefined ? new URL(input) : new URL(input, base); }
			catch (e) { if (!(e instanceof TypeError)) return new Response(String(e), {status: 500}); continue; }
			const again = new URL(u.href).href;
			if (again !== u.href) return new Response(u.href + " reparses as " + again, {status: 500});
		}
		return new Response("ok");
	} }`)
	h := newMemHost()
	f.Fuzz(func(t *testing.T, input string) {
		resp, err := iso.Fetch(ctxTimeout(t, 30*time.Second), Request{Method: "POST", URL: "http://test/", Body: []byte(input)}, h)
		if err != nil {
			t.Fatalf("%q: %v", input, err)
		}
		if resp.Status != 200 {
			t.Fatalf("%q: %s", input, resp.Body)
		}
	})
}

// urlSeeds are testdata/urlcases.json's cases, input and base (nil for
// none), the URL fuzzers' seeds.
func urlSeeds(f *testing.F) [][2]*string {
	f.Helper()
	cases, err := os.ReadFile("testdata/urlcases.json")
	if err != nil {
		f.Fatal(err)
	}
	var seeds [][2]*string
	if err := json.Unmarshal(cases, &seeds); err != nil {
		f.Fatal(err)
	}
	return seeds
}
