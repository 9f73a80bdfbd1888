package ledger

import (
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// memHashes is tlog's reference storage: every stored hash in a slice.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(m)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = m[x]
	}
	return out, nil
}

// TestBuilderMatchesTlog grows a tree with the builder and with tlog's
// reference code side by side: every root and every full tile must agree.
func TestBuilderMatchesTlog(t *testing.T) {
	var b builder
	var ref memHashes
	check := func(n int64) {
		want, err := tlog.TreeHash(n, ref)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			want = tlog.Hash(emptyRoot)
		}
		if got := b.root(); got != Hash(want) {
			t.Fatalf("root of %d leaves: got %s want %s", n, got, Hash(want))
		}
	}
	check(0)
	const n = 3*TileWidth*TileWidth + 517 // three level-1 tiles and change
	for i := int64(0); i < n; i++ {
		leaf := fmt.Appendf(nil, "leaf %d", i)
		hs, err := tlog.StoredHashes(i, leaf, ref)
		if err != nil {
			t.Fatal(err)
		}
		ref = append(ref, hs...)
		for _, ft := range b.add(LeafHash(leaf)) {
			tt := tlog.Tile{H: TileHeight, L: ft.level, N: int64(ft.n), W: TileWidth}
			want, err := tlog.ReadTileData(tt, ref)
			if err != nil {
				t.Fatal(err)
			}
			if got := tileBytes(ft.hashes); string(got) != string(want) {
				t.Fatalf("tile %s differs", tt.Path())
			}
		}
		if i < 2*TileWidth+3 || i%997 == 0 || i == n-1 {
			check(i + 1)
		}
	}
}

var tilePathCases = []struct {
	path string
	want TilePath
	ok   bool
}{
	{"tile/0/000", TilePath{Level: 0, N: 0, Width: 256}, true},
	{"tile/0/x001/234.p/17", TilePath{Level: 0, N: 1234, Width: 17}, true},
	{"tile/3/x001/x234/067", TilePath{Level: 3, N: 1234067, Width: 256}, true},
	{"tile/entries/000.p/1", TilePath{Entries: true, Width: 1}, true},
	{"tile/entries/x018/x446/x744/x073/x709/x551/615", TilePath{Entries: true, N: 1<<64 - 1, Width: 256}, true},
	{"tile/entries/x018/x446/x744/x073/x709/x551/616", TilePath{}, false}, // 2^64
	{"tile/entries/x999/x999/x999/x999/x999/x999/999", TilePath{}, false},
	{"tile/0/x000/001", TilePath{}, false}, // leading zero group
	{"tile/0/001/234", TilePath{}, false},  // missing x
	{"tile/0/x001/x234", TilePath{}, false},
	{"tile/0/1", TilePath{}, false},
	{"tile/0/0001", TilePath{}, false},
	{"tile/00/000", TilePath{}, false},
	{"tile/8/000", TilePath{}, false}, // level beyond uint64 trees
	{"tile/0/000.p/0", TilePath{}, false},
	{"tile/0/000.p/256", TilePath{}, false},
	{"tile/0/000.p/017", TilePath{}, false},
	{"tile/0/000.p/", TilePath{}, false},
	{"tile/0/000.p/1/2", TilePath{}, false},
	{"tile/-1/000", TilePath{}, false},
	{"tile/data/000", TilePath{}, false},
	{"tile/entries", TilePath{}, false},
	{"tile/", TilePath{}, false},
	{"", TilePath{}, false},
	{"/tile/0/000", TilePath{}, false},
	{"tile/0/000/", TilePath{}, false},
	{"tile/0/+12", TilePath{}, false},
	{"tile/0/ 12", TilePath{}, false},
	{"tile/0/x01/234", TilePath{}, false},
	{"tile/0/x001/234.p/17x", TilePath{}, false},
	{"tile/0/" + string(make([]byte, 200)), TilePath{}, false},
}

func TestParseTilePath(t *testing.T) {
	for _, c := range tilePathCases {
		got, err := ParseTilePath(c.path)
		if (err == nil) != c.ok {
			t.Errorf("ParseTilePath(%q): err %v, want ok=%v", c.path, err, c.ok)
			continue
		}
		if !c.ok {
			continue
		}
		if got != c.want {
			t.Errorf("ParseTilePath(%q) = %+v, want %+v", c.path, got, c.want)
		}
		if s := got.String(); s != c.path {
			t.Errorf("String() = %q, want %q", s, c.path)
		}
	}
}

// FuzzParseTilePath: the parser never panics, accepts only what String
// writes back identically, and agrees with tlog's parser on hash tiles.
func FuzzParseTilePath(f *testing.F) {
	for _, c := range tilePathCases {
		f.Add(c.path)
	}
	f.Fuzz(func(t *testing.T, path string) {
		tp, err := ParseTilePath(path)
		if err != nil {
			return
		}
		if tp.String() != path {
			t.Fatalf("ParseTilePath(%q) = %+v, which writes as %q", path, tp, tp.String())
		}
		if tp.Width < 1 || tp.Width > TileWidth || tp.Level < 0 || tp.Level > maxTileLevel {
			t.Fatalf("ParseTilePath(%q) = %+v out of range", path, tp)
		}
		if !tp.Entries && tp.N < 1<<62 {
			ref, err := tlog.ParseTilePath("tile/8/" + path[len("tile/"):])
			if err != nil || ref.L != tp.Level || ref.N != int64(tp.N) || ref.W != tp.Width {
				t.Fatalf("tlog parses %q as %+v, %v; we as %+v", path, ref, err, tp)
			}
		}
	})
}
