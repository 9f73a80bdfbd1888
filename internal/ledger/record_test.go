package ledger

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	entries := [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), MaxEntryBytes), []byte("{}")}
	data := encodeRecord(511, entries)
	if len(data) != recordSize(entries) {
		t.Fatalf("size %d, want %d", len(data), recordSize(entries))
	}
	r, err := decodeRecord(data)
	if err != nil || r.first != 511 || len(r.entries) != 3 || !bytes.Equal(r.entries[1], entries[1]) {
		t.Fatalf("decode: %+v %v", r.first, err)
	}
	b, err := DecodeBundle(encodeBundle(entries))
	if err != nil || len(b) != 3 || !bytes.Equal(b[2], entries[2]) {
		t.Fatalf("bundle: %v", err)
	}
}

var badRecords = map[string][]byte{
	"empty":        nil,
	"short header": []byte("LGR"),
	"wrong magic":  append([]byte("XGR\x01"), make([]byte, 10)...),
	"no entries":   encodeRecordRaw(0, 0, nil),
	"257 entries":  encodeRecordRaw(0, 257, nil),
	"truncated":    encodeRecordRaw(0, 2, []byte("\x00\x01a")),
	"empty entry":  encodeRecordRaw(0, 1, []byte("\x00\x00")),
	"trailing":     encodeRecordRaw(0, 1, []byte("\x00\x01ab")),
	"overflow":     encodeRecordRaw(1<<63, 1, []byte("\x00\x01a")),
	"long length":  encodeRecordRaw(0, 1, []byte("\xff\xffa")),
}

func encodeRecordRaw(first uint64, count uint16, body []byte) []byte {
	out := append([]byte{}, recordMagic[:]...)
	out = binary.BigEndian.AppendUint64(out, first)
	out = binary.BigEndian.AppendUint16(out, count)
	return append(out, body...)
}

func TestDecodeRecordRefusesClass(t *testing.T) {
	for name, data := range badRecords {
		if _, err := decodeRecord(data); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzDecodeRecord: the batch record decoder never panics and what it
// accepts encodes back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(0, [][]byte{[]byte("x")}))
	f.Add(encodeRecord(255, [][]byte{[]byte("x"), []byte(strings.Repeat("y", 300))}))
	for _, b := range badRecords {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRecord(data)
		if err != nil {
			return
		}
		if again := encodeRecord(r.first, r.entries); !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzDecodeBundle: the entry bundle decoder never panics and round-trips.
func FuzzDecodeBundle(f *testing.F) {
	f.Add(encodeBundle([][]byte{[]byte("x"), {}}))
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBundle(data)
		if err != nil {
			return
		}
		if again := encodeBundle(b); !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs")
		}
	})
}
