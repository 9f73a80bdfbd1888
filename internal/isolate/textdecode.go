package isolate

import (
	"strings"
	"unicode/utf8"
)

// TextDecoder's encodings (host ops "text.label" and "text.decode"; the
// prelude's TextDecoder keeps the bytes of an unfinished sequence between
// streamed calls). The decoders follow the WHATWG Encoding standard: an
// invalid sequence becomes one U+FFFD per maximal subpart, or a TypeError
// when the decoder is fatal. Other encodings are a RangeError in the
// constructor: the CJK ones would bring tables far larger than their use.

// textLabels maps each label of a supported encoding (ASCII lower case) to
// the encoding's name.
var textLabels = func() map[string]string {
	m := map[string]string{}
	for name, labels := range map[string][]string{
		"utf-8":    {"unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8"},
		"utf-16be": {"unicodefffe", "utf-16be"},
		"utf-16le": {"csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le"},
		"windows-1252": {"ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1", "iso-ir-100",
			"iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1", "us-ascii", "windows-1252", "x-cp1252"},
	} {
		for _, l := range labels {
			m[l] = name
		}
	}
	return m
}()

// textEncoding returns the name of the encoding label names, after
// trimming ASCII whitespace and lower-casing ASCII letters.
func textEncoding(label string) (string, bool) {
	l := strings.TrimFunc(label, func(r rune) bool { return r == '\t' || r == '\n' || r == '\f' || r == '\r' || r == ' ' })
	if len(l) > 32 {
		return "", false
	}
	b := []byte(l)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	name, ok := textLabels[string(b)]
	return name, ok
}

// decodeText decodes b from the named encoding. With stream set, rest is
// how many bytes at the end start a sequence b does not finish: the caller
// passes them again in front of the next bytes; without it such bytes are
// an error. A fatal decoder fails at the first error instead of writing
// U+FFFD.
func decodeText(enc string, b []byte, fatal, stream bool) (s string, rest int, err error) {
	switch enc {
	case "utf-8":
		return decodeUTF8(b, fatal, stream)
	case "utf-16le":
		return decodeUTF16(b, false, fatal, stream)
	case "utf-16be":
		return decodeUTF16(b, true, fatal, stream)
	case "windows-1252":
		return decode1252(b), 0, nil
	}
	return "", 0, HostErrorf("RangeError", "TextDecoder: unsupported encoding %s", enc)
}

func invalidText(enc string) error {
	return &HostError{Name: "TypeError", Message: "The encoded data was not valid for encoding " + enc}
}

// decodeUTF8 is the Encoding standard's UTF-8 decoder.
func decodeUTF8(b []byte, fatal, stream bool) (string, int, error) {
	if utf8.Valid(b) {
		return string(b), 0, nil
	}
	if stream { // most often valid text cut inside its last character
		for k := 1; k <= 3 && k <= len(b); k++ {
			if c := b[len(b)-k]; c < 0x80 || c >= 0xC0 {
				if c >= 0xC0 && !utf8.FullRune(b[len(b)-k:]) && utf8.Valid(b[:len(b)-k]) {
					return string(b[:len(b)-k]), k, nil
				}
				break
			}
		}
	}
	var sb strings.Builder
	sb.Grow(len(b) + 16)
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			sb.WriteByte(c)
			i++
			continue
		}
		need, lo, hi := 0, byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c >= 0xE0 && c <= 0xEF:
			need = 2
			if c == 0xE0 {
				lo = 0xA0
			} else if c == 0xED {
				hi = 0x9F
			}
		case c >= 0xF0 && c <= 0xF4:
			need = 3
			if c == 0xF0 {
				lo = 0x90
			} else if c == 0xF4 {
				hi = 0x8F
			}
		}
		j, ok := i+1, need > 0
		for k := 0; ok && k < need; k++ {
			if j == len(b) {
				if stream {
					return sb.String(), len(b) - i, nil
				}
				ok = false
				break
			}
			if x := b[j]; x < lo || x > hi {
				ok = false
				break
			}
			lo, hi = 0x80, 0xBF
			j++
		}
		if !ok {
			// One U+FFFD for the bytes read so far; the byte that broke
			// the sequence is read again.
			if fatal {
				return "", 0, invalidText("utf-8")
			}
			sb.WriteString("\uFFFD")
			i = j
			continue
		}
		sb.Write(b[i:j])
		i = j
	}
	return sb.String(), 0, nil
}

// decodeUTF16 is the Encoding standard's UTF-16LE or (be) UTF-16BE
// decoder: an unpaired surrogate or a lone last byte is an error.
func decodeUTF16(b []byte, be, fatal, stream bool) (string, int, error) {
	enc := "utf-16le"
	if be {
		enc = "utf-16be"
	}
	unit := func(i int) rune {
		if be {
			return rune(b[i])<<8 | rune(b[i+1])
		}
		return rune(b[i+1])<<8 | rune(b[i])
	}
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/2)
	n := len(b)
	bad := func() error {
		if fatal {
			return invalidText(enc)
		}
		sb.WriteString("\uFFFD")
		return nil
	}
	i := 0
	for i+1 < n {
		u := unit(i)
		switch {
		case u < 0xD800 || u > 0xDFFF:
			sb.WriteRune(u)
			i += 2
		case u <= 0xDBFF && i+3 < n:
			if v := unit(i + 2); v >= 0xDC00 && v <= 0xDFFF {
				sb.WriteRune(0x10000 + (u-0xD800)<<10 + (v - 0xDC00))
				i += 4
				continue
			}
			if err := bad(); err != nil { // the next unit is read again
				return "", 0, err
			}
			i += 2
		case u <= 0xDBFF:
			// A lead surrogate at the end, perhaps with one more byte: the
			// next call may bring its trail; at the end it is one error.
			if stream {
				return sb.String(), n - i, nil
			}
			if err := bad(); err != nil {
				return "", 0, err
			}
			return sb.String(), 0, nil
		default:
			if err := bad(); err != nil {
				return "", 0, err
			}
			i += 2
		}
	}
	if i < n {
		if stream {
			return sb.String(), n - i, nil
		}
		if err := bad(); err != nil {
			return "", 0, err
		}
	}
	return sb.String(), 0, nil
}

// cp1252 holds the code points of windows-1252's bytes 0x80-0x9F (the
// Encoding standard's index; the bytes above are Latin-1's).
var cp1252 = [32]rune{
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
}

// decode1252 decodes windows-1252, which maps every byte.
func decode1252(b []byte) string {
	ascii := true
	for _, c := range b {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) * 2)
	for _, c := range b {
		switch {
		case c < 0x80:
			sb.WriteByte(c)
		case c < 0xA0:
			sb.WriteRune(cp1252[c-0x80])
		default:
			sb.WriteRune(rune(c))
		}
	}
	return sb.String()
}
