package secrets

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
)

const testValue = "sk-live-4f3a/2b1c+0d9e=8f7a"

func substitution(values ...string) Substitution {
	var s Substitution
	for i, v := range values {
		s.add("S"+string(rune('0'+i)), []byte(v))
	}
	return s
}

// echoes are the ways an upstream hands a credential back: as is, in a
// longer header value, JSON-escaped, URL-escaped, hex, and base64 of the
// whole header at every alignment.
func echoes(v string) map[string]string {
	out := map[string]string{
		"raw":          "token " + v + " end",
		"json":         `{"auth":` + mustJSON(v) + `}`,
		"query":        "https://x.test/?k=" + url.QueryEscape(v),
		"query lower":  strings.ToLower(url.QueryEscape(v)),
		"path":         "/p/" + url.PathEscape(v) + "/q",
		"hex":          hex.EncodeToString([]byte(v)),
		"HEX":          strings.ToUpper(hex.EncodeToString([]byte(v))),
		"base64":       base64.StdEncoding.EncodeToString([]byte(v)),
		"base64url":    base64.RawURLEncoding.EncodeToString([]byte(v)),
		"bearer b64 0": base64.StdEncoding.EncodeToString([]byte("Bearer " + v)),
		"bearer b64 1": base64.StdEncoding.EncodeToString([]byte("xBearer " + v + "!")),
		"bearer b64 2": base64.URLEncoding.EncodeToString([]byte("xyBearer " + v + "!?")),
	}
	return out
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// leaks reports whether text still carries v in any echoed form: decoded
// base64/hex/URL forms are checked for the value itself.
func leaks(text, v string) bool {
	if strings.Contains(text, v) {
		return true
	}
	for _, f := range encodedForms([]byte(v)) {
		if strings.Contains(text, f) {
			return true
		}
	}
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.URLEncoding.DecodeString,
		base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(text); err == nil && bytes.Contains(b, []byte(v)) {
			return true
		}
	}
	if u, err := url.QueryUnescape(text); err == nil && strings.Contains(u, v) {
		return true
	}
	return false
}

func TestScrubEncodedFormsClass(t *testing.T) {
	sc := substitution(testValue).Scrubber()
	for name, text := range echoes(testValue) {
		if !leaks(text, testValue) {
			t.Fatalf("%s: the test's echo %q does not carry the value", name, text)
		}
		got := sc.String(text)
		if leaks(got, testValue) {
			t.Errorf("%s: %q scrubbed to %q still carries the value", name, text, got)
		}
		if !strings.Contains(got, "[secret S0]") {
			t.Errorf("%s: %q scrubbed to %q without a marker", name, text, got)
		}
	}
	// Headers: names and values.
	h := http.Header{"Echo": {"Bearer " + testValue}, "X-" + testValue: {"1"}, "Plain": {"ok"}}
	sc.Header(h)
	for k, vs := range h {
		if strings.Contains(k, testValue) || leaks(strings.Join(vs, ","), testValue) {
			t.Errorf("header %s: %q", k, vs)
		}
	}
	if h.Get("Plain") != "ok" {
		t.Errorf("unrelated header changed: %v", h)
	}
	// Nothing substituted: nothing scrubbed, nil-safe.
	var none *Scrubber
	if none.String("x"+testValue) != "x"+testValue || substitution().Scrubber() != nil {
		t.Fatal("an empty scrubber changed its input")
	}
}

// TestScrubStreamChunkBoundariesClass: a value split across reads at
// every offset, in every form, is still found; bytes that cannot begin a
// form are not held back.
func TestScrubStreamChunkBoundariesClass(t *testing.T) {
	sub := substitution(testValue, "second-secret-value")
	sc := sub.Scrubber()
	for name, text := range echoes(testValue) {
		text = "head " + text + " middle second-secret-value tail"
		want := sc.String(text)
		for cut := 0; cut <= len(text); cut++ {
			got := readAllChunks(t, sc, []string{text[:cut], text[cut:]})
			if got != want {
				t.Fatalf("%s cut at %d: %q, want %q", name, cut, got, want)
			}
		}
		if got := readAllChunks(t, sc, strings.Split(text, "")); got != want {
			t.Fatalf("%s byte by byte: %q, want %q", name, got, want)
		}
		r := sc.Reader(io.NopCloser(iotest.OneByteReader(strings.NewReader(text))), nil)
		if b, err := io.ReadAll(r); err != nil || string(b) != want {
			t.Fatalf("%s one byte reads: %q %v", name, b, err)
		}
	}
	// Not delayed: a chunk ending in bytes no form starts with comes out
	// before the next chunk arrives.
	pr, pw := io.Pipe()
	r := sc.Reader(pr, nil)
	go pw.Write([]byte("data: {\"x\":1}\n\n"))
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "data: {\"x\":1}\n\n" {
		t.Fatalf("first event held back: %q %v", buf[:n], err)
	}
	pw.Close()
	// atEOF runs before the last bytes come out.
	ran := false
	r = sc.Reader(io.NopCloser(strings.NewReader("abc")), func() { ran = true })
	if b, _ := io.ReadAll(r); string(b) != "abc" || !ran {
		t.Fatalf("atEOF: %q ran=%v", b, ran)
	}
}

