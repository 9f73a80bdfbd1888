package isolate

import (
	"fmt"
	"strings"
	"unicode/utf8"

	whatwg "github.com/nlnwa/whatwg-url/url"
)

// maxURLBytes bounds what one call of the host's URL parser takes (an
// input with its base, an href with a setter's value), in UTF-8 bytes,
// and the href of every URL it makes: more is a TypeError in the guest. A
// URL with a 1 MiB query parses.
const maxURLBytes = 2 << 20

// maxURLHeadBytes bounds the head (urlHead: what comes before the first ?
// or #, unless the path is opaque) of an input, a base and every href the
// parser makes, and a setter's value (but search's and hash's): the
// server takes request lines up to its 64 KiB header limit, and an
// agent's new URL(request.url) must parse what it was sent. Heads parse
// in linear time (a 64 KiB path of 32,768 segments in about 6 ms), but
// for their credentials (maxURLCredsBytes).
const maxURLHeadBytes = 64 << 10

// maxURLCredsBytes bounds what comes before the last @ of a head (the
// credentials, when there are any): the parser's time grows with the
// square of it (8 KiB of @ takes about 0.1 s, 16 KiB 0.35 s, 64 KiB of
// credentials seconds). Checking hrefs too keeps every URL's href
// parseable again, though percent-encoding lengthens it.
const maxURLCredsBytes = 8 << 10

// urlParser is the WHATWG URL parser (github.com/nlnwa/whatwg-url) with
// the standard's defaults: validation errors are not failures.
var urlParser = whatwg.NewParser()

// urlRecord is the guest's view of a parsed URL: href, origin, protocol,
// username, password, hostname, port, pathname, search and hash, joined
// by "\n". A serialized URL is printable ASCII (the parser
// percent-encodes everything else and hosts go through IDNA), so the
// separator cannot occur in a part. It is a TypeError when the href is
// over the limits (maxURLBytes, maxURLHeadBytes) or does not parse again
// (urlReparses).
func urlRecord(u *whatwg.Url) (string, error) {
	href := u.Href(false)
	if head, creds := urlHead(href); len(href) > maxURLBytes || head > maxURLHeadBytes || creds > maxURLCredsBytes {
		return "", HostErrorf("TypeError", "Invalid URL: it would be %d bytes, %d before its query, %d before its last @, more than the %d, %d and %d the runtime parses",
			len(href), head, creds, maxURLBytes, maxURLHeadBytes, maxURLCredsBytes)
	}
	if !urlReparses(u, href) {
		return "", urlInvalid(href)
	}
	return strings.Join([]string{href, urlOrigin(u), u.Protocol(), u.Username(), u.Password(),
		u.Hostname(), u.Port(), u.Pathname(), u.Search(), u.Hash()}, "\n"), nil
}

// urlReparses reports whether href, u's, parses again. Only a host with a
// Punycode label is checked (the others always do): the library's
// Punycode encoder takes labels whose encoding overflows, which the
// standard's domain to ASCII refuses and which do not decode again.
func urlReparses(u *whatwg.Url, href string) bool {
	if !strings.Contains(u.Hostname(), "xn--") {
		return true
	}
	_, err := urlParser.Parse(href)
	return err == nil
}

// urlOrigin is the ASCII serialization of u's origin: scheme://host[:port]
// for the special schemes with hosts, the origin of the URL in the path
// of a blob: URL when that is http(s), and "null" (an opaque origin)
// otherwise. A blob: path over the head limits is not parsed
// (its opaque path escaped the limit): it could not be a URL of its own.
func urlOrigin(u *whatwg.Url) string {
	switch u.Scheme() {
	case "http", "https", "ws", "wss", "ftp":
		return u.Protocol() + "//" + u.Host()
	case "blob":
		path := u.Pathname()
		if head, creds := urlHead(path); head > maxURLHeadBytes || creds > maxURLCredsBytes {
			break
		}
		if p, err := urlParser.Parse(path); err == nil && (p.Scheme() == "http" || p.Scheme() == "https") {
			return urlOrigin(p)
		}
	}
	return "null"
}

// urlArg is a guest string as the standard's USVString: a lone surrogate
// (which the guest hands over as its 3-byte WTF-8 form) and any other
// invalid byte become U+FFFD. It is a TypeError over maxURLBytes, or when
// head or creds (urlHead's) are over maxURLHeadBytes or maxURLCredsBytes.
func urlArg(what, s string, head, creds int) (string, error) {
	if len(s) > maxURLBytes {
		return "", HostErrorf("TypeError", "Invalid URL: the %s is %d bytes, more than the %d the runtime parses", what, len(s), maxURLBytes)
	}
	if head > maxURLHeadBytes {
		return "", HostErrorf("TypeError", "Invalid URL: the %s has %d bytes before its query, more than the %d the runtime parses", what, head, maxURLHeadBytes)
	}
	if creds > maxURLCredsBytes {
		return "", HostErrorf("TypeError", "Invalid URL: the %s has %d bytes before its last @ (its credentials), more than the %d the runtime parses", what, creds, maxURLCredsBytes)
	}
	if utf8.ValidString(s) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			// A surrogate in WTF-8: 0xED 0xA0-0xBF 0x80-0xBF.
			if i+2 < len(s) && s[i] == 0xED && s[i+1] >= 0xA0 && s[i+1] <= 0xBF && s[i+2] >= 0x80 && s[i+2] <= 0xBF {
				n = 3
			}
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String(), nil
}

