package bench

import (
	"bufio"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// jsonKeys lists the JSON keys of a result struct (its fields' json tags,
// embedded structs included).
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			keys = append(keys, jsonKeys(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" && f.IsExported() {
			keys = append(keys, name)
		}
	}
	return keys
}

// TestResultKeysStable: scripts read the benches' JSON, so a key once
// published stays: every key in testdata/keys.txt must still be produced
// by its result type. New keys are added to the file (the test says which).
func TestResultKeysStable(t *testing.T) {
	types := map[string]reflect.Type{
		"sessions": reflect.TypeFor[SessionsResult](), "sandbox": reflect.TypeFor[SandboxResult](),
		"authz": reflect.TypeFor[AuthzResult](), "gateway": reflect.TypeFor[GatewayResult](),
		"pipeline": reflect.TypeFor[PipelineResult](), "tools": reflect.TypeFor[ToolsResult](),
	}
	f, err := os.Open("testdata/keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bench, key, ok := strings.Cut(line, " ")
		if !ok || types[bench] == nil {
			t.Fatalf("keys.txt: bad line %q (want: BENCH KEY)", line)
		}
		listed[bench] = append(listed[bench], key)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for bench, typ := range types {
		have := jsonKeys(typ)
		for _, k := range listed[bench] {
			if !slices.Contains(have, k) {
				t.Errorf("bench %s: key %q is gone (renamed or removed); scripts read it: add a new key instead", bench, k)
			}
		}
		for _, k := range have {
			if !slices.Contains(listed[bench], k) {
				t.Errorf("bench %s: new key %q: add the line %q to testdata/keys.txt", bench, k, bench+" "+k)
			}
		}
	}
}
