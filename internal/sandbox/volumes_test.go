package sandbox

import (
	"errors"
	"path"
	"strings"
	"testing"
)

var mountPathCases = []struct {
	p  string
	ok bool
}{
	{"/workspace/data", true},
	{"/workspace/a/b/c/d", true},
	{"/mnt/cache", true},
	{"/mnt/v-1_x.y", true},
	{"", false},
	{"/", false},
	{"/workspace", false},
	{"/mnt", false},
	{"/tmp/x", false},
	{"/proc", false},
	{"/proc/self", false},
	{"/dev/x", false},
	{"/etc/passwd", false},
	{"workspace/data", false},
	{"/workspace/../etc", false},
	{"/workspace/./x", false},
	{"/workspace//x", false},
	{"/workspace/x/", false},
	{"/mnt/a/../../proc", false},
	{"/mnt/a b", false},
	{"/mnt/a\x00b", false},
	{"/mnt/é", false},
	{"/workspace/a/b/c/d/e", false},
	{"/mnt/" + strings.Repeat("a", 300), false},
}

// TestMountPathClass: volume mount paths are clean paths strictly below
// /workspace or /mnt; traversal, the writable roots themselves, /proc,
// /dev, /tmp and system dirs are refused.
func TestMountPathClass(t *testing.T) {
	for _, c := range mountPathCases {
		err := CheckMountPath(c.p)
		if (err == nil) != c.ok {
			t.Errorf("CheckMountPath(%q) = %v, want ok %v", c.p, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadMountPath) {
			t.Errorf("CheckMountPath(%q): %v does not match ErrBadMountPath", c.p, err)
		}
	}
	bad := [][]VolumeMount{
		{{Name: "a", Path: "/mnt/a"}, {Name: "a", Path: "/mnt/b"}},               // one volume twice
		{{Name: "a", Path: "/mnt/a"}, {Name: "b", Path: "/mnt/a"}},               // one path twice
		{{Name: "a", Path: "/mnt/a"}, {Name: "b", Path: "/mnt/a/b"}},             // nested
		{{Name: "a", Path: "/workspace/x/y"}, {Name: "b", Path: "/workspace/x"}}, // nested, other order
	}
	var many []VolumeMount
	for i := 0; i <= MaxVolumes; i++ {
		many = append(many, VolumeMount{Name: string(rune('a' + i)), Path: "/mnt/" + string(rune('a'+i))})
	}
	bad = append(bad, many)
	for _, ms := range bad {
		if err := CheckMounts(ms); !errors.Is(err, ErrBadMountPath) {
			t.Errorf("CheckMounts(%v) = %v, want ErrBadMountPath", ms, err)
		}
	}
	if err := CheckMounts(many[:MaxVolumes]); err != nil {
		t.Errorf("%d volumes: %v", MaxVolumes, err)
	}
}

func FuzzCheckMountPath(f *testing.F) {
	for _, c := range mountPathCases {
		f.Add(c.p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckMountPath(p) != nil {
			return
		}
		if path.Clean(p) != p || !strings.HasPrefix(p, "/workspace/") && !strings.HasPrefix(p, "/mnt/") || strings.Contains(p, "..") && strings.Contains("/"+p+"/", "/../") {
			t.Fatalf("accepted %q", p)
		}
	})
}
