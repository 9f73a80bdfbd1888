package isolate

import (
	"fmt"
	"strings"
	"unicode/utf8"

	whatwg "github.com/nlnwa/whatwg-url/url"
)

// maxURLBytes bounds each string the host's URL parser takes (an input, a
// base, a setter's value), in UTF-8 bytes: a longer one is a TypeError in
// the guest before it is parsed. A URL with a 1 MiB query parses; the
// parser's time and memory grow with the input, and a URL this long is
// nothing a server or browser would accept.
const maxURLBytes = 2 << 20

// urlParser is the WHATWG URL parser (github.com/nlnwa/whatwg-url) with
// the standard's defaults: validation errors are not failures.
var urlParser = whatwg.NewParser()

// urlRecord is the guest's view of a parsed URL: href, origin, protocol,
// username, password, hostname, port, pathname, search and hash, joined
// by "\n". A serialized URL is printable ASCII (the parser
// percent-encodes everything else and hosts go through IDNA), so the
// separator cannot occur in a part.
func urlRecord(u *whatwg.Url) string {
	return strings.Join([]string{u.Href(false), urlOrigin(u), u.Protocol(), u.Username(), u.Password(),
		u.Hostname(), u.Port(), u.Pathname(), u.Search(), u.Hash()}, "\n")
}

// urlOrigin is the ASCII serialization of u's origin: scheme://host[:port]
// for the special schemes with hosts, the origin of the URL in the path
// of a blob: URL when that is http(s), and "null" (an opaque origin)
// otherwise.
func urlOrigin(u *whatwg.Url) string {
	switch u.Scheme() {
	case "http", "https", "ws", "wss", "ftp":
		return u.Protocol() + "//" + u.Host()
	case "blob":
		if p, err := urlParser.Parse(u.Pathname()); err == nil && (p.Scheme() == "http" || p.Scheme() == "https") {
			return urlOrigin(p)
		}
	}
	return "null"
}

// urlArg is a guest string as the standard's USVString: a lone surrogate
// (which the guest hands over as its 3-byte WTF-8 form) and any other
// invalid byte become U+FFFD. It is a TypeError over maxURLBytes.
func urlArg(what, s string) (string, error) {
	if len(s) > maxURLBytes {
		return "", HostErrorf("TypeError", "Invalid URL: the %s is %d bytes, more than the %d the runtime parses", what, len(s), maxURLBytes)
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
	if input, err = urlArg("input", input); err != nil {
		return "", err
	}
	var b *whatwg.Url
	if hasBase {
		if base, err = urlArg("base", base); err != nil {
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
	return urlRecord(u), nil
}

// urlSet is the host op "url.set": the URL href with the setter name run
// with value, as the standard's API setters do (state overrides: a value
// the component cannot take leaves the URL as it was). It returns
// urlRecord; only "href" throws, for a value that does not parse.
func urlSet(href, name, value string) (res string, err error) {
	defer urlRecover(&err)
	if value, err = urlArg(name, value); err != nil {
		return "", err
	}
	if name == "href" {
		return urlParse(value, "", false)
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
	return urlRecord(u), nil
}

// urlRecover turns a panic of the parser into the guest's TypeError, so
// no input reaches the isolate's caller as a Go panic.
func urlRecover(err *error) {
	if r := recover(); r != nil {
		*err = HostErrorf("TypeError", "Invalid URL: the parser failed: %v", fmt.Sprint(r))
	}
}
