package audit

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Clip makes an untrusted string fit a record: control characters, invalid
// UTF-8 and backslashes are escaped (Go syntax, \x1b, \u2028, ...), and the
// result is cut at max bytes, at a character boundary, with a note of how
// much was cut. The result is at most limit bytes plus the note's length.
func Clip(s string, limit int) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var piece string
		switch {
		case r == utf8.RuneError && size == 1:
			piece = `\x` + strconv.FormatUint(uint64(s[i]), 16)
		case r == '\\':
			piece = `\\`
		case strconv.IsPrint(r):
			piece = s[i : i+size]
		default:
			q := strconv.QuoteRune(r)
			piece = q[1 : len(q)-1]
		}
		if b.Len()+len(piece) > limit {
			b.WriteString("…[" + strconv.Itoa(len(s)-i) + " more bytes]")
			return b.String()
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// OverflowKey collects what a Limiter holds back for keys it has no room
// to track one by one.
const OverflowKey = "(other sources)"

// Limiter bounds how many records a source may add: Burst per key in each
// window, and a global budget per window over all keys, tracking at most
// MaxKeys keys (beyond, new keys share OverflowKey). What it holds back is
// counted, and reported once per key and window as a Summary. Times are
// passed in, so the caller's clock decides.
type Limiter struct {
	burst, global, maxKeys int
	per                    time.Duration

	mu       sync.Mutex // protects the fields below
	keys     map[string]*limitWindow
	winStart time.Time // the global window
	globalN  int
}

type limitWindow struct {
	start       time.Time
	n           int // recorded in this window
	suppressed  int // held back in this window
	first, last time.Time
}

// Summary reports what was held back for one key in one window.
type Summary struct {
	Key        string
	Suppressed int
	From, To   time.Time // the first and last record held back
}

// NewLimiter lets burst records per key and global over all keys through
// per window, tracking at most maxKeys keys.
func NewLimiter(burst, global, maxKeys int, per time.Duration) *Limiter {
	return &Limiter{burst: max(burst, 1), global: max(global, 1), maxKeys: max(maxKeys, 1), per: per,
		keys: map[string]*limitWindow{}}
}

// Window is the length of one window.
func (l *Limiter) Window() time.Duration { return l.per }

// Allow reports whether a record for key may be written at now. It also
// returns the summary of key's previous window when that window ended with
// records held back, for the caller to write first.
func (l *Limiter) Allow(key string, now time.Time) (bool, *Summary) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.winStart) >= l.per || now.Before(l.winStart) {
		l.winStart, l.globalN = now, 0
	}
	w := l.keys[key]
	if w == nil && len(l.keys) >= l.maxKeys {
		l.forgetQuiet(now)
		if len(l.keys) >= l.maxKeys {
			key, w = OverflowKey, l.keys[OverflowKey]
		}
	}
	var sum *Summary
	if w != nil && now.Sub(w.start) >= l.per {
		if w.suppressed > 0 {
			sum = &Summary{Key: key, Suppressed: w.suppressed, From: w.first, To: w.last}
		}
		w = nil
	}
	if w == nil {
		w = &limitWindow{start: now}
		l.keys[key] = w
	}
	if w.n < l.burst && l.globalN < l.global {
		w.n++
		l.globalN++
		return true, sum
	}
	if w.suppressed == 0 {
		w.first = now
	}
	w.suppressed++
	w.last = now
	return false, sum
}

// forgetQuiet drops keys whose window ended with nothing held back.
func (l *Limiter) forgetQuiet(now time.Time) {
	for k, w := range l.keys {
		if now.Sub(w.start) >= l.per && w.suppressed == 0 {
			delete(l.keys, k)
		}
	}
}

// Sweep returns the summaries of windows that ended by now with records
// held back (sorted by key) and forgets every key whose window ended.
func (l *Limiter) Sweep(now time.Time) []Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Summary
	for k, w := range l.keys {
		if now.Sub(w.start) < l.per {
			continue
		}
		if w.suppressed > 0 {
			out = append(out, Summary{Key: k, Suppressed: w.suppressed, From: w.first, To: w.last})
		}
		delete(l.keys, k)
	}
	slices.SortFunc(out, func(a, b Summary) int { return strings.Compare(a.Key, b.Key) })
	return out
}
