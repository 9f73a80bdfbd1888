package bundle

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Runtime says how an agent's entry file is run.
type Runtime string

// Runtimes.
const (
	RuntimeJS   Runtime = "js"   // a JavaScript module (.js, .mjs) in the QuickJS isolate
	RuntimeWASM Runtime = "wasm" // a WASI module (.wasm) against the host ABI
)

// Manifest is the parsed and validated agent.json, with defaults filled in.
// Marshalling it with encoding/json gives a manifest that parses back to an
// equal value.
type Manifest struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Entry       string            `json:"entry"`
	Runtime     Runtime           `json:"runtime"`
	Limits      Limits            `json:"limits"`
	Egress      []string          `json:"egress,omitempty"`  // host patterns: "api.example.com", "*.example.com", optional ":port" (else 80 and 443)
	Tools       []string          `json:"tools,omitempty"`   // tool names the agent may call
	Secrets     []string          `json:"secrets,omitempty"` // secret names the agent may use
	Env         map[string]string `json:"env,omitempty"`     // plain values, visible to the agent as env.KEY
	// Rollout, if set, is how a new version of the agent is rolled out
	// (rollout.go); nil means the node's default steps.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Test is a shell command the deploy pipeline's test stage runs in a
	// sandbox with the bundle checked out in /workspace (e.g. "python3 -m
	// pytest"); exit status 0 passes. Empty: only tests/*.test.js run.
	Test string `json:"test,omitempty"`
	// Public, if set, serves some sessions without a platform token and
	// publishes an agent card (public.go).
	Public *Public `json:"public,omitempty"`
}

// Limits bound what one session of the agent may use.
type Limits struct {
	MemoryMiB   int `json:"memory_mib"`   // isolate memory
	CPUMs       int `json:"cpu_ms"`       // CPU time per request
	WallMs      int `json:"wall_ms"`      // wall-clock time per request, >= CPUMs
	IdleSeconds int `json:"idle_seconds"` // idle time before the session hibernates
}

// Memory returns the memory limit in bytes.
func (l Limits) Memory() int64 { return int64(l.MemoryMiB) << 20 }

// CPU returns the CPU time limit per request.
func (l Limits) CPU() time.Duration { return time.Duration(l.CPUMs) * time.Millisecond }

// Wall returns the wall-clock limit per request.
func (l Limits) Wall() time.Duration { return time.Duration(l.WallMs) * time.Millisecond }

// Idle returns how long a session may idle before it hibernates.
func (l Limits) Idle() time.Duration { return time.Duration(l.IdleSeconds) * time.Second }

// intRange is an integer field's default and bounds.
type intRange struct {
	def, min, max int64
}

// The memory an isolate can run with, in MiB: the engine's real range,
// which internal/isolate enforces with the same numbers (a test in
// internal/session keeps the two equal and deploys both ends). QuickJS
// starts with 1.1 MiB of wasm memory and keeps 2 MiB of the limit for its C
// stack and static data, so below 4 MiB its heap limit would be zero or
// negative; a raw wasm module needs at least the initial memory it
// declares (checked at deploy, on field limits.memory_mib), so 1 MiB (16
// wasm pages) is the floor the manifest can know. 1024 MiB is the most one
// isolate may reserve on a node.
const (
	MinMemoryMiBJS   = 4
	MinMemoryMiBWasm = 1
	MaxMemoryMiB     = 1024
)

// MemoryRange returns the smallest and largest memory_mib rt can run with.
func MemoryRange(rt Runtime) (lo, hi int) {
	if rt == RuntimeWASM {
		return MinMemoryMiBWasm, MaxMemoryMiB
	}
	return MinMemoryMiBJS, MaxMemoryMiB
}

// Defaults and bounds of the limits (memory: see MemoryRange).
var (
	memoryRange = intRange{64, MinMemoryMiBJS, MaxMemoryMiB}
	cpuRange    = intRange{1000, 1, 600_000}
	wallRange   = intRange{30_000, 1, 900_000}
	idleRange   = intRange{30, 1, 86_400}
)

var (
	topFields    = []string{"name", "description", "entry", "runtime", "limits", "egress", "tools", "secrets", "env", "rollout", "test", "public"}
	limitsFields = []string{"memory_mib", "cpu_ms", "wall_ms", "idle_seconds"}
	// fieldAliases are names people reach for out of habit.
	fieldAliases = map[string]string{
		"main": "entry", "module": "entry", "script": "entry",
		"memory": "memory_mib", "memory_mb": "memory_mib", "cpu": "cpu_ms", "timeout": "wall_ms",
		"timeout_ms": "wall_ms", "idle": "idle_seconds", "hosts": "egress", "allow_hosts": "egress",
		"environment": "env", "vars": "env",
	}
)

// Parse decodes and validates a manifest in one pass and fills in defaults.
// The JSON must be one object; unknown and repeated fields are errors; null
// counts as absent. On failure the error is a *ManifestError listing every
// problem found, each naming its field and a fix.
func Parse(data []byte) (Manifest, error) {
	m, _, err := parse(data)
	return m, err
}

