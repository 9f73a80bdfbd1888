package cli

import (
	"strings"
	"testing"
)

var volumeFlagCases = []struct {
	in string
	ok bool
}{
	{"data:/workspace/data", true},
	{"data:/mnt/x:ro", true},
	{"data:/mnt/x:rw", true},
	{"data", false},
	{":/mnt/x", false},
	{"data:", false},
	{"data:/mnt/x:rx", false},
	{"data:/mnt/x:ro:extra", false},
}

// TestVolumeFlagClass: --volume NAME:PATH[:ro|:rw]; anything else is
// refused with a message naming the form.
func TestVolumeFlagClass(t *testing.T) {
	for _, c := range volumeFlagCases {
		vs, err := volumeFlags([]string{c.in})
		if (err == nil) != c.ok {
			t.Errorf("%q: %v, want ok %v", c.in, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "NAME:PATH") {
			t.Errorf("%q: %v does not name the form", c.in, err)
		}
		if err == nil && vs[0].ReadOnly != strings.HasSuffix(c.in, ":ro") {
			t.Errorf("%q: read_only %v", c.in, vs[0].ReadOnly)
		}
	}
}

func FuzzVolumeFlags(f *testing.F) {
	for _, c := range volumeFlagCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vs, err := volumeFlags([]string{s})
		if err == nil && (len(vs) != 1 || vs[0].Name == "" || vs[0].Path == "" || strings.Contains(vs[0].Name, ":")) {
			t.Fatalf("%q parsed as %+v", s, vs)
		}
	})
}
