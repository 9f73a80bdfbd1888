package session

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// uniqueKeys reports the first key repeated in the top-level JSON object.
func uniqueKeys(line string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		return "", err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		k := tok.(string)
		if seen[k] {
			return k, nil
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", err
		}
	}
	return "", nil
}

// TestConsoleLogJSONKeysClass: every console method of an agent logs one
// JSON line with each key once, at the slog level of the method, with the
// agent, session, method and text under their own keys.
func TestConsoleLogJSONKeysClass(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.Logger = log })
	deploy(t, m, `{"name":"talker","entry":"agent.js"}`, `
export default { async fetch() {
  console.debug("d", 1); console.info("i"); console.log("l", {level: "x", msg: "y"}); console.warn("w"); console.error("e");
  return new Response("ok");
} };`)
	mustCall(t, m, "talker", "s1", "/")
	want := map[string]string{"debug": "DEBUG", "info": "INFO", "log": "INFO", "warn": "WARN", "error": "ERROR"}
	got := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		line := sc.Text()
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if rec["msg"] != "agent console" {
			continue
		}
		if dup, err := uniqueKeys(line); err != nil || dup != "" {
			t.Errorf("key %q repeated (%v): %s", dup, err, line)
		}
		method, _ := rec["console"].(string)
		if rec["level"] != want[method] || rec["agent"] != "talker" || rec["session"] != "s1" || rec["text"] == nil {
			t.Errorf("console.%s logged %s", method, line)
		}
		got[method] = true
	}
	if len(got) != len(want) {
		t.Fatalf("logged methods %v, want %v:\n%s", got, want, buf.String())
	}
}