// parser collects problems while decoding one manifest.
type parser struct {
	data  []byte
	ix    *jsonIndex
	probs []FieldError
	cause error
	// source accepts a TypeScript or JSX entry (LoadSourceDir): the
	// manifest of an agent's source directory, before the CLI builds it.
	source bool
}

func (p *parser) add(field, problem, fix string) {
	line, col := p.ix.at(field)
	p.probs = append(p.probs, FieldError{Field: field, Problem: problem, Fix: fix, Line: line, Column: col})
}

func (p *parser) err() error {
	if len(p.probs) == 0 {
		return nil
	}
	// Document order reads best; problems with no position (a missing
	// field) come first.
	slices.SortStableFunc(p.probs, func(a, b FieldError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &ManifestError{Problems: p.probs, Err: p.cause}
}

// parse is Parse that also returns the parser, whose index lets a bundle
// place its own manifest problems (a missing entry file).
func parse(data []byte) (Manifest, *parser, error) { return parseMode(data, false) }

// parseMode is parse; source accepts a TypeScript or JSX entry.
func parseMode(data []byte, source bool) (Manifest, *parser, error) {
	p := &parser{data: data, source: source}
	m, ok := p.manifest()
	if !ok || len(p.probs) > 0 {
		return Manifest{}, p, p.err()
	}
	return m, p, nil
}

func (p *parser) manifest() (Manifest, bool) {
	if len(p.data) > MaxManifestSize {
		p.add("", fmt.Sprintf("is %d bytes, above the maximum %d", len(p.data), MaxManifestSize), "keep agent.json small; put data in other files")
		return Manifest{}, false
	}
	if bytes.HasPrefix(p.data, []byte("\xef\xbb\xbf")) {
		p.probs = append(p.probs, FieldError{Problem: "starts with a UTF-8 byte order mark", Fix: "save the file as UTF-8 without a BOM", Line: 1, Column: 1})
		return Manifest{}, false
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(p.data, &top); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line, col := syntaxPos(p.data, syn)
			p.cause = err
			p.probs = append(p.probs, FieldError{Problem: "invalid JSON: " + strings.TrimPrefix(syn.Error(), "json: "), Fix: "fix the JSON syntax", Line: line, Column: col})
			return Manifest{}, false
		}
		p.ix = indexJSON(p.data)
		p.add("", "got "+jsonKind(p.data)+", want a JSON object", `write an object such as {"name": "my-agent", "entry": "index.js"}`)
		return Manifest{}, false
	}
	p.ix = indexJSON(p.data)
	if top == nil {
		p.add("", "got null, want a JSON object", `write an object such as {"name": "my-agent", "entry": "index.js"}`)
		return Manifest{}, false
	}
	for _, d := range p.ix.dups {
		line, col := lineCol(p.data, d.at)
		p.probs = append(p.probs, FieldError{Field: d.path, Problem: "appears more than once", Fix: "keep one of them", Line: line, Column: col})
	}
	for _, k := range p.ix.keys[""] {
		if !slices.Contains(topFields, k) {
			p.unknown(childPath("", k), k, topFields)
		}
	}

	var m Manifest
	m.Name = p.requiredString("name", top["name"])
	m.Description, _ = p.string("description", top["description"])
	m.Entry = p.requiredString("entry", top["entry"])
	if rt, ok := p.string("runtime", top["runtime"]); ok {
		m.Runtime = Runtime(rt)
	} else {
		m.Runtime = RuntimeJS
	}
	m.Limits = p.limits(top["limits"], m.Runtime)
	m.Egress = p.strings("egress", top["egress"], "api.example.com")
	m.Tools = p.strings("tools", top["tools"], "search")
	m.Secrets = p.strings("secrets", top["secrets"], "API_KEY")
	m.Env = p.env(top["env"])
	m.Rollout = p.rollout(top["rollout"])
	m.Test, _ = p.string("test", top["test"])
	m.Public = p.public(top["public"])
	p.validate(&m)
	return m, true
}

// unknown reports an unknown field, suggesting the field that was meant.
func (p *parser) unknown(path, key string, known []string) {
	if s := suggest(key, known); s != "" {
		p.add(path, "unknown field", fmt.Sprintf("did you mean %q?", s))
		return
	}
	p.add(path, "unknown field", "remove it; known fields are "+strings.Join(known, ", "))
}

func suggest(key string, known []string) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	if a, ok := fieldAliases[strings.ToLower(key)]; ok && slices.Contains(known, a) {
		return a
	}
	for _, k := range known {
		if norm(k) == norm(key) || strings.HasPrefix(k, strings.ToLower(key)+"_") || editDistance(strings.ToLower(key), k) <= 2 {
			return k
		}
	}
	return ""
}

