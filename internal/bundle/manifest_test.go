package bundle

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

type parseCase struct {
	name string
	in   string
	// fields lists the fields with problems, in reported order; nil means
	// the manifest is valid.
	fields []string
	// check, for a valid manifest, inspects the result.
	check func(t *testing.T, m Manifest)
	// text, if set, must appear in the error text.
	text string
}

var parseCases = []parseCase{
	{name: "minimal", in: `{"name":"a","entry":"index.js"}`, check: func(t *testing.T, m Manifest) {
		want := Manifest{Name: "a", Entry: "index.js", Runtime: RuntimeJS,
			Limits: Limits{MemoryMiB: 64, CPUMs: 1000, WallMs: 30000, IdleSeconds: 30}}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("got %+v, want %+v", m, want)
		}
	}},
	{name: "full", in: `{
		"name": "my-agent-2", "description": "does things", "entry": "src/main.mjs", "runtime": "js",
		"limits": {"memory_mib": 1024, "cpu_ms": 600000, "wall_ms": 900000, "idle_seconds": 86400},
		"egress": ["api.example.com", "*.example.org", "api.example.net:8443", "localhost:8080"],
		"tools": ["search", "github/create_issue", "fs.read"],
		"secrets": ["API_KEY", "_x"],
		"env": {"MODE": "prod", "_EMPTY": ""}
	}`, check: func(t *testing.T, m Manifest) {
		if m.Limits != (Limits{1024, 600000, 900000, 86400}) || len(m.Egress) != 4 || m.Env["MODE"] != "prod" || m.Description != "does things" {
			t.Errorf("got %+v", m)
		}
		if m.Limits.Memory() != 1<<30 || m.Limits.Wall().Minutes() != 15 || m.Limits.Idle().Hours() != 24 || m.Limits.CPU().Minutes() != 10 {
			t.Errorf("durations: %+v", m.Limits)
		}
	}},
	{name: "wasm", in: `{"name":"w","entry":"a.wasm","runtime":"wasm","limits":{"memory_mib":4,"cpu_ms":1,"wall_ms":1,"idle_seconds":1}}`},
	{name: "wasm memory floor", in: `{"name":"w","entry":"a.wasm","runtime":"wasm","limits":{"memory_mib":1}}`},
	{name: "js memory floor", in: `{"name":"a","entry":"a.js","limits":{"memory_mib":4}}`},
	{name: "js memory below floor", in: `{"name":"a","entry":"a.js","limits":{"memory_mib":1}}`, fields: []string{"limits.memory_mib"},
		text: "limits.memory_mib: 1 is below the minimum 4; use a value from 4 to 1024"},
	{name: "wasm memory below floor", in: `{"name":"w","entry":"a.wasm","runtime":"wasm","limits":{"memory_mib":0}}`, fields: []string{"limits.memory_mib"},
		text: "limits.memory_mib: 0 is below the minimum 1; use a value from 1 to 1024"},
	{name: "wasm memory above max", in: `{"name":"w","entry":"a.wasm","runtime":"wasm","limits":{"memory_mib":1025}}`, fields: []string{"limits.memory_mib"},
		text: "1025 is above the maximum 1024"},
	{name: "nulls are absent", in: `{"name":"a","entry":"a.js","runtime":null,"limits":{"cpu_ms":null},"egress":null,"env":null}`, check: func(t *testing.T, m Manifest) {
		if m.Runtime != RuntimeJS || m.Limits.CPUMs != 1000 {
			t.Errorf("got %+v", m)
		}
	}},
	{name: "empty lists become nil", in: `{"name":"a","entry":"a.js","egress":[],"tools":[],"secrets":[],"env":{}}`, check: func(t *testing.T, m Manifest) {
		if m.Egress != nil || m.Tools != nil || m.Secrets != nil || m.Env != nil {
			t.Errorf("got %+v", m)
		}
	}},
	{name: "max name", in: `{"name":"a` + strings.Repeat("b", 62) + `","entry":"a.js"}`},

	{name: "empty object", in: `{}`, fields: []string{"name", "entry"}, text: `name: is required; add "name": "my-agent"`},
	{name: "memory too big", in: `{"name":"a","entry":"a.js","limits":{"memory_mib":5000}}`, fields: []string{"limits.memory_mib"},
		text: "limits.memory_mib: 5000 is above the maximum 1024; use a value from 4 to 1024 (line 1, column 51)"},
	{name: "limits below minimum", in: `{"name":"a","entry":"a.js","limits":{"memory_mib":3,"cpu_ms":0,"wall_ms":0,"idle_seconds":0}}`,
		fields: []string{"limits.memory_mib", "limits.cpu_ms", "limits.wall_ms", "limits.idle_seconds"}},
	{name: "limits above maximum", in: `{"name":"a","entry":"a.js","limits":{"cpu_ms":600001,"wall_ms":900001,"idle_seconds":86401}}`,
		fields: []string{"limits.cpu_ms", "limits.wall_ms", "limits.idle_seconds"}},
	{name: "wall below cpu", in: `{"name":"a","entry":"a.js","limits":{"cpu_ms":500,"wall_ms":100}}`, fields: []string{"limits.wall_ms"}, text: "below cpu_ms 500"},
	{name: "default wall below cpu", in: `{"name":"a","entry":"a.js","limits":{"cpu_ms":60000}}`, fields: []string{"limits.wall_ms"}, text: "(the default)"},
	{name: "fraction", in: `{"name":"a","entry":"a.js","limits":{"memory_mib":64.5}}`, fields: []string{"limits.memory_mib"}, text: "not a whole number"},
	{name: "huge number", in: `{"name":"a","entry":"a.js","limits":{"memory_mib":99999999999999999999999}}`, fields: []string{"limits.memory_mib"}, text: "out of range"},
	{name: "quoted number", in: `{"name":"a","entry":"a.js","limits":{"cpu_ms":"100"}}`, fields: []string{"limits.cpu_ms"}, text: "write 100 without quotes"},
	{name: "limits not object", in: `{"name":"a","entry":"a.js","limits":64}`, fields: []string{"limits"}},
	{name: "unknown fields", in: `{"name":"a","entry":"a.js","main":"x","limits":{"memory":1,"wall":3},"zzz":1}`,
		fields: []string{"main", "limits.memory", "limits.wall", "zzz"}, text: `main: unknown field; did you mean "entry"?`},
	{name: "duplicate field", in: `{"name":"a","entry":"a.js","name":"b"}`, fields: []string{"name"}, text: "appears more than once"},
	{name: "duplicate nested field", in: `{"name":"a","entry":"a.js","limits":{"cpu_ms":1,"cpu_ms":2}}`, fields: []string{"limits.cpu_ms"}},
	{name: "bad names", in: `{"name":"My Agent","entry":"a.js"}`, fields: []string{"name"}, text: `such as "my-agent"`},
	{name: "name too long", in: `{"name":"a` + strings.Repeat("b", 63) + `","entry":"a.js"}`, fields: []string{"name"}},
	{name: "name starts with digit", in: `{"name":"1a","entry":"a.js"}`, fields: []string{"name"}, text: `"agent-1a"`},
	{name: "wrong types", in: `{"name":1,"entry":true,"description":[],"runtime":{},"tools":"search","env":[]}`,
		fields: []string{"name", "entry", "description", "runtime", "tools", "env"}, text: `wrap it in a list: ["search"]`},
	{name: "bad runtime", in: `{"name":"a","entry":"a.js","runtime":"python"}`, fields: []string{"runtime"}},
	{name: "entry wrong ext for js", in: `{"name":"a","entry":"a.wasm"}`, fields: []string{"entry"}, text: `set "runtime": "wasm"`},
	{name: "entry wrong ext for wasm", in: `{"name":"a","entry":"a.js","runtime":"wasm"}`, fields: []string{"entry"}},
	{name: "entry dotdot", in: `{"name":"a","entry":"../a.js"}`, fields: []string{"entry"}, text: "escape"},
	{name: "entry absolute", in: `{"name":"a","entry":"/a.js"}`, fields: []string{"entry"}, text: "absolute"},
	{name: "entry dot slash", in: `{"name":"a","entry":"./src/a.js"}`, fields: []string{"entry"}, text: `write it as "src/a.js"`},
	{name: "entry backslash", in: `{"name":"a","entry":"src\\a.js"}`, fields: []string{"entry"}, text: `write it as "src/a.js"`},
	{name: "entry drive", in: `{"name":"a","entry":"C:/a.js"}`, fields: []string{"entry"}},
	{name: "egress", in: `{"name":"a","entry":"a.js","egress":["https://api.x.com/v1","*.com","a.com:0","a.com:65536","A.com","*","api.*.com","a..com","-a.com","[::1]","","a.com/x","a.com.","a.com","a.com","0x7f000001","*.10.0.0.1","a.com:x"]}`,
		fields: []string{"egress[0]", "egress[1]", "egress[2]", "egress[3]", "egress[4]", "egress[5]", "egress[6]", "egress[7]", "egress[8]", "egress[9]", "egress[10]", "egress[11]", "egress[12]", "egress[14]", "egress[15]", "egress[16]", "egress[17]"},
		text:   `write the host only: "api.x.com"`},
	{name: "tools", in: `{"name":"a","entry":"a.js","tools":["ok","","-x","a b",null]}`, fields: []string{"tools[1]", "tools[2]", "tools[3]", "tools[4]"}},
	{name: "secrets", in: `{"name":"a","entry":"a.js","secrets":["OK","1A","a-b","` + strings.Repeat("S", 129) + `","OK"]}`,
		fields: []string{"secrets[1]", "secrets[2]", "secrets[3]", "secrets[4]"}},
	{name: "env", in: `{"name":"a","entry":"a.js","secrets":["TOKEN"],"env":{"1A":"x","a b":"y","state":"z","TOKEN":"t","BIG":"` + strings.Repeat("v", 4097) + `","N":1,"NUL":null,"OK":"` + strings.Repeat("v", 4096) + `"}}`,
		fields: []string{`env["1A"]`, `env["a b"]`, "env.state", "env.TOKEN", "env.BIG", "env.N", "env.NUL"}},

	{name: "rollout", in: `{"name":"a","entry":"a.js","rollout":{"steps":[{"percent":5,"pause_seconds":60},{"percent":25},{"percent":100,"pause_seconds":604800}]}}`,
		check: func(t *testing.T, m Manifest) {
			want := &Rollout{Steps: []RolloutStep{{5, 60}, {25, 0}, {100, 604800}}}
			if !reflect.DeepEqual(m.Rollout, want) {
				t.Errorf("rollout = %+v, want %+v", m.Rollout, want)
			}
		}},
	{name: "rollout one step", in: `{"name":"a","entry":"a.js","rollout":{"steps":[{"percent":100}]}}`},
	{name: "rollout null", in: `{"name":"a","entry":"a.js","rollout":null}`, check: func(t *testing.T, m Manifest) {
		if m.Rollout != nil {
			t.Errorf("rollout = %+v", m.Rollout)
		}
	}},
	{name: "public", in: `{"name":"a","entry":"a.js","public":{"sessions":["www","api.v1"],"methods":["GET","POST"],"cacheable":true,"version":"2.1",
		"skills":[{"id":"search","name":"Search","description":"finds things","tags":["web","find"]},{"id":"sum","name":"Sum"}]}}`,
		check: func(t *testing.T, m Manifest) {
			want := &Public{Sessions: []string{"www", "api.v1"}, Methods: []string{"GET", "POST"}, Cacheable: true, Version: "2.1",
				Skills: []Skill{{ID: "search", Name: "Search", Description: "finds things", Tags: []string{"web", "find"}}, {ID: "sum", Name: "Sum"}}}
			if !reflect.DeepEqual(m.Public, want) {
				t.Errorf("got %+v, want %+v", m.Public, want)
			}
		}},
	{name: "public defaults", in: `{"name":"a","entry":"a.js","public":{"sessions":["www"]}}`, check: func(t *testing.T, m Manifest) {
		if m.Public == nil || !slices.Equal(m.Public.Methods, []string{"GET", "HEAD"}) || m.Public.Version != "1.0.0" || m.Public.Cacheable {
			t.Errorf("got %+v", m.Public)
		}
	}},
	{name: "public not object", in: `{"name":"a","entry":"a.js","public":true}`, fields: []string{"public"}},
	{name: "public without sessions", in: `{"name":"a","entry":"a.js","public":{}}`, fields: []string{"public.sessions"}, text: "is required"},
	{name: "public empty sessions", in: `{"name":"a","entry":"a.js","public":{"sessions":[]}}`, fields: []string{"public.sessions"}},
	{name: "public bad sessions", in: `{"name":"a","entry":"a.js","public":{"sessions":["..","a/b","","ok","ok",7]}}`,
		fields: []string{"public.sessions[5]", "public.sessions[0]", "public.sessions[1]", "public.sessions[2]", "public.sessions[4]"}},
	{name: "public too many sessions", in: `{"name":"a","entry":"a.js","public":{"sessions":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]}}`,
		fields: []string{"public.sessions"}, text: "maximum 16"},
	{name: "public bad methods", in: `{"name":"a","entry":"a.js","public":{"sessions":["w"],"methods":["get","CONNECT","GET","GET"]}}`,
		fields: []string{"public.methods[0]", "public.methods[1]", "public.methods[3]"}},
	{name: "public bad fields", in: `{"name":"a","entry":"a.js","public":{"sessions":["w"],"cachable":true,"cacheable":"yes","version":""}}`,
		fields: []string{"public.cachable", "public.cacheable", "public.version"}, text: "did you mean"},
	{name: "public bad skills", in: `{"name":"a","entry":"a.js","public":{"sessions":["w"],"skills":[{"id":"s"},{"id":"s","name":"S","extra":1},null,{"id":"t","name":"T","tags":[""]}]}}`,
		fields: []string{"public.skills[0].name", "public.skills[1].extra", "public.skills[1].id", "public.skills[2]", "public.skills[3].tags[0]"}},
	{name: "public skills not list", in: `{"name":"a","entry":"a.js","public":{"sessions":["w"],"skills":{"id":"s"}}}`, fields: []string{"public.skills"}},
	{name: "rollout not object", in: `{"name":"a","entry":"a.js","rollout":[10,100]}`, fields: []string{"rollout"}},
	{name: "rollout without steps", in: `{"name":"a","entry":"a.js","rollout":{}}`, fields: []string{"rollout.steps"}, text: "rollout.steps: is required"},
	{name: "rollout unknown fields", in: `{"name":"a","entry":"a.js","rollout":{"step":[],"steps":[{"percent":100,"pause":3}]}}`,
		fields: []string{"rollout.step", "rollout.steps[0].pause"}, text: `did you mean "steps"?`},
	{name: "rollout steps not list", in: `{"name":"a","entry":"a.js","rollout":{"steps":{"percent":100}}}`, fields: []string{"rollout.steps"}},
	{name: "rollout empty steps", in: `{"name":"a","entry":"a.js","rollout":{"steps":[]}}`, fields: []string{"rollout.steps"}, text: "is empty"},
	{name: "rollout percent out of range", in: `{"name":"a","entry":"a.js","rollout":{"steps":[{"percent":0},{"percent":101},{"percent":-5},{"percent":"50"}]}}`,
		fields: []string{"rollout.steps[0].percent", "rollout.steps[1].percent", "rollout.steps[2].percent", "rollout.steps[3].percent"}},
	{name: "rollout step missing percent", in: `{"name":"a","entry":"a.js","rollout":{"steps":[{"pause_seconds":5},null,7]}}`,
		fields: []string{"rollout.steps[0].percent", "rollout.steps[1]", "rollout.steps[2]"}},
	{name: "rollout not increasing", in: `{"name":"a","entry":"a.js","rollout":{"steps":[{"percent":50},{"percent":50},{"percent":100}]}}`,
		fields: []string{"rollout.steps[1].percent"}, text: "not above the step before"},
	{name: "rollout does not end at 100", in: `{"name":"a","entry":"a.js","rollout":{"steps":[{"percent":10},{"percent":50}]}}`,
		fields: []string{"rollout.steps[1].percent"}, text: "end with a step of 100 percent"},
	{name: "rollout pause out of range", in: `{"name":"a","entry":"a.js","rollout":{"steps":[{"percent":100,"pause_seconds":604801}]}}`,
		fields: []string{"rollout.steps[0].pause_seconds"}},
	{name: "rollout too many steps", in: `{"name":"a","entry":"a.js","rollout":{"steps":[` + strings.Repeat(`{"percent":1},`, 20) + `{"percent":100}]}}`,
		fields: []string{"rollout.steps"}, text: "above the maximum 20"},
	{name: "rollout duplicate step field", in: `{"name":"a","entry":"a.js","rollout":{"steps":[{"percent":10,"percent":100}]}}`,
		fields: []string{"rollout.steps[0].percent"}, text: "appears more than once"},

	{name: "test command", in: `{"name":"a","entry":"a.js","test":"python3 -m pytest -q"}`, check: func(t *testing.T, m Manifest) {
		if m.Test != "python3 -m pytest -q" {
			t.Errorf("test = %q", m.Test)
		}
	}},
	{name: "test command bad", in: `{"name":"a","entry":"a.js","test":"a\nb"}`, fields: []string{"test"}, text: "one line"},
	{name: "test command blank", in: `{"name":"a","entry":"a.js","test":"   "}`, fields: []string{"test"}, text: "blank"},
	{name: "test command long", in: `{"name":"a","entry":"a.js","test":"` + strings.Repeat("x", MaxTestCommand+1) + `"}`, fields: []string{"test"}},
	{name: "test command type", in: `{"name":"a","entry":"a.js","test":["pytest"]}`, fields: []string{"test"}},
	{name: "syntax error", in: "{\n  \"name\": \"a\",\n  \"entry\": \"a.js\"\n  \"runtime\": \"js\"\n}", fields: []string{""}, text: "line 4, column 3: invalid JSON"},
	{name: "truncated", in: `{"name":"a",`, fields: []string{""}, text: "unexpected end"},
	{name: "trailing data", in: `{"name":"a","entry":"a.js"} {}`, fields: []string{""}, text: "line 1, column 29"},
	{name: "not an object", in: `["name"]`, fields: []string{""}, text: "got a list, want a JSON object"},
	{name: "null document", in: `null`, fields: []string{""}},
	{name: "empty document", in: ``, fields: []string{""}},
	{name: "bom", in: "\ufeff{}", fields: []string{""}, text: "byte order mark"},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.in))
			if tc.fields == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tc.check != nil {
					tc.check(t, m)
				}
				return
			}
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("got %v (%T), want a *ManifestError", err, err)
			}
			if !errors.Is(err, ErrInvalidManifest) {
				t.Errorf("error does not match ErrInvalidManifest")
			}
			var got []string
			for _, p := range me.Problems {
				got = append(got, p.Field)
				if p.Problem == "" || p.Fix == "" {
					t.Errorf("problem without text or fix: %+v", p)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.fields))
			if !slices.Equal(got, want) {
				t.Errorf("fields with problems:\n got %q\nwant %q\nerror: %v", got, want, err)
			}
			if tc.text != "" && !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error text lacks %q:\n%v", tc.text, err)
			}
			if !reflect.DeepEqual(m, Manifest{}) {
				t.Errorf("got a manifest with an error: %+v", m)
			}
		})
	}
}

