package registryhttp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/toolbox/registry"
)

// TestEntryWireClass: an entry rendered for the API never carries the
// inline OpenAPI document, names tools upstream.tool, gives a tool without
// a schema "{}", shows an OpenAPI tool's endpoint, and lists quarantined
// tools for the audit record.
func TestEntryWireClass(t *testing.T) {
	e := registry.Entry{Name: "pets", Kind: "openapi", Document: "SECRET-INLINE-DOC",
		Credential: &registry.Credential{Secret: "PETS_KEY", Header: "X-Key"},
		Tools: []registry.Pinned{
			{Definition: registry.Definition{Name: "get", Op: &registry.Operation{Method: "GET", Server: "https://p.example", Path: "/pets/{id}"}}, Status: registry.StatusQuarantined},
			{Definition: registry.Definition{Name: "list", InputSchema: json.RawMessage(`{"type":"object"}`)}, Hash: "h"},
		}}
	out := entryWire(e)
	b, _ := json.Marshal(out)
	if strings.Contains(string(b), "SECRET-INLINE-DOC") {
		t.Fatalf("inline document leaked: %s", b)
	}
	if len(out.Tools) != 2 || out.Tools[0].Name != "pets.get" || string(out.Tools[0].InputSchema) != "{}" ||
		out.Tools[0].Endpoint != "GET https://p.example/pets/{id}" || out.Tools[1].Hash != "h" {
		t.Fatalf("tools: %+v", out.Tools)
	}
	if out.Credential == nil || out.Credential.Secret != "PETS_KEY" {
		t.Fatalf("credential (the secret's name only): %+v", out.Credential)
	}
	if q := quarantined(e); len(q) != 1 || q[0] != "get" {
		t.Fatalf("quarantined: %v", q)
	}
}