// urlHead is the length of s's head as maxURLHeadBytes counts it: up to
// its first ? or #, or 0 for an absolute URL with an opaque path (a scheme
// other than the special ones, not followed by /); and creds, where the
// last @ of that head is (0 without one), as maxURLCredsBytes counts it.
// Tabs and newlines, which the parser removes, are removed first.
func urlHead(s string) (head, creds int) {
	s = strings.TrimLeft(s, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	end := strings.IndexAny(s, "?#")
	if end < 0 {
		end = len(s)
	}
	if strings.ContainsAny(s[:end], "\t\n\r") {
		s = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(s)
		if end = strings.IndexAny(s, "?#"); end < 0 {
			end = len(s)
		}
	}
	if c := strings.IndexByte(s[:end], ':'); c > 0 && urlScheme(s[:c]) && !(c+1 < len(s) && s[c+1] == '/') {
		switch strings.ToLower(s[:c]) {
		case "http", "https", "ws", "wss", "ftp", "file":
		default:
			return 0, 0
		}
	}
	return end, max(strings.LastIndexByte(s[:end], '@'), 0)
}

// urlScheme reports whether s is a scheme: an ASCII letter, then ASCII
// alphanumerics, +, - and . .
func urlScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if !(c >= 'a' && c <= 'z' || i > 0 && (s[i] >= '0' && s[i] <= '9' || s[i] == '+' || s[i] == '-' || s[i] == '.')) {
			return false
		}
	}
	return s != ""
}

// urlInvalid is the guest's error for input the parser refuses.
func urlInvalid(input string) error {
	if len(input) > 200 {
		input = input[:200] + "..."
	}
	return HostErrorf("TypeError", "Invalid URL: %q", input)
}

// urlParse is the host op "url.parse": new URL(input, base) with base
// absent when hasBase is false. It returns urlRecord or a TypeError.
func urlParse(input, base string, hasBase bool) (res string, err error) {
	defer urlRecover(&err)
	if hasBase && len(input)+len(base) > maxURLBytes {
		return "", HostErrorf("TypeError", "Invalid URL: the input and its base are %d bytes, more than the %d the runtime parses", len(input)+len(base), maxURLBytes)
	}
	head, creds := urlHead(input)
	if input, err = urlArg("input", input, head, creds); err != nil {
		return "", err
	}
	var b *whatwg.Url
	if hasBase {
		head, creds := urlHead(base)
		if base, err = urlArg("base", base, head, creds); err != nil {
			return "", err
		}
		if b, err = urlParser.Parse(base); err != nil {
			return "", urlInvalid(base)
		}
	}
	u, err := urlParser.BasicParser(input, b, nil, whatwg.NoState)
	if err != nil {
		return "", urlInvalid(input)
	}
	return urlRecord(u)
}

// urlSet is the host op "url.set": the URL href with the setter name run
// with value, as the standard's API setters do (state overrides: a value
// the component cannot take leaves the URL as it was). It returns
// urlRecord; it throws for an href that does not parse and for a value or
// a result over the limits.
func urlSet(href, name, value string) (res string, err error) {
	defer urlRecover(&err)
	if name == "href" {
		return urlParse(value, "", false)
	}
	// Setters take their value in linear time. A new search or hash
	// (which may be as long as a URL) must leave a URL within the limit:
	// refused before any parse, not after two.
	head := len(value)
	if name == "search" || name == "hash" {
		head = 0
		keep := href
		if i := strings.IndexAny(href, "?#"); i >= 0 && name == "search" {
			keep = href[:i]
			if j := strings.IndexByte(href[i:], '#'); j >= 0 {
				keep += href[i+j:]
			}
		} else if i := strings.IndexByte(href, '#'); i >= 0 && name == "hash" {
			keep = href[:i]
		}
		if n := len(keep) + len(value); n > maxURLBytes {
			return "", HostErrorf("TypeError", "Invalid URL: with the new %s it would be %d bytes, more than the %d the runtime parses", name, n, maxURLBytes)
		}
	}
	if value, err = urlArg(name, value, head, 0); err != nil {
		return "", err
	}
	// The href comes from the guest's URL object, where code can replace
	// it: it meets the limits like any input (every href urlRecord
	// answered does).
	hrefHead, hrefCreds := urlHead(href)
	if href, err = urlArg("URL", href, hrefHead, hrefCreds); err != nil {
		return "", err
	}
	u, err := urlParser.Parse(href)
	if err != nil {
		return "", urlInvalid(href)
	}
	switch name {
	case "protocol":
		u.SetProtocol(value)
	case "username":
		u.SetUsername(value)
	case "password":
		u.SetPassword(value)
	case "host":
		u.SetHost(value)
	case "hostname":
		u.SetHostname(value)
	case "port":
		u.SetPort(value)
	case "pathname":
		u.SetPathname(value)
	case "search":
		u.SetSearch(value)
	case "hash":
		u.SetHash(value)
	default:
		return "", HostErrorf("TypeError", "URL has no setter %q", name)
	}
	if (name == "host" || name == "hostname") && !urlReparses(u, u.Href(false)) {
		u, _ = urlParser.Parse(href) // a host the standard refuses: no change
	}
	return urlRecord(u)
}

// urlRecover turns a panic of the parser into the guest's TypeError, so
// no input reaches the isolate's caller as a Go panic.
func urlRecover(err *error) {
	if r := recover(); r != nil {
		*err = HostErrorf("TypeError", "Invalid URL: the parser failed: %v", fmt.Sprint(r))
	}
}