func TestParseErrorText(t *testing.T) {
	in := "{\n  \"name\": \"Bad Name\",\n  \"entry\": \"a.js\",\n  \"limits\": {\"memory_mib\": 5000}\n}"
	_, err := Parse([]byte(in))
	want := `agent.json: 2 problems:
  name: "Bad Name" is not a valid agent name; use 1 to 63 lowercase letters, digits and '-', starting with a letter, such as "bad-name" (line 2, column 11)
  limits.memory_mib: 5000 is above the maximum 1024; use a value from 4 to 1024 (line 4, column 28)`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
	var me *ManifestError
	if !errors.As(err, &me) {
		t.Fatal("not a *ManifestError")
	}
	p, ok := me.Field("limits.memory_mib")
	if !ok || p.Line != 4 || p.Column != 28 {
		t.Errorf("Field(limits.memory_mib) = %+v, %v", p, ok)
	}
}

func TestParseSyntaxErrorUnwraps(t *testing.T) {
	_, err := Parse([]byte("{\n\t\"name\": \"é\" x}"))
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		t.Fatalf("errors.As(*json.SyntaxError) failed on %v", err)
	}
	var me *ManifestError
	errors.As(err, &me)
	if p := me.Problems[0]; p.Line != 2 || p.Column != 14 {
		t.Errorf("position = line %d, column %d; want 2, 14 (columns count characters)", p.Line, p.Column)
	}
}

func TestParseRoundTrip(t *testing.T) {
	for _, tc := range parseCases {
		if tc.fields != nil {
			continue
		}
		m, err := Parse([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		checkRoundTrip(t, m)
	}
}

// checkRoundTrip asserts that a parsed manifest marshals to one that parses
// back to the same value.
func checkRoundTrip(t *testing.T, m Manifest) {
	t.Helper()
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(out)
	if err != nil {
		t.Fatalf("re-parse %s: %v", out, err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("round trip changed the manifest:\n%+v\n%+v", m, m2)
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Hello World": "hello-world", "my_agent!!": "my-agent", "42": "agent-42", "!!!": "", "--a--": "a",
		strings.Repeat("x", 70): strings.Repeat("x", 63),
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
