package isolate

import (
	"bytes"
	"compress/gzip"
	"testing"
)

// FuzzDecompress: DecompressionStream's host op answers any input with
// output under the limit or a TypeError/RangeError HostError, never a
// panic, and compress then decompress is the identity.
func FuzzDecompress(f *testing.F) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write(bytes.Repeat([]byte("a"), 10000))
	_ = w.Close()
	for _, seed := range [][]byte{nil, []byte("not compressed"), gz.Bytes(), {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, {0x78, 0x9c}} {
		f.Add(seed, uint8(0))
	}
	formats := []string{"gzip", "deflate", "deflate-raw", "brotli"}
	f.Fuzz(func(t *testing.T, in []byte, which uint8) {
		format := formats[int(which)%len(formats)]
		const max = 4096
		out, err := zcall("decompress", format, in, max)
		if err != nil {
			if _, ok := err.(*HostError); !ok {
				t.Fatalf("error %T %v is not a HostError", err, err)
			}
		} else if len(out) > max {
			t.Fatalf("%d bytes out, over %d", len(out), max)
		}
		if format == "brotli" {
			return
		}
		packed, err := zcall("compress", format, in, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		back, err := zcall("decompress", format, packed, 1<<20)
		if err != nil || !bytes.Equal(back, in) {
			t.Fatalf("round trip: %v, %d bytes back of %d", err, len(back), len(in))
		}
	})
}
