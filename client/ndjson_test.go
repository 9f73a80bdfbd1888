package client

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestReadNDJSONClass: documents arrive in order with blank lines
// skipped; a line that is not the document, a line over the cap and a
// callback error each end the stream with an error naming what failed.
func TestReadNDJSONClass(t *testing.T) {
	type doc struct{ N int }
	collect := func(in string) ([]int, error) {
		var got []int
		err := readNDJSON(context.Background(), strings.NewReader(in), "thing", func(d doc) error {
			got = append(got, d.N)
			return nil
		})
		return got, err
	}
	got, err := collect("{\"N\":1}\n\n  \n{\"N\":2}\r\n{\"N\":3}")
	if err != nil || len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("good stream: %v, %v", got, err)
	}
	for name, in := range map[string]string{
		"not json":    "{\"N\":1}\n{nope\n",
		"wrong shape": "[1,2]\n",
		"over 1 MiB":  "{\"N\":\"" + strings.Repeat("x", 1<<20) + "\"}\n",
	} {
		if _, err := collect(in); err == nil || !strings.Contains(err.Error(), "thing") {
			t.Errorf("%s: err = %v, want one naming the document", name, err)
		}
	}
	stop := errors.New("stop")
	err = readNDJSON(context.Background(), strings.NewReader("{}\n{}\n"), "thing", func(doc) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("callback error: %v", err)
	}
}

// FuzzReadNDJSON: any byte stream ends without a panic.
func FuzzReadNDJSON(f *testing.F) {
	for _, s := range []string{"{\"N\":1}\n", "\n\n", "{", "[1]\n{\"N\":\"x\"}\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		_ = readNDJSON(context.Background(), strings.NewReader(in), "thing", func(struct{ N int }) error { return nil })
	})
}
