package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// Sandbox ids. A sandbox lives on the node that made it, so in a cluster
// its id names that node: sb-TAG-HEX, TAG being the node's name (NodeTag),
// HEX 16 random hex digits. Outside a cluster an id is sb-HEX. The API of
// any member routes a call for a sandbox to the member its tag names.

// idRandLen is the length of an id's random part in hex digits.
const idRandLen = 16

// maxTagLen keeps sb-TAG-HEX within the sandbox id limit (64).
const maxTagLen = 64 - len("sb-") - 1 - idRandLen

// NodeTag is what sandbox ids made on node carry: the name itself when it
// fits, else its first 36 characters and 8 hex digits of its hash.
func NodeTag(node string) string {
	if len(node) <= maxTagLen {
		return node
	}
	h := fnv.New32a()
	h.Write([]byte(node))
	return fmt.Sprintf("%s%08x", node[:maxTagLen-8], h.Sum32())
}

// newID returns a fresh id carrying tag ("" outside a cluster).
func newID(tag string) string {
	var b [idRandLen / 2]byte
	_, _ = rand.Read(b[:])
	if tag == "" {
		return "sb-" + hex.EncodeToString(b[:])
	}
	return "sb-" + tag + "-" + hex.EncodeToString(b[:])
}

// TagOf returns the node tag an id carries; ok is false for ids without
// one (made outside a cluster, or not made by a Manager at all).
func TagOf(id string) (tag string, ok bool) {
	rest, found := strings.CutPrefix(id, "sb-")
	n := len(rest) - idRandLen - 1
	if !found || n < 1 || rest[n] != '-' {
		return "", false
	}
	for _, c := range rest[n+1:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	tag = rest[:n]
	if len(tag) > maxTagLen || api.CheckID("node", api.IDNode, tag) != nil {
		return "", false
	}
	return tag, true
}
