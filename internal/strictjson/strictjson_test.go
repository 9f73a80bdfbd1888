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

// FuzzQuickCheckAgrees: the allocation-free pass never accepts what the
// token walk refuses (it may only send a body on to the walk).
func FuzzQuickCheckAgrees(f *testing.F) {
	for _, c := range checkCases {
		f.Add(c.in)
	}
	for _, s := range quickCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if quickCheck([]byte(s)) {
			if err := walk([]byte(s)); err != nil {
				t.Fatalf("quick pass accepted %q, the walk refuses it: %v", s, err)
			}
		}
	})
}

// quickCases are bodies whose keys need care: escapes, invalid UTF-8,
// objects past the small-object size, keys after nested objects.
var quickCases = []string{
	`{"a":1,"\u0061":2}`,
	"{\"\xff\":1,\"\xfe\":2}",
	`{"a\"b":1,"a\"b":2}`,
	`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k3":3}`,
	`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":{"k17":1},"k18":[{"k0":1}]}`,
	`{"a":{"b":1,"c":{"b":2}},"b":{"a":1},"a":3}`,
	`[{"a":1,"a":2}]`,
	`{"a":"x,y","b":"}","a":1}`,
}

// TestQuickCheckClass: on every case the quick pass and Check give the
// token walk's verdict, and the quick pass alone decides the clean ones.
func TestQuickCheckClass(t *testing.T) {
	all := append([]string{}, quickCases...)
	for _, c := range checkCases {
		all = append(all, c.in)
	}
	for _, s := range all {
		want := walk([]byte(s))
		got := Check([]byte(s))
		if (got == nil) != (want == nil) {
			t.Errorf("Check(%.60q) = %v, the walk says %v", s, got, want)
		}
		if quickCheck([]byte(s)) && want != nil {
			t.Errorf("quick pass accepted %.60q: %v", s, want)
		}
	}
	for _, s := range []string{`{"tier":"process","n":2,"tags":{"a":"b"},"l":[1,{"x":null}]}`, quickCases[4]} {
		if !quickCheck([]byte(s)) {
			t.Errorf("quick pass sent the clean body %.60q on to the walk", s)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	body := []byte(`{"type":"change","time":"2026-01-02T03:04:05Z","change":{"agent":"billing","version":"v1","bundle_digest":"sha256:00","author":{"id":"spiffe://agentcloud.local/user/alice","labels":{"team":"payments"}}}}`)
	for _, fn := range []struct {
		name string
		f    func([]byte) error
	}{{"walk", walk}, {"check", Check}} {
		b.Run(fn.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := fn.f(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
