package ledger

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// TileHeight is the height of every tile (C2SP tlog-tiles): a full tile
// holds 2^8 = 256 hashes, a full entry bundle 256 entries.
const (
	TileHeight = 8
	TileWidth  = 1 << TileHeight
)

// maxTileLevel is the highest hash tile level: 256^8 leaves overflow uint64.
const maxTileLevel = 7

// TilePath is a C2SP tlog-tiles resource: the hash tile at Level, or the
// entry bundle (Entries), number N, of Width hashes or entries (TileWidth:
// full; less: a partial tile, ".p/W").
type TilePath struct {
	Entries bool
	Level   int
	N       uint64
	Width   int
}

// String is the path, e.g. tile/0/x001/234.p/17 or tile/entries/000.
func (t TilePath) String() string {
	var b strings.Builder
	b.WriteString("tile/")
	if t.Entries {
		b.WriteString("entries")
	} else {
		b.WriteString(strconv.Itoa(t.Level))
	}
	// N in three-digit groups, all but the last prefixed with x.
	var groups []string
	n := t.N
	for {
		groups = append(groups, fmt.Sprintf("%03d", n%1000))
		n /= 1000
		if n == 0 {
			break
		}
	}
	for i := len(groups) - 1; i >= 0; i-- {
		b.WriteByte('/')
		if i > 0 {
			b.WriteByte('x')
		}
		b.WriteString(groups[i])
	}
	if t.Width != TileWidth {
		b.WriteString(".p/")
		b.WriteString(strconv.Itoa(t.Width))
	}
	return b.String()
}

// maxTilePath bounds the length of a tile path (the longest valid one, a
// uint64 N in seven groups with a partial width, is about 50 bytes).
const maxTilePath = 96

// ParseTilePath parses a tile path as String writes it, and nothing else:
// no leading zeros in the level or width, exactly three digits per group,
// an x on every group but the last, no group of leading zeros, N within
// uint64, level at most 7, width 1 to 255 for a partial tile. The error
// is a 400 problem naming the path.
func ParseTilePath(path string) (TilePath, error) {
	bad := func(why string) (TilePath, error) {
		return TilePath{}, api.FieldErrorf(api.KindBadRequest, "path",
			"tile path %q %s; want tile/<level>/<N> or tile/entries/<N>, N in 3-digit groups (x001/234), optionally .p/<width>", clip(path), why)
	}
	if len(path) > maxTilePath {
		return bad(fmt.Sprintf("is %d bytes long", len(path)))
	}
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok {
		return bad("does not start with tile/")
	}
	var t TilePath
	first, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("has no tile number")
	}
	if first == "entries" {
		t.Entries = true
	} else {
		l, ok := smallDecimal(first, maxTileLevel)
		if !ok {
			return bad(fmt.Sprintf("has level %q (want 0 to %d)", clip(first), maxTileLevel))
		}
		t.Level = l
	}
	t.Width = TileWidth
	if num, w, ok := strings.Cut(rest, ".p/"); ok {
		width, ok := smallDecimal(w, TileWidth-1)
		if !ok || width == 0 {
			return bad(fmt.Sprintf("has width %q (want 1 to %d)", clip(w), TileWidth-1))
		}
		t.Width, rest = width, num
	}
	groups := strings.Split(rest, "/")
	if len(groups) > 7 { // uint64 has at most 20 digits
		return bad("has too many number groups")
	}
	var n uint64
	for i, g := range groups {
		last := i == len(groups)-1
		if !last {
			var ok bool
			if g, ok = strings.CutPrefix(g, "x"); !ok {
				return bad("has a number group without its x prefix")
			}
		}
		if len(g) != 3 || !digits(g) {
			return bad(fmt.Sprintf("has number group %q (want three digits)", clip(g)))
		}
		if i == 0 && len(groups) > 1 && g == "000" {
			return bad("has a leading group of zeros")
		}
		v, _ := strconv.ParseUint(g, 10, 64)
		if n > (^uint64(0)-v)/1000 {
			return bad("has a tile number beyond 2^64")
		}
		n = n*1000 + v
	}
	t.N = n
	return t, nil
}

// smallDecimal parses a decimal without leading zeros up to limit.
func smallDecimal(s string, limit int) (int, bool) {
	if s == "" || len(s) > 3 || !digits(s) || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	v, _ := strconv.Atoi(s)
	return v, v <= limit
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
