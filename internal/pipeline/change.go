package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/pipeline/textdiff"
)

// Change computes what a new version changes against its parent (nil for a
// first release): capabilities added and removed, limits, the entry code.
// It is the policy gate's input.
func Change(parent, next *bundle.Bundle) *api.PipelineChange {
	c := &api.PipelineChange{
		Limits:      limitsOf(next.Manifest),
		EntryDigest: digestOf(next.Files[next.Manifest.Entry]),
	}
	if parent == nil {
		c.FirstRelease = true
		c.NewHosts, c.NewSecrets, c.NewTools = sorted(next.Manifest.Egress), sorted(next.Manifest.Secrets), sorted(next.Manifest.Tools)
		c.EntryChanged = true
		c.FilesAdded = len(next.Files)
		return c
	}
	c.ParentLimits = limitsOf(parent.Manifest)
	c.ParentEntryDigest = digestOf(parent.Files[parent.Manifest.Entry])
	c.EntryChanged = c.EntryDigest != c.ParentEntryDigest
	c.NewHosts, c.RemovedHosts = setDiff(parent.Manifest.Egress, next.Manifest.Egress)
	c.NewSecrets, c.RemovedSecrets = setDiff(parent.Manifest.Secrets, next.Manifest.Secrets)
	c.NewTools, c.RemovedTools = setDiff(parent.Manifest.Tools, next.Manifest.Tools)
	for p, data := range next.Files {
		old, ok := parent.Files[p]
		switch {
		case !ok:
			c.FilesAdded++
		case string(old) != string(data):
			c.FilesChanged++
		}
	}
	for p := range parent.Files {
		if _, ok := next.Files[p]; !ok {
			c.FilesRemoved++
		}
	}
	return c
}

// AddsCapability reports whether the change adds an egress host, a secret
// or a tool, or raises a limit.
func AddsCapability(c *api.PipelineChange) bool {
	if c == nil {
		return true
	}
	return len(c.NewHosts) > 0 || len(c.NewSecrets) > 0 || len(c.NewTools) > 0 ||
		(!c.FirstRelease && (c.Limits.MemoryMiB > c.ParentLimits.MemoryMiB || c.Limits.CPUMs > c.ParentLimits.CPUMs || c.Limits.WallMs > c.ParentLimits.WallMs))
}

func limitsOf(m bundle.Manifest) api.PipelineLimit {
	return api.PipelineLimit{MemoryMiB: m.Limits.MemoryMiB, CPUMs: m.Limits.CPUMs, WallMs: m.Limits.WallMs}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// setDiff returns what b adds to a and what it drops.
func setDiff(a, b []string) (added, removed []string) {
	for _, x := range sorted(b) {
		if !slices.Contains(a, x) {
			added = append(added, x)
		}
	}
	for _, x := range sorted(a) {
		if !slices.Contains(b, x) {
			removed = append(removed, x)
		}
	}
	return added, removed
}

// Diff limits: a file's diff is cut at MaxFileDiffBytes, the whole diff at
// MaxDiffBytes (later files are listed without their diff).
const (
	MaxFileDiffBytes = 256 << 10
	MaxDiffBytes     = 2 << 20
)

// FileDiffs is the file-by-file unified diff from parent (nil: every file
// is added) to next, sorted by path.
func FileDiffs(parent, next *bundle.Bundle) []api.PipelineFileDiff {
	paths := map[string]bool{}
	for p := range next.Files {
		paths[p] = true
	}
	if parent != nil {
		for p := range parent.Files {
			paths[p] = true
		}
	}
	names := make([]string, 0, len(paths))
	for p := range paths {
		names = append(names, p)
	}
	slices.Sort(names)
	out := []api.PipelineFileDiff{}
	total := 0
	for _, p := range names {
		var a, b []byte
		var hasA bool
		if parent != nil {
			a, hasA = parent.Files[p]
		}
		b, hasB := next.Files[p]
		d := api.PipelineFileDiff{Path: p}
		switch {
		case hasA && !hasB:
			d.Status = api.DiffRemoved
		case !hasA && hasB:
			d.Status = api.DiffAdded
		case string(a) == string(b):
			continue
		default:
			d.Status = api.DiffModified
		}
		if !text(a) || !text(b) {
			d.Binary = true
		} else if total >= MaxDiffBytes {
			d.Truncated = true
		} else {
			u := textdiff.Unified("a/"+p, "b/"+p, string(a), string(b), textdiff.Options{})
			if len(u) > MaxFileDiffBytes {
				u, d.Truncated = clipUTF8(u, MaxFileDiffBytes), true
			}
			d.Diff = u
			total += len(u)
		}
		out = append(out, d)
	}
	return out
}

func text(b []byte) bool {
	return utf8.Valid(b) && !slices.Contains(b, 0)
}

// clipUTF8 cuts s to at most n bytes without splitting a character.
func clipUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
