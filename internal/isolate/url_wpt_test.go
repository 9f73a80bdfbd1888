package isolate

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wptURLDir is the directory of the web-platform-tests URL data the
// module github.com/nlnwa/whatwg-url ships (testdata/urltestdata.json,
// setters_tests.json), in the module cache.
func wptURLDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/nlnwa/whatwg-url").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/nlnwa/whatwg-url: %v (run go mod download)", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "testdata")
	if _, err := os.Stat(filepath.Join(dir, "urltestdata.json")); err != nil {
		t.Fatalf("the WPT URL data is missing: %v (run go mod download)", err)
	}
	return dir
}

// wptRunner runs the WPT URL cases in the isolate as the WPT harness
// does (url-constructor, url-origin, url-statics-canparse and
// url-setters): the request body is {urls, setters}, the two files as they
// are (JSON.parse keeps their lone surrogates, which Go's decoder would
// replace); the response is, per case, what the runtime's URL answered.
const wptRunner = `export default { async fetch(request) {
	const {urls, setters} = JSON.parse(await request.text());
	const parts = ["href", "origin", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"];
	const read = (u) => Object.fromEntries(parts.map((p) => [p, u[p]]));
	const out = {urls: [], setters: []};
	for (const c of urls) {
		if (typeof c === "string") continue;
		const base = c.base === null ? undefined : c.base;
		const r = {canParse: URL.canParse(c.input, base)};
		try {
			const u = new URL(c.input, base);
			Object.assign(r, read(u));
			if ("searchParams" in c) r.searchParams = u.searchParams.toString();
		} catch (e) { r.failure = true; r.error = e.name; }
		out.urls.push(r);
	}
	for (const [attr, cases] of Object.entries(setters)) {
		if (attr === "comment") continue;
		for (const c of cases) {
			try {
				const u = new URL(c.href);
				u[attr] = c.new_value;
				out.setters.push(read(u));
			} catch (e) { out.setters.push({error: e.name + ": " + e.message}); }
		}
	}
	return Response.json(out);
} }`

// wptURLCase is one case of urltestdata.json; the parts are compared as
// given, those absent are not checked.
type wptURLCase struct {
	Input        string            `json:"input"`
	Base         *string           `json:"base"`
	Failure      bool              `json:"failure"`
	SearchParams *string           `json:"searchParams"`
	Parts        map[string]string `json:"-"`
}

// wptSetterCase is one case of setters_tests.json.
type wptSetterCase struct {
	Href     string            `json:"href"`
	NewValue string            `json:"new_value"`
	Expected map[string]string `json:"expected"`
}

// wptURLKnown lists the WPT cases the runtime's URL does not pass, by
// input (setters: attribute, href and new value), with the reason. The
// test fails when any other case fails, or when one of these passes (then
// take it off the list).
var wptURLKnown = map[string]string{}

