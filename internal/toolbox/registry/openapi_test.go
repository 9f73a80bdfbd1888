package registry

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const spec31 = `openapi: 3.1.0
info: {title: pets, version: "1"}
servers:
  - url: "https://{region}.pets.example/v1"
    variables: {region: {default: eu}}
paths:
  /pets/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: [integer, "null"]}}
    get:
      operationId: getPet
      summary: Get a pet.
      description: By id.
      parameters:
        - {name: id, in: query, description: shadowing name, schema: {type: string}}
        - {name: X-Trace, in: header, schema: {type: string}}
        - {name: sid, in: cookie, schema: {type: string}}
    delete:
      responses: {"204": {description: gone}}
  /pets:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Pet"}
components:
  schemas:
    Pet:
      type: object
      properties:
        name: {type: string}
        owner: {$ref: "#/components/schemas/Person"}
    Person:
      type: object
      properties: {name: {type: string}}
    Unused: {type: string}
`

const spec30 = `{
  "openapi": "3.0.3",
  "info": {"title": "t", "version": "1"},
  "servers": [{"url": "/api"}],
  "paths": {"/items": {"get": {"operationId": "list items!", "responses": {"200": {"description": "ok"}}}}}
}`

func TestParseOpenAPI(t *testing.T) {
	ctx := context.Background()
	defs, err := ParseOpenAPI(ctx, "spec", []byte(spec31), "", "")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	byName := map[string]Definition{}
	for _, d := range defs {
		names = append(names, d.Name)
		byName[d.Name] = d
	}
	if got := strings.Join(names, ","); got != "delete_pets_id,getPet,post_pets" {
		t.Fatalf("tools %s", got)
	}
	get := byName["getPet"]
	if get.Description != "Get a pet.\n\nBy id." || get.Op.Server != "https://eu.pets.example/v1" || get.Op.Method != "GET" || get.Op.Path != "/pets/{id}" {
		t.Fatalf("getPet: %+v %+v", get, get.Op)
	}
	var schema struct {
		Properties map[string]map[string]any `json:"properties"`
		Required   []string                  `json:"required"`
	}
	if err := json.Unmarshal(get.InputSchema, &schema); err != nil {
		t.Fatal(err)
	}
	if _, ok := schema.Properties["query_id"]; !ok || schema.Properties["id"]["type"] == nil || strings.Join(schema.Required, ",") != "id" {
		t.Fatalf("getPet schema %s", get.InputSchema)
	}
	if _, ok := schema.Properties["sid"]; ok {
		t.Fatal("cookie parameters are not arguments")
	}
	post := byName["post_pets"]
	if post.Op.Body != "body" || !strings.Contains(string(post.InputSchema), `"$ref":"#/$defs/Pet"`) ||
		!strings.Contains(string(post.InputSchema), `"Person"`) || strings.Contains(string(post.InputSchema), "Unused") {
		t.Fatalf("post schema %s", post.InputSchema)
	}

	// OpenAPI 3.0 schema keywords become JSON Schema.
	doc := "openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {/a: {get: {parameters: [{name: n, in: query, schema: {type: integer, maximum: 5, exclusiveMaximum: true, minimum: 1, exclusiveMinimum: false, nullable: true}}], responses: {'200': {description: ok}}}}}\n"
	defs, err = ParseOpenAPI(ctx, "spec", []byte(doc), "", "http://x")
	if err != nil || !strings.Contains(string(defs[0].InputSchema), `"n":{"exclusiveMaximum":5,"minimum":1,"type":["integer","null"]}`) {
		t.Fatalf("3.0 keywords: %s %v", defs[0].InputSchema, err)
	}

	// A relative server resolves against where the document came from.
	defs, err = ParseOpenAPI(ctx, "spec", []byte(spec30), "http://h.example/specs/openapi.json", "")
	if err != nil || defs[0].Name != "list_items" || defs[0].Op.Server != "http://h.example/api" {
		t.Fatalf("3.0 relative server: %+v %v", defs, err)
	}
	defs, err = ParseOpenAPI(ctx, "spec", []byte(spec30), "", "http://other.example:8080/base/")
	if err != nil || defs[0].Op.Server != "http://other.example:8080/base" {
		t.Fatalf("base URL override: %+v %v", defs, err)
	}
}

func TestParseOpenAPIErrors(t *testing.T) {
	for _, c := range []struct{ doc, base, want string }{
		{"", "", "document is empty"},
		{"openapi: 3.0.0\ninfo: {title: x\n", "", "line 3"},
		{"{\"openapi\": \"3.0.0\",\n  \"info\": [}", "", "line 2, column 12"},
		{"[1, 2]", "", "not a mapping"},
		{"swagger: '2.0'\ninfo: {title: x, version: '1'}\npaths: {}\n", "", "version"},
		{spec30, "", "relative"},
		{strings.Replace(spec30, `"/api"`, `"ftp://x/api"`, 1), "", "scheme must be http or https"},
		{"openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {}\n", "http://x", "no operations"},
		{"openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {/a: {get: {operationId: x, responses: {'200': {description: ok}}}}, /b: {get: {operationId: x, responses: {'200': {description: ok}}}}}\n", "http://x", "same operation id"},
		{"openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {/a: {get: {operationId: 'a b', responses: {'200': {description: ok}}}}, /b: {get: {operationId: a_b, responses: {'200': {description: ok}}}}}\n", "http://x", "tool name \"a_b\" is also the name of"},
		{"openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {/a: {get: {parameters: [{name: c, in: cookie, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}}}\n", "http://x", "paths./a.get: required cookie parameter"},
		{"openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {/a: {get: {parameters: [{$ref: '#/components/parameters/nope'}], responses: {'200': {description: ok}}}}}\n", "http://x", "nope"},
	} {
		_, err := ParseOpenAPI(context.Background(), "spec.yaml", []byte(c.doc), "", c.base)
		var de *DocumentError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "spec.yaml: ") {
			t.Errorf("%.40q: got %v, want a DocumentError mentioning %q", c.doc, err, c.want)
		}
	}
}

// FuzzParseOpenAPI: any document is either refused with a DocumentError
// or gives tools whose schemas are JSON objects and whose names are valid.
func FuzzParseOpenAPI(f *testing.F) {
	for _, s := range []string{spec31, spec30, "", "{}", "openapi: 3.1.0", "openapi: 3.0.0\ninfo: {title: x\n",
		"openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {/a/{b}: {get: {parameters: [{name: b, in: path, required: true}], responses: {}}}}\n",
		`{"openapi":"3.1.0","info":{"title":"x","version":"1"},"paths":{"/x":{"post":{"requestBody":{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/R"}}}}}}},"components":{"schemas":{"R":{"type":"object","properties":{"r":{"$ref":"#/components/schemas/R"}}}}}}`,
		"openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {/x: {get: {responses: {'200': {$ref: '#/a/b'}}}}}\n",
		"a: &a [*a, *a, *a]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := ParseOpenAPI(context.Background(), "f", data, "", "http://base.example")
		if err != nil {
			var de *DocumentError
			if !errors.As(err, &de) {
				t.Fatalf("error is not a DocumentError: %v", err)
			}
			return
		}
		for _, d := range defs {
			var v map[string]any
			if err := json.Unmarshal(d.InputSchema, &v); err != nil || v["type"] != "object" {
				t.Fatalf("%s: schema %s", d.Name, d.InputSchema)
			}
			if d.Name == "" || nonName.MatchString(d.Name) || d.Op == nil {
				t.Fatalf("tool %+v", d)
			}
			if _, err := Hash(d); err != nil {
				t.Fatal(err)
			}
		}
	})
}
