package strictjson

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
)

var checkCases = []struct {
	name, in string
	field    string // "" with ok
	ok       bool
}{
	{"object", `{"a":1,"b":[1,2,{"c":null}]}`, "", true},
	{"scalar", `42`, "", true},
	{"null", `null`, "", true},
	{"same key in sibling objects", `[{"a":1},{"a":2}]`, "", true},
	{"same key at two depths", `{"a":{"a":1}}`, "", true},
	{"duplicate top", `{"tier":"process","tier":"gvisor"}`, "tier", false},
	{"duplicate nested", `{"x":{"y":1,"y":2}}`, "x.y", false},
	{"duplicate in array element", `{"l":[{"k":1},{"k":1,"k":2}]}`, "l[1].k", false},
	{"duplicate after nested", `{"a":{"b":1},"a":2}`, "a", false},
	{"escaped duplicate", `{"a":1,"\u0061":2}`, "a", false},
	{"trailing", `{} {}`, "", false},
	{"empty", ``, "", false},
	{"truncated", `{"a":`, "", false},
	{"bad syntax", `{"a" 1}`, "", false},
	{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "", false},
	{"deep enough", strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), "", true},
}

func TestCheck(t *testing.T) {
	for _, c := range checkCases {
		err := Check([]byte(c.in))
		if (err == nil) != c.ok {
			t.Errorf("%s: Check(%.40s) = %v, want ok=%v", c.name, c.in, err, c.ok)
			continue
		}
		if err != nil {
			p := api.AsProblem(err)
			if p.Kind() != api.KindInvalidJSON || p.Status != 400 {
				t.Errorf("%s: problem %+v", c.name, p)
			}
			if c.field != "" && p.Field != c.field {
				t.Errorf("%s: field %q, want %q", c.name, p.Field, c.field)
			}
		}
	}
}

func TestDecode(t *testing.T) {
	type req struct {
		Tier string `json:"tier"`
		N    int    `json:"n"`
	}
	var r req
	if err := Decode([]byte(`{"tier":"gvisor","n":2}`), &r); err != nil || r.Tier != "gvisor" || r.N != 2 {
		t.Fatalf("decode: %+v %v", r, err)
	}
	for in, field := range map[string]string{
		`null`:                               "",
		` null `:                             "",
		`{"tier":"process","tier":"gvisor"}`: "tier",
		`{"colour":"red"}`:                   "colour",
		`{"n":"2"}`:                          "n",
		`[1]`:                                "",
	} {
		err := Decode([]byte(in), &r)
		p := api.AsProblem(err)
		if err == nil || p.Kind() != api.KindInvalidJSON || p.Field != field {
			t.Errorf("Decode(%s): %v (field %q), want invalid-json on %q", in, err, p.Field, field)
		}
	}
}

// FuzzCheck: Check never panics, accepts only valid JSON, and refuses valid
// JSON only for a duplicate key or depth.
func FuzzCheck(f *testing.F) {
	for _, c := range checkCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Check([]byte(s))
		valid := json.Valid([]byte(s))
		if err == nil && !valid {
			t.Fatalf("accepted invalid JSON %q", s)
		}
		if err != nil && valid {
			d := api.AsProblem(err).Detail
			if !strings.Contains(d, "duplicate key") && !strings.Contains(d, "nests deeper") {
				t.Fatalf("refused valid JSON %q: %v", s, err)
			}
		}
	})
}
