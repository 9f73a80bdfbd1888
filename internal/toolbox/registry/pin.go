package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Definition is what an upstream says about one tool: the three things a
// model reads and that are pinned by hash.
type Definition struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"inputSchema"`
	// Op is how an OpenAPI tool is called (nil for MCP tools). It is not
	// part of the hash but is compared at refresh: a tool whose endpoint
	// moved is quarantined like one whose description changed.
	Op *Operation `json:"op,omitempty"`
}

// Tool statuses.
const (
	StatusOK          = "ok"
	StatusQuarantined = "quarantined"
)

// Pinned is a tool of a registered upstream: the definition an
// administrator approved (Hash over name, description and input schema),
// its status, and, while quarantined, what the upstream serves now.
type Pinned struct {
	Definition
	Hash   string `json:"hash,omitempty"` // empty for a new tool never approved
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Pending is the upstream's current definition while it differs from
	// the pin; approve re-pins it.
	Pending    *Definition `json:"pending,omitempty"`
	PendingSum string      `json:"pendingHash,omitempty"`
}

// Canonical returns the canonical JSON of a definition's pinned fields:
// {"description","inputSchema","name"} with object keys sorted at every
// level, no insignificant whitespace, numbers as written.
func Canonical(d Definition) ([]byte, error) {
	schema, err := canonicalJSON(d.InputSchema)
	if err != nil {
		return nil, fmt.Errorf("tool %q: input schema: %w", d.Name, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct {
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"inputSchema"`
		Name        string          `json:"name"`
	}{d.Description, schema, d.Name}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Hash is "sha256:" and the hex SHA-256 of Canonical(d).
func Hash(d Definition) (string, error) {
	b, err := Canonical(d)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// canonicalJSON re-encodes raw with sorted keys and no whitespace; an empty
// schema is {}.
func canonicalJSON(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("{}"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // maps encode with sorted keys
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// pinAll pins every upstream definition as approved (registration).
// Hidden characters refuse the lot.
func pinAll(defs []Definition) ([]Pinned, error) {
	out := make([]Pinned, 0, len(defs))
	for _, d := range defs {
		if err := CheckDefinition(d); err != nil {
			return nil, err
		}
		h, err := Hash(d)
		if err != nil {
			return nil, err
		}
		out = append(out, Pinned{Definition: d, Hash: h, Status: StatusOK})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// reconcile compares what the upstream serves now with the pins. Unchanged
// tools keep their status (a tool quarantined for a change that the
// upstream reverted becomes ok again); changed, new and hidden-character
// tools are quarantined with the upstream definition kept as pending; tools
// the upstream no longer serves are dropped with a note.
func reconcile(pins []Pinned, defs []Definition, now time.Time) (out []Pinned, notes []string, err error) {
	cur := make(map[string]Definition, len(defs))
	for _, d := range defs {
		cur[d.Name] = d
	}
	seen := map[string]bool{}
	for _, p := range pins {
		d, ok := cur[p.Name]
		if !ok {
			notes = append(notes, fmt.Sprintf("%s: tool %q removed upstream", now.UTC().Format(time.RFC3339), p.Name))
			continue
		}
		seen[p.Name] = true
		h, err := Hash(d)
		if err != nil {
			return nil, nil, err
		}
		if herr := CheckDefinition(d); herr != nil {
			p.Status, p.Reason, p.Pending, p.PendingSum = StatusQuarantined, "refused: "+herr.Error(), &d, h
			out = append(out, p)
			continue
		}
		what := changes(p, d, h)
		switch {
		case len(what) == 0 && p.Hash != "":
			p.Status, p.Reason, p.Pending, p.PendingSum = StatusOK, "", nil, ""
		case p.Hash == "":
			p.Pending, p.PendingSum = &d, h // still new, never approved
		default:
			p.Status = StatusQuarantined
			p.Reason = "changed upstream since pinned: " + strings.Join(what, ", ") + "; approve to re-pin"
			p.Pending, p.PendingSum = &d, h
		}
		out = append(out, p)
	}
	for _, d := range defs {
		if seen[d.Name] {
			continue
		}
		h, err := Hash(d)
		if err != nil {
			return nil, nil, err
		}
		p := Pinned{Definition: Definition{Name: d.Name}, Status: StatusQuarantined,
			Reason: "new tool served upstream since registration; approve to pin", Pending: &d, PendingSum: h}
		if herr := CheckDefinition(d); herr != nil {
			p.Reason = "refused: " + herr.Error()
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, notes, nil
}

// changes names what differs between a pin and the upstream's definition.
func changes(p Pinned, d Definition, h string) []string {
	var what []string
	if h != p.Hash {
		if p.Description != d.Description {
			what = append(what, "description")
		}
		a, _ := canonicalJSON(p.InputSchema)
		b, _ := canonicalJSON(d.InputSchema)
		if !bytes.Equal(a, b) {
			what = append(what, "input schema")
		}
		if len(what) == 0 {
			what = append(what, "definition hash")
		}
	}
	if !p.Op.equal(d.Op) {
		what = append(what, "endpoint ("+p.Op.String()+" -> "+d.Op.String()+")")
	}
	return what
}

// approve re-pins the pending definitions of the named tools (all
// quarantined tools when names is empty). A pending definition with hidden
// characters cannot be approved.
func approve(pins []Pinned, names []string) ([]Pinned, []string, error) {
	var done []string
	for _, n := range names {
		if !slices.ContainsFunc(pins, func(p Pinned) bool { return p.Name == n }) {
			return nil, nil, fmt.Errorf("no tool %q in this upstream", n)
		}
	}
	out := slices.Clone(pins)
	for i, p := range out {
		if len(names) > 0 && !slices.Contains(names, p.Name) {
			continue
		}
		if p.Status != StatusQuarantined {
			continue
		}
		if p.Pending == nil {
			return nil, nil, fmt.Errorf("tool %q: nothing to approve (%s)", p.Name, p.Reason)
		}
		if err := CheckDefinition(*p.Pending); err != nil {
			return nil, nil, fmt.Errorf("cannot approve: %w", err)
		}
		out[i] = Pinned{Definition: *p.Pending, Hash: p.PendingSum, Status: StatusOK}
		done = append(done, p.Name)
	}
	return out, done, nil
}
