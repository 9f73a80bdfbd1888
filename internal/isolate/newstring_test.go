package isolate

import (
	"context"
	"strings"
	"testing"
)

// TestNewStringCopiesNothing: a string crosses into the guest without a Go
// copy of it (the request metadata of every call does), and arrives whole:
// NULs, multi-byte UTF-8, the empty string and one past the scratch size.
func TestNewStringCopiesNothing(t *testing.T) {
	iso := newIsolate(t, `export default { fetch() { return new Response("x") } }`)
	v := iso.vm
	ctx := context.Background()
	for _, s := range []string{"", "GET\x00http://a/\x00", "é€\U0001F600", strings.Repeat("z", 4097)} {
		box, err := v.newString(ctx, false, s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.str(ctx, false, box, 1<<20, false)
		if err != nil || got != s {
			t.Fatalf("%q came back as %q, %v", s, got, err)
		}
		_ = v.free(ctx, box)
	}
	meta := "GET\x00http://agent/p?q=1\x00accept\x00*/*\x00"
	if n := testing.AllocsPerRun(200, func() {
		box, err := v.newString(ctx, false, meta)
		if err != nil {
			t.Fatal(err)
		}
		_ = v.free(ctx, box)
	}); n != 0 {
		t.Errorf("newString allocates %v times per call, want 0", n)
	}
}
