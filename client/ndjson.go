package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// readNDJSON calls fn with each JSON document of an NDJSON stream (blank
// lines skipped; a line may be up to 1 MiB) until the stream ends, fn
// fails, or a line does not decode. what names a document in errors. A read
// error after ctx ended is the caller's cancellation, not the stream's.
func readNDJSON[T any](ctx context.Context, r io.Reader, what string, fn func(T) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			return fmt.Errorf("decode %s: %w", what, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && err != io.EOF && ctx.Err() == nil {
		return fmt.Errorf("read %s stream: %w", what, err)
	}
	return nil
}
