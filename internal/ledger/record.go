package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxEntryBytes is the largest entry: a C2SP entry bundle prefixes each
// entry with a 16-bit length.
const MaxEntryBytes = 1<<16 - 1

// maxRecordBytes bounds one batch record, one store write; NATS refuses
// messages over its payload limit (1 MiB by default).
const maxRecordBytes = 960 << 10

// recordMagic starts every batch record (version 1).
var recordMagic = [4]byte{'L', 'G', 'R', 1}

// recordHeader is magic, first index (8 bytes), entry count (2 bytes).
const recordHeader = 4 + 8 + 2

// errRecord marks a malformed batch record.
var errRecord = errors.New("malformed ledger record")

// record is one group commit as stored in the log: entries first,
// first+1, ... in order.
type record struct {
	first   uint64
	entries [][]byte
}

// encodeRecord lays out a batch record: magic, first index, count, then
// each entry as a 16-bit big-endian length and its bytes.
func encodeRecord(first uint64, entries [][]byte) []byte {
	n := recordHeader
	for _, e := range entries {
		n += 2 + len(e)
	}
	out := make([]byte, 0, n)
	out = append(out, recordMagic[:]...)
	out = binary.BigEndian.AppendUint64(out, first)
	out = binary.BigEndian.AppendUint16(out, uint16(len(entries)))
	for _, e := range entries {
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
	}
	return out
}

// recordSize is the encoded size of entries.
func recordSize(entries [][]byte) int {
	n := recordHeader
	for _, e := range entries {
		n += 2 + len(e)
	}
	return n
}

// decodeRecord parses a batch record strictly: the magic, 1 to 256 non-empty
// entries, no index overflow, nothing left over. Entries alias data.
func decodeRecord(data []byte) (record, error) {
	if len(data) < recordHeader || [4]byte(data[:4]) != recordMagic {
		return record{}, fmt.Errorf("%w: bad header", errRecord)
	}
	r := record{first: binary.BigEndian.Uint64(data[4:12])}
	count := int(binary.BigEndian.Uint16(data[12:14]))
	if count == 0 || count > TileWidth {
		return record{}, fmt.Errorf("%w: %d entries (want 1 to %d)", errRecord, count, TileWidth)
	}
	if r.first+uint64(count) < r.first || r.first+uint64(count) > 1<<63 {
		return record{}, fmt.Errorf("%w: index %d overflows", errRecord, r.first)
	}
	rest := data[recordHeader:]
	r.entries = make([][]byte, 0, count)
	for i := range count {
		if len(rest) < 2 {
			return record{}, fmt.Errorf("%w: entry %d truncated", errRecord, i)
		}
		n := int(binary.BigEndian.Uint16(rest))
		if n == 0 || len(rest) < 2+n {
			return record{}, fmt.Errorf("%w: entry %d of %d bytes truncated", errRecord, i, n)
		}
		r.entries = append(r.entries, rest[2:2+n:2+n])
		rest = rest[2+n:]
	}
	if len(rest) != 0 {
		return record{}, fmt.Errorf("%w: %d bytes after the last entry", errRecord, len(rest))
	}
	return r, nil
}

// end is the index after the record's last entry.
func (r record) end() uint64 { return r.first + uint64(len(r.entries)) }

// encodeBundle lays out a C2SP entry bundle: each entry as a 16-bit
// big-endian length and its bytes.
func encodeBundle(entries [][]byte) []byte {
	n := 0
	for _, e := range entries {
		n += 2 + len(e)
	}
	out := make([]byte, 0, n)
	for _, e := range entries {
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
	}
	return out
}

// DecodeBundle splits a C2SP entry bundle into its entries (for clients
// and tests; entries alias data).
func DecodeBundle(data []byte) ([][]byte, error) {
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, fmt.Errorf("entry bundle: entry %d truncated", len(out))
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, fmt.Errorf("entry bundle: entry %d of %d bytes truncated", len(out), n)
		}
		out = append(out, data[2:2+n:2+n])
		data = data[2+n:]
		if len(out) > TileWidth {
			return nil, fmt.Errorf("entry bundle: more than %d entries", TileWidth)
		}
	}
	return out, nil
}