// editDistance is the Levenshtein distance, for short field names.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// jsonKind names the JSON type of a raw value, with an article.
func jsonKind(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func isNull(raw json.RawMessage) bool { return raw == nil || string(raw) == "null" }

// string decodes an optional string field; ok is false when absent.
func (p *parser) string(path string, raw json.RawMessage) (s string, ok bool) {
	if isNull(raw) {
		return "", false
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		p.add(path, "got "+jsonKind(raw)+", want a string", "put the value in double quotes")
		return "", false
	}
	return s, true
}

func (p *parser) requiredString(path string, raw json.RawMessage) string {
	if isNull(raw) {
		ex := map[string]string{"name": `"name": "my-agent"`, "entry": `"entry": "index.js"`}[path]
		p.add(path, "is required", "add "+ex)
		return ""
	}
	s, _ := p.string(path, raw)
	return s
}

// int decodes an optional whole number, filling in r's default and checking
// r's bounds.
func (p *parser) int(path string, raw json.RawMessage, r intRange) int {
	if isNull(raw) {
		return int(r.def)
	}
	rangeFix := fmt.Sprintf("use a value from %d to %d", r.min, r.max)
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		fix := rangeFix
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if _, err := strconv.ParseInt(s, 10, 64); err == nil {
				fix = "write " + s + " without quotes"
			}
		}
		p.add(path, "got "+jsonKind(raw)+", want a whole number", fix)
		return 0
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange):
		p.add(path, string(raw)+" is out of range", rangeFix)
	case err != nil:
		p.add(path, string(raw)+" is not a whole number", rangeFix+", written without a fraction or exponent")
	case n < r.min:
		p.add(path, fmt.Sprintf("%d is below the minimum %d", n, r.min), rangeFix)
	case n > r.max:
		p.add(path, fmt.Sprintf("%d is above the maximum %d", n, r.max), rangeFix)
	default:
		return int(n)
	}
	return 0
}

// memoryRangeOf is memory_mib's default and bounds for runtime rt.
func memoryRangeOf(rt Runtime) intRange {
	lo, hi := MemoryRange(rt)
	return intRange{memoryRange.def, int64(lo), int64(hi)}
}

func (p *parser) limits(raw json.RawMessage, rt Runtime) Limits {
	var obj map[string]json.RawMessage
	if !isNull(raw) {
		if err := json.Unmarshal(raw, &obj); err != nil {
			p.add("limits", "got "+jsonKind(raw)+", want an object", `write {"memory_mib": 64, "cpu_ms": 1000, "wall_ms": 30000, "idle_seconds": 30} or leave it out for these defaults`)
			obj = nil
		}
	}
	for _, k := range p.ix.keys["limits"] {
		if !slices.Contains(limitsFields, k) {
			p.unknown(childPath("limits", k), k, limitsFields)
		}
	}
	l := Limits{
		MemoryMiB:   p.int("limits.memory_mib", obj["memory_mib"], memoryRangeOf(rt)),
		CPUMs:       p.int("limits.cpu_ms", obj["cpu_ms"], cpuRange),
		WallMs:      p.int("limits.wall_ms", obj["wall_ms"], wallRange),
		IdleSeconds: p.int("limits.idle_seconds", obj["idle_seconds"], idleRange),
	}
	if l.CPUMs > 0 && l.WallMs > 0 && l.WallMs < l.CPUMs {
		what := strconv.Itoa(l.WallMs)
		if isNull(obj["wall_ms"]) {
			what += " (the default)"
		}
		p.add("limits.wall_ms", fmt.Sprintf("%s is below cpu_ms %d", what, l.CPUMs), fmt.Sprintf("set wall_ms to at least %d, or lower cpu_ms", l.CPUMs))
	}
	return l
}

// strings decodes an optional list of strings; an empty list becomes nil.
func (p *parser) strings(path string, raw json.RawMessage, example string) []string {
	if isNull(raw) {
		return nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		fix := fmt.Sprintf("write a list such as [%q]", example)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			fix = fmt.Sprintf("wrap it in a list: [%q]", s)
		}
		p.add(path, "got "+jsonKind(raw)+", want a list of strings", fix)
		return nil
	}
	var out []string
	for i, e := range elems {
		if s, ok := p.string(path+"["+strconv.Itoa(i)+"]", e); ok {
			out = append(out, s)
		} else if isNull(e) {
			p.add(path+"["+strconv.Itoa(i)+"]", "got null, want a string", "remove it")
		}
	}
	return out
}

// env decodes the env object; an empty object becomes nil.
func (p *parser) env(raw json.RawMessage) map[string]string {
	if isNull(raw) {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		p.add("env", "got "+jsonKind(raw)+", want an object of strings", `write {"NAME": "value"}`)
		return nil
	}
	var out map[string]string
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		path := childPath("env", k)
		v := obj[k]
		var s string
		if isNull(v) || json.Unmarshal(v, &s) != nil {
			fix := "put the value in double quotes"
			if isNull(v) {
				fix = `remove it, or use "" for an empty value`
			}
			p.add(path, "got "+jsonKind(v)+", want a string", fix)
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = s
	}
	return out
}