// A stream that fails drops a held-back tail: it might begin a secret.
func TestScrubStreamErrorDropsTail(t *testing.T) {
	sc := substitution(testValue).Scrubber()
	src := io.MultiReader(strings.NewReader("ok "+testValue[:10]), iotest.ErrReader(io.ErrUnexpectedEOF))
	b, err := io.ReadAll(sc.Reader(io.NopCloser(src), nil))
	if err != io.ErrUnexpectedEOF || string(b) != "ok " {
		t.Fatalf("got %q, %v", b, err)
	}
}

func readAllChunks(t testing.TB, sc *Scrubber, chunks []string) string {
	t.Helper()
	r := sc.Reader(io.NopCloser(&chunkReader{chunks: chunks}), nil)
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// chunkReader returns one chunk per Read.
type chunkReader struct{ chunks []string }

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func TestSubstituteScrubsWhatItUsed(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newManager(t)
	if err := m.Set(ctx, Secret{Name: "K", AllowHosts: []string{"api.example.com"}}, []byte(testValue)); err != nil {
		t.Fatal(err)
	}
	sub, err := m.Substitute(ctx, https("api.example.com"), http.Header{"Authorization": {"Bearer {{secret:K}}"}})
	if err != nil {
		t.Fatal(err)
	}
	var merged Substitution
	merged.Merge(sub)
	merged.Merge(sub)
	if got := merged.Scrubber().String("echo " + testValue); got != "echo [secret K]" || len(merged.Names) != 1 {
		t.Fatalf("scrubbed %q, names %v", got, merged.Names)
	}
}

// FuzzScrubChunks: however a text is cut into reads, the stream comes out
// as the whole text scrubbed at once.
func FuzzScrubChunks(f *testing.F) {
	for _, text := range echoes(testValue) {
		f.Add(testValue, text, uint64(7), uint8(3))
	}
	f.Add("aa", "aaaaaaaaa", uint64(1), uint8(1))
	f.Add("abab", "abababab", uint64(2), uint8(5))
	f.Fuzz(func(t *testing.T, value, text string, seed uint64, step uint8) {
		if value == "" || len(value) > 256 || len(text) > 4096 {
			return
		}
		sc := substitution(value).Scrubber()
		want := sc.String(text)
		var chunks []string
		for rest := text; rest != ""; {
			seed = seed*6364136223846793005 + 1442695040888963407
			n := min(len(rest), int(seed>>58)%(int(step)+2)+1)
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if got := readAllChunks(t, sc, chunks); got != want {
			t.Fatalf("chunks %q: %q, want %q", chunks, got, want)
		}
		// A value sharing no byte with the marker cannot be rebuilt
		// around one, so it must be gone.
		if !strings.ContainsAny(value, "[secret S0]") && strings.Contains(want, value) {
			t.Fatalf("%q still in %q", value, want)
		}
	})
}

// BenchmarkScrubReader measures streaming a 1 MiB body (text with one
// echoed value every 64 KiB) through the scrubber of one substituted
// secret (about 20 encoded forms).
func BenchmarkScrubReader(b *testing.B) {
	var body bytes.Buffer
	for body.Len() < 1<<20 {
		body.WriteString(strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit ", 1170))
		body.WriteString("Bearer " + testValue + "\n")
	}
	data := body.Bytes()
	sc := substitution(testValue).Scrubber()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r := sc.Reader(io.NopCloser(bytes.NewReader(data)), nil)
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}