// TestURLWPT runs all of the web-platform-tests URL data the module
// github.com/nlnwa/whatwg-url ships through the runtime's URL in an
// isolate: urltestdata.json (every part of every parse, origins, the
// searchParams serialization, failures as a TypeError, URL.canParse
// agreeing) and setters_tests.json (each setter, then every part the case
// expects). It reports the pass counts and fails on any case not in
// wptURLKnown.
func TestURLWPT(t *testing.T) {
	dir := wptURLDir(t)
	urls, err := os.ReadFile(filepath.Join(dir, "urltestdata.json"))
	if err != nil {
		t.Fatal(err)
	}
	setters, err := os.ReadFile(filepath.Join(dir, "setters_tests.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rawURLs []json.RawMessage
	if err := json.Unmarshal(urls, &rawURLs); err != nil {
		t.Fatal(err)
	}
	var urlCases []wptURLCase
	for _, raw := range rawURLs {
		if raw[0] == '"' {
			continue // a comment
		}
		var c wptURLCase
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		var all map[string]any
		if err := json.Unmarshal(raw, &all); err != nil {
			t.Fatal(err)
		}
		c.Parts = map[string]string{}
		for _, p := range []string{"href", "origin", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"} {
			if v, ok := all[p].(string); ok {
				c.Parts[p] = v
			}
		}
		urlCases = append(urlCases, c)
	}
	var setterSets map[string]json.RawMessage
	if err := json.Unmarshal(setters, &setterSets); err != nil {
		t.Fatal(err)
	}
	var setterCases []wptSetterCase
	var setterAttrs []string
	// The runner walks the object's keys in their order in the file;
	// decode them in that order too.
	dec := json.NewDecoder(strings.NewReader(string(setters)))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		attr := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		if attr == "comment" {
			continue
		}
		var cs []wptSetterCase
		if err := json.Unmarshal(raw, &cs); err != nil {
			t.Fatal(err)
		}
		for range cs {
			setterAttrs = append(setterAttrs, attr)
		}
		setterCases = append(setterCases, cs...)
	}

	iso := newIsolate(t, wptRunner)
	body := `{"urls":` + string(urls) + `,"setters":` + string(setters) + `}`
	resp, err := iso.Fetch(ctxTimeout(t, 2*time.Minute), Request{Method: "POST", URL: "http://test/", Body: []byte(body)}, newMemHost())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 {
		t.Fatalf("runner: %d %s", resp.Status, resp.Body)
	}
	var got struct {
		URLs    []map[string]any `json:"urls"`
		Setters []map[string]any `json:"setters"`
	}
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.URLs) != len(urlCases) || len(got.Setters) != len(setterCases) {
		t.Fatalf("%d/%d parse results for %d/%d cases", len(got.URLs), len(got.Setters), len(urlCases), len(setterCases))
	}

	check := func(key string, diffs []string) bool {
		reason, known := wptURLKnown[key]
		switch {
		case len(diffs) == 0 && known:
			t.Errorf("%s passes now; take it off wptURLKnown (%s)", key, reason)
		case len(diffs) != 0 && !known:
			t.Errorf("%s:\n  %s", key, strings.Join(diffs, "\n  "))
		case len(diffs) != 0:
			t.Logf("known: %s: %s", key, reason)
		}
		return len(diffs) == 0
	}
	parsePass := 0
	for i, c := range urlCases {
		g := got.URLs[i]
		var diffs []string
		if c.Failure {
			if g["failure"] != true || g["error"] != "TypeError" {
				diffs = append(diffs, fmt.Sprintf("want a TypeError, got %v", g))
			}
		} else {
			for p, w := range c.Parts {
				if g[p] != w {
					diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", p, g[p], w))
				}
			}
			if c.SearchParams != nil && g["searchParams"] != *c.SearchParams {
				diffs = append(diffs, fmt.Sprintf("searchParams: got %q, want %q", g["searchParams"], *c.SearchParams))
			}
		}
		if g["canParse"] != !c.Failure {
			diffs = append(diffs, fmt.Sprintf("canParse: got %v", g["canParse"]))
		}
		key := fmt.Sprintf("parse %q", c.Input)
		if c.Base != nil {
			key += fmt.Sprintf(" against %q", *c.Base)
		}
		if check(key, diffs) {
			parsePass++
		}
	}
	setterPass := 0
	for i, c := range setterCases {
		g := got.Setters[i]
		var diffs []string
		if e, ok := g["error"]; ok {
			diffs = append(diffs, fmt.Sprintf("threw %v", e))
		}
		for p, w := range c.Expected {
			if g[p] != w {
				diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", p, g[p], w))
			}
		}
		if check(fmt.Sprintf("set %s of %q to %q", setterAttrs[i], c.Href, c.NewValue), diffs) {
			setterPass++
		}
	}
	t.Logf("WPT urltestdata.json: %d of %d cases pass; setters_tests.json: %d of %d", parsePass, len(urlCases), setterPass, len(setterCases))
}
