package isolate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Cache API (caches.default, caches.open(name); cache.js). Responses
// are kept by the host, outside the heap: a CacheHost (the session layer
// keeps one CacheStore per node, shared by an agent's sessions). What may
// be stored, and until when, is decided here from the response's status
// and headers, as Workers decides it.

// CacheHost is a Host that keeps cached responses. A Host that is not one
// answers every cache operation with a NotSupportedError.
type CacheHost interface {
	// CacheMatch returns the response stored under url in the named cache
	// if it has not expired.
	CacheMatch(cache, url string) (CachedResponse, bool, error)
	// CachePut stores r under url in the named cache, replacing any
	// earlier one, if cachePolicy lets it (r.Expires is set from it), and
	// reports whether it did. A response too large for the cache is a
	// *SizeError; one the policy refuses, a *HostError.
	CachePut(cache, url string, r CachedResponse) (bool, error)
	// CacheDelete removes url from the named cache and reports whether
	// it was there.
	CacheDelete(cache, url string) (bool, error)
	// CacheEntryLimit is the most bytes one stored response may take.
	CacheEntryLimit() int64
}

// CachedResponse is one stored response.
type CachedResponse struct {
	Status     int
	StatusText string
	Headers    [][2]string
	Body       []byte
	// Expires is when the response stops being served; zero: never (it
	// stays until evicted).
	Expires time.Time
}

// Size is what r counts against a cache's budget: its bytes and a fixed
// overhead, so that many tiny entries are bounded too.
func (r CachedResponse) Size() int64 {
	n := int64(len(r.Body)+len(r.StatusText)) + cacheEntryOverhead
	for _, h := range r.Headers {
		n += int64(len(h[0]) + len(h[1]) + cacheHeaderOverhead)
	}
	return n
}

// cacheEntryOverhead is the bytes an entry counts beyond its contents (its
// key, list element and map slot, roughly).
const cacheEntryOverhead = 256

// cacheHeaderOverhead is the bytes a header counts beyond its name and
// value: a [2]string's two string headers, and the two allocations
// behind them.
const cacheHeaderOverhead = 64

// cachePolicy decides whether a response with this status and these
// headers is stored by a put at now, and until when (zero: no expiry). A
// 206, a status no Response has, or Vary: * is a TypeError, as on Workers;
// Cache-Control no-store or private, a Set-Cookie header, or a freshness
// lifetime already over (max-age=0, an Expires in the past or invalid)
// leave the cache as it was without an error. s-maxage wins over max-age,
// which wins over Expires.
func cachePolicy(status int, headers [][2]string, now time.Time) (expires time.Time, store bool, err error) {
	if status == http.StatusPartialContent {
		return time.Time{}, false, HostErrorf("TypeError", "Cannot cache response to a range request (206 Partial Content).")
	}
	if status < 200 || status > 599 {
		return time.Time{}, false, HostErrorf("TypeError", "Cannot cache a response with status %d.", status)
	}
	expiresHdr, hasExpires := "", false
	maxAge, sMaxAge := int64(-1), int64(-1)
	for _, h := range headers {
		switch strings.ToLower(h[0]) {
		case "vary":
			// The lists are walked in place: a header of millions of
			// commas costs no allocation.
			for rest, more := h[1], true; more; {
				var v string
				v, rest, more = strings.Cut(rest, ",")
				if strings.TrimSpace(v) == "*" {
					return time.Time{}, false, HostErrorf("TypeError", "Cannot cache response with 'Vary: *' header.")
				}
			}
		case "set-cookie":
			return time.Time{}, false, nil
		case "cache-control":
			for rest, more := h[1], true; more; {
				var d string
				d, rest, more = strings.Cut(rest, ",")
				name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
				switch strings.ToLower(strings.TrimSpace(name)) {
				case "no-store", "private":
					return time.Time{}, false, nil
				case "max-age":
					maxAge = deltaSeconds(val)
				case "s-maxage":
					sMaxAge = deltaSeconds(val)
				}
			}
		case "expires":
			expiresHdr, hasExpires = h[1], true
		}
	}
	age := sMaxAge
	if age < 0 {
		age = maxAge
	}
	switch {
	case age == 0:
		return time.Time{}, false, nil
	case age > 0:
		return now.Add(time.Duration(age) * time.Second), true, nil
	case hasExpires:
		t, err := http.ParseTime(strings.TrimSpace(expiresHdr))
		if err != nil || !t.After(now) {
			return time.Time{}, false, nil
		}
		return t, true, nil
	}
	return time.Time{}, true, nil
}

// deltaSeconds parses a Cache-Control delta-seconds value (quotes
// allowed); a bad one counts as 0 (stale), a huge one is capped at a year.
func deltaSeconds(s string) int64 {
	n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(s), `"`), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return min(n, 365*24*3600)
}

// wireCached is the JSON of a cached response's status and headers
// between cache.js and the host (the body travels as bytes beside it).
type wireCached struct {
	Status     int         `json:"status"`
	StatusText string      `json:"statusText"`
	Headers    [][2]string `json:"headers"`
}

// cacheCall is the host op "cache": op ("match", "put", "delete" or
// "limit"), the cache's name, the request URL, and for a put the
// response's wireCached JSON and body. match answers [meta, body] or
// undefined, put whether it stored the response, delete whether the
// entry was there (1 or 0).
func (c *callCtx) cacheCall(a []any) (any, error) {
	ch, ok := c.host.(CacheHost)
	if !ok {
		return nil, HostErrorf("NotSupportedError", "caches are not available here")
	}
	op, name, url := argString(a, 0), argString(a, 1), argString(a, 2)
	if op != "limit" && url == "" {
		return nil, HostErrorf("TypeError", "cache.%s: a request URL is required", op)
	}
	switch op {
	case "limit":
		return float64(min(ch.CacheEntryLimit(), int64(c.iso.rt.cfg.MaxBodyBytes))), nil
	case "match":
		r, ok, err := ch.CacheMatch(name, url)
		if err != nil || !ok {
			return nil, err
		}
		meta, err := json.Marshal(wireCached{Status: r.Status, StatusText: r.StatusText, Headers: r.Headers})
		if err != nil {
			return nil, fmt.Errorf("cache match: %w", err)
		}
		body := r.Body
		if body == nil {
			body = []byte{}
		}
		return []any{string(meta), body}, nil
	case "put":
		var w wireCached
		if err := json.Unmarshal([]byte(argString(a, 3)), &w); err != nil {
			return nil, HostErrorf("TypeError", "cache.put: bad response: %w", err)
		}
		stored, err := ch.CachePut(name, url, CachedResponse{Status: w.Status, StatusText: w.StatusText, Headers: w.Headers, Body: argBytes(a, 4)})
		var se *SizeError
		if errors.As(err, &se) {
			return nil, HostErrorf("RangeError", "cache.put: the response is %w", se)
		}
		if err != nil {
			return nil, fmt.Errorf("cache put: %w", err)
		}
		return boolNum(stored), nil
	case "delete":
		ok, err := ch.CacheDelete(name, url)
		if err != nil {
			return nil, fmt.Errorf("cache delete: %w", err)
		}
		return boolNum(ok), nil
	}
	return nil, HostErrorf("TypeError", "no cache operation %q", op)
}

func boolNum(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
