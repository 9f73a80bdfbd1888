package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Substitution is what Substitute put into one request: the names of the
// secrets used and, kept inside this package, their values, so that the
// Scrubber can remove them from whatever comes back.
type Substitution struct {
	// Names are the secrets used, sorted and distinct.
	Names  []string
	values []namedValue
}

type namedValue struct {
	name  string
	value []byte
}

// Empty reports whether nothing was substituted.
func (s Substitution) Empty() bool { return len(s.values) == 0 }

func (s *Substitution) add(name string, value []byte) {
	if !slices.Contains(s.Names, name) {
		s.Names = append(s.Names, name)
		slices.Sort(s.Names)
	}
	for _, v := range s.values {
		if v.name == name && bytes.Equal(v.value, value) {
			return
		}
	}
	s.values = append(s.values, namedValue{name: name, value: value})
}

// Merge adds what o substituted (one exchange whose secrets went in by
// more than one way, e.g. a header and a query parameter).
func (s *Substitution) Merge(o Substitution) {
	for _, v := range o.values {
		s.add(v.name, v.value)
	}
}

// Scrubber returns the scrubber of the substituted values, or nil (which
// scrubs nothing) when nothing was substituted.
func (s Substitution) Scrubber() *Scrubber {
	if s.Empty() {
		return nil
	}
	sc := &Scrubber{}
	seen := map[string]bool{}
	for _, v := range s.values {
		repl := []byte("[secret " + v.name + "]")
		for _, f := range encodedForms(v.value) {
			if seen[f] {
				continue
			}
			seen[f] = true
			sc.pats = append(sc.pats, scrubPattern{text: []byte(f), repl: repl})
			sc.maxLen = max(sc.maxLen, len(f))
			sc.first[f[0]] = true
		}
	}
	return sc
}

// minEncodedLen is the shortest hex or base64 form that is scrubbed: a
// shorter one would match unrelated data too often (a 6-character base64
// run is 36 bits).
const minEncodedLen = 6

// encodedForms lists the forms of v an upstream is likely to echo: as is,
// JSON-escaped, URL-escaped (query and path, upper- and lower-case hex),
// hex, and base64 (standard and URL alphabets, padded and not, and, for a
// value inside a longer base64 text, the characters that depend only on v
// at each of the three alignments).
func encodedForms(v []byte) []string {
	var out []string
	add := func(f string, least int) {
		if len(f) >= max(least, 1) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	s := string(v)
	add(s, 1)
	if q, err := json.Marshal(s); err == nil {
		add(string(q[1:len(q)-1]), 1)
	}
	for _, e := range []string{url.QueryEscape(s), url.PathEscape(s)} {
		add(e, 1)
		add(lowerEscapes(e), 1)
	}
	h := hex.EncodeToString(v)
	add(h, minEncodedLen)
	add(strings.ToUpper(h), minEncodedLen)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		add(enc.EncodeToString(v), minEncodedLen)
		raw := enc.WithPadding(base64.NoPadding)
		add(raw.EncodeToString(v), minEncodedLen)
		for k := range 3 {
			b := raw.EncodeToString(append(make([]byte, k), v...))
			// Characters lo..hi-1 hold only bits of v: the first ones
			// mix in the k bytes before it, the last partial one the
			// bytes after it.
			lo, hi := (8*k+5)/6, 8*(k+len(v))/6
			if hi > lo {
				add(b[lo:hi], minEncodedLen)
			}
		}
	}
	return out
}

