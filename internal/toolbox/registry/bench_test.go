package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkProviderCallMCP: one call through the registry provider to a
// go-sdk MCP server on loopback (pin check, forwarding, result mapping).
func BenchmarkProviderCallMCP(b *testing.B) {
	ctx := context.Background()
	kv := openKV(b)
	srv := mcp.NewServer(&mcp.Implementation{Name: "calc", Version: "1"}, nil)
	addTool(srv, "Add two numbers.")
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	b.Cleanup(ts.Close)
	r, err := New(Config{KV: kv, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	if _, err := r.Add(ctx, AddRequest{Name: "calc", MCPURL: ts.URL}); err != nil {
		b.Fatal(err)
	}
	p := r.Provider("calc")
	args := json.RawMessage(`{"a":2,"b":3}`)
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Call(ctx, toolbox.Caller{}, "calc.add", args); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseOpenAPI: importing a document with 50 operations.
func BenchmarkParseOpenAPI(b *testing.B) {
	doc := "openapi: 3.1.0\ninfo: {title: t, version: '1'}\nservers: [{url: 'http://api.example'}]\npaths:\n"
	for i := range 50 {
		doc += fmt.Sprintf("  /r%d/{id}:\n    parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n    get:\n      operationId: get%d\n      parameters: [{name: q, in: query, schema: {type: integer}}]\n    post:\n      operationId: post%d\n      requestBody: {content: {application/json: {schema: {type: object, properties: {a: {type: string}}}}}}\n", i, i, i)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := ParseOpenAPI(ctx, "b", []byte(doc), "", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHash: pinning one definition.
func BenchmarkHash(b *testing.B) {
	d := Definition{Name: "t", Description: "A tool that does something useful with its input.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"string","description":"first"},"b":{"type":"integer"}},"required":["a"]}`)}
	for b.Loop() {
		if _, err := Hash(d); err != nil {
			b.Fatal(err)
		}
		if err := CheckDefinition(d); err != nil {
			b.Fatal(err)
		}
	}
}
