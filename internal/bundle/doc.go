// Package bundle owns agent bundles: the unit an agent is deployed from. A
// bundle is a set of files (a directory, or a tar.gz of one) with a manifest,
// agent.json, at its root. The package parses and validates the manifest
// (Parse), loads bundles from a directory, an fs.FS, a tar.gz stream or a
// map (LoadDir, LoadFS, LoadTarGz, FromFiles), enforces the size, count and
// path-safety limits, writes a deterministic tar.gz (Bundle.TarGz) and
// computes a content digest that names a bundle independently of how it was
// packed.
//
// It does not run bundles (internal/isolate and the session layer do), store
// them (internal/store), or decide what their egress, tools and secrets are
// allowed to reach at run time (internal/policy, internal/egress,
// internal/secrets): the manifest only declares what an agent asks for.
//
// # Digest
//
// Bundle.Digest is "sha256:" followed by the lowercase hex SHA-256 of this
// canonical encoding, where u64 is an 8-byte big-endian unsigned integer:
//
//	"agentcloud-bundle-v1\n" u64(number of files)
//	for each file, in byte order of its path:
//	    u64(len(path)) path u64(len(content)) content
//
// Paths are slash-separated and relative to the bundle root, and agent.json
// is one of the files. File modes, times, owners and archive order do not
// affect the digest.
package bundle

import "errors"

// ManifestName is the manifest's path at the root of every bundle.
const ManifestName = "agent.json"

// Bundle limits.
const (
	MaxTotalSize    = 32 << 20 // sum of all file sizes, bytes
	MaxFiles        = 2000     // regular files, agent.json included
	MaxManifestSize = 1 << 20  // agent.json, bytes
	MaxPathLen      = 1024     // one file path, bytes
)

// Errors a bundle can be rejected with; test with errors.Is. A manifest that
// does not validate is reported as a *ManifestError, which also matches
// ErrInvalidManifest.
var (
	ErrInvalidManifest = errors.New("invalid manifest")
	ErrNoManifest      = errors.New("no " + ManifestName + " at the bundle root")
	ErrTooLarge        = errors.New("bundle too large")
	ErrTooManyFiles    = errors.New("too many files")
	ErrUnsafePath      = errors.New("unsafe path")
	ErrNotRegular      = errors.New("not a regular file")
	ErrDuplicatePath   = errors.New("duplicate path")
	ErrInvalidArchive  = errors.New("invalid archive")
)