// lowerEscapes lower-cases the hex digits of every %XX escape in s.
func lowerEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lowerHex(b[i+1]), lowerHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lowerHex(c byte) byte {
	if c >= 'A' && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// Scrubber replaces substituted secret values, in every form encodedForms
// lists, by "[secret NAME]": in strings, headers and streamed bodies. At
// each position the longest form wins, leftmost first. A nil *Scrubber
// scrubs nothing.
type Scrubber struct {
	pats   []scrubPattern
	maxLen int       // the longest pattern
	first  [256]bool // bytes a pattern starts with
}

type scrubPattern struct {
	text, repl []byte
}

// String returns s scrubbed.
func (sc *Scrubber) String(s string) string {
	if sc == nil || s == "" {
		return s
	}
	out, _ := sc.scrub(nil, []byte(s), true)
	return string(out)
}

// Header scrubs every header name and value of h in place.
func (sc *Scrubber) Header(h http.Header) {
	if sc == nil {
		return
	}
	for k, vs := range h {
		for i, v := range vs {
			vs[i] = sc.String(v)
		}
		if nk := sc.String(k); nk != k {
			delete(h, k)
			h[nk] = append(h[nk], vs...)
		}
	}
}

// scrub appends buf scrubbed to dst. Unless eof, it keeps back the
// shortest tail of buf that could still begin a pattern (at most maxLen-1
// bytes) and returns it as rest, to be scanned again with the bytes that
// follow; so a value split across reads is found, and bytes that cannot
// begin one are never held back (a stream is not delayed).
func (sc *Scrubber) scrub(dst, buf []byte, eof bool) (out, rest []byte) {
	hold := len(buf)
	if !eof {
		hold = sc.holdFrom(buf)
	}
	next := make([]int, len(sc.pats)) // next match of each pattern at or after i; -1 none; -2 unknown
	for j := range next {
		next[j] = -2
	}
	i := 0
	for {
		best, bi := -1, -1
		for pi, p := range sc.pats {
			if next[pi] == -1 {
				continue
			}
			if next[pi] < i {
				j := bytes.Index(buf[i:], p.text)
				if j < 0 {
					next[pi] = -1
					continue
				}
				next[pi] = i + j
			}
			if bi < 0 || next[pi] < best || next[pi] == best && len(p.text) > len(sc.pats[bi].text) {
				best, bi = next[pi], pi
			}
		}
		// A match from hold on might be part of a longer one that the
		// next bytes complete: leave it for the next call.
		if bi < 0 || best >= hold {
			break
		}
		dst = append(dst, buf[i:best]...)
		dst = append(dst, sc.pats[bi].repl...)
		i = best + len(sc.pats[bi].text)
	}
	if i < hold {
		dst = append(dst, buf[i:hold]...)
		i = hold
	}
	return dst, buf[i:]
}

// holdFrom returns the first position from which buf's tail is a proper
// prefix of some pattern, or len(buf).
func (sc *Scrubber) holdFrom(buf []byte) int {
	for k := max(0, len(buf)-sc.maxLen+1); k < len(buf); k++ {
		if !sc.first[buf[k]] {
			continue
		}
		tail := buf[k:]
		for _, p := range sc.pats {
			if len(p.text) > len(tail) && bytes.HasPrefix(p.text, tail) {
				return k
			}
		}
	}
	return len(buf)
}

// Reader returns body scrubbed as it streams: it holds back only the bytes
// that might begin a secret's form until the next read decides, so memory
// stays bounded by the read size plus the longest form. atEOF, if not nil,
// runs once the body has been read to its end and before the last bytes
// are returned (to scrub trailers, which arrive then).
func (sc *Scrubber) Reader(body io.ReadCloser, atEOF func()) io.ReadCloser {
	if sc == nil {
		return body
	}
	return &scrubReader{sc: sc, src: body, atEOF: atEOF}
}

// readSize is how much a scrubReader reads from its source at a time.
const readSize = 32 << 10

type scrubReader struct {
	sc    *Scrubber
	src   io.ReadCloser
	atEOF func()
	win   []byte // held-back bytes, then the next read
	out   []byte // scrubbed bytes not yet returned
	off   int    // of out already returned
	err   error  // the source's error, returned once out is drained
}

func (r *scrubReader) Read(p []byte) (int, error) {
	for r.off == len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		r.win = slices.Grow(r.win, readSize)
		n, err := r.src.Read(r.win[len(r.win) : len(r.win)+readSize])
		r.win = r.win[:len(r.win)+n]
		eof := err == io.EOF
		if eof && r.atEOF != nil {
			r.atEOF()
		}
		var rest []byte
		r.out, rest = r.sc.scrub(r.out[:0], r.win, eof)
		r.off = 0
		// A failed stream drops what it held back: it could be the start
		// of a secret.
		r.win = append(r.win[:0], rest...)
		if err != nil {
			r.err = err
			r.win = nil
		}
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	return n, nil
}

func (r *scrubReader) Close() error { return r.src.Close() }
