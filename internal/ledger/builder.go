package ledger

// builder grows the tree one leaf at a time as rows of pending hashes, one
// row per tile level: rows[L] holds the hashes at tree level 8L that do
// not yet fill a tile (fewer than 256). When a row fills, it is a full
// tile: the builder hands it to emit, starts a new row, and carries the
// tile's root (a perfect subtree of 256^(L+1) leaves) up to rows[L+1].
//
// Rows are append-only until full, then replaced by a fresh slice, so a
// reader holding a copy of the row headers sees a stable prefix while the
// builder goes on (see treeState).
type builder struct {
	size uint64
	rows [][]Hash
}

// fullTile is a tile that has just filled.
type fullTile struct {
	level  int
	n      uint64
	hashes []Hash
}

// add appends a leaf and returns the tiles it filled, lowest level first.
func (b *builder) add(leaf Hash) []fullTile {
	var out []fullTile
	b.size++
	h := leaf
	for level := 0; ; level++ {
		if level == len(b.rows) {
			b.rows = append(b.rows, make([]Hash, 0, TileWidth))
		}
		b.rows[level] = append(b.rows[level], h)
		if len(b.rows[level]) < TileWidth {
			return out
		}
		full := b.rows[level]
		n := b.size>>(TileHeight*(level+1)) - 1
		out = append(out, fullTile{level: level, n: n, hashes: full})
		b.rows[level] = make([]Hash, 0, TileWidth)
		h = perfectRoot(full)
	}
}

// root is the RFC 6962 tree hash of the leaves added so far.
func (b *builder) root() Hash { return rowsRoot(b.rows) }

// snapshotRows copies the row headers (not the hashes: rows only grow).
func (b *builder) snapshotRows() [][]Hash {
	out := make([][]Hash, len(b.rows))
	copy(out, b.rows)
	return out
}

// rowsRoot computes the tree hash from rows: the tree of n leaves is the
// perfect subtrees given by n's binary digits, largest (leftmost) first,
// folded from the right (RFC 6962 MTH). Each subtree is a power-of-two run
// of a row's hashes.
func rowsRoot(rows [][]Hash) Hash {
	var subtrees []Hash
	for level := len(rows) - 1; level >= 0; level-- {
		row := rows[level]
		off := 0
		for bit := TileHeight - 1; bit >= 0; bit-- {
			if w := 1 << bit; len(row)&w != 0 {
				subtrees = append(subtrees, perfectRoot(row[off:off+w]))
				off += w
			}
		}
	}
	if len(subtrees) == 0 {
		return emptyRoot
	}
	h := subtrees[len(subtrees)-1]
	for i := len(subtrees) - 2; i >= 0; i-- {
		h = nodeHash(subtrees[i], h)
	}
	return h
}

// perfectRoot is the hash of a perfect subtree whose leaves (at some tree
// level) are hashes; len(hashes) is a power of two.
func perfectRoot(hashes []Hash) Hash {
	if len(hashes) == 1 {
		return hashes[0]
	}
	half := len(hashes) / 2
	return nodeHash(perfectRoot(hashes[:half]), perfectRoot(hashes[half:]))
}

// tileBytes concatenates hashes as tile data.
func tileBytes(hashes []Hash) []byte {
	out := make([]byte, 0, len(hashes)*HashSize)
	for _, h := range hashes {
		out = append(out, h[:]...)
	}
	return out
}

// tileHashes splits tile data into hashes; ok is false when the length is
// not a whole number of hashes.
func tileHashes(data []byte) ([]Hash, bool) {
	if len(data)%HashSize != 0 {
		return nil, false
	}
	out := make([]Hash, len(data)/HashSize)
	for i := range out {
		copy(out[i][:], data[i*HashSize:])
	}
	return out, true
}
