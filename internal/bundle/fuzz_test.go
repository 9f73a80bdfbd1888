package bundle

import (
	"bytes"
	"errors"
	"maps"
	"testing"
)

// FuzzParse checks that Parse never panics, that every failure is a
// *ManifestError with at least one described problem, and that every
// success round-trips through encoding/json.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			var me *ManifestError
			if !errors.As(err, &me) || len(me.Problems) == 0 {
				t.Fatalf("error %v (%T) is not a *ManifestError with problems", err, err)
			}
			for _, p := range me.Problems {
				if p.Problem == "" || p.Fix == "" || p.Line < 0 || p.Column < 0 {
					t.Fatalf("badly formed problem %+v", p)
				}
			}
			_ = err.Error()
			return
		}
		if lo, hi := MemoryRange(m.Runtime); m.Limits.MemoryMiB < lo || m.Limits.MemoryMiB > hi {
			t.Fatalf("accepted memory_mib %d outside [%d, %d] for runtime %q", m.Limits.MemoryMiB, lo, hi, m.Runtime)
		}
		checkRoundTrip(t, m)
	})
}

// FuzzLoadTarGz checks that LoadTarGz never panics and that whatever it
// accepts survives TarGz and LoadTarGz unchanged.
func FuzzLoadTarGz(f *testing.F) {
	for _, tc := range tarCases() {
		data := tc.raw
		if data == nil {
			data = makeTarGz(f, tc.entries...)
		}
		if tc.mangle != nil {
			data = tc.mangle(data)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := LoadTarGz(bytes.NewReader(data))
		if err != nil {
			return
		}
		out, err := b.TarGz()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := LoadTarGz(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("re-load: %v", err)
		}
		if b2.Digest != b.Digest || !maps.EqualFunc(b.Files, b2.Files, bytes.Equal) {
			t.Fatal("round trip changed the bundle")
		}
	})
}
