package registry

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestCanonicalAndHash(t *testing.T) {
	a := Definition{Name: "n", Description: "d <b>", InputSchema: json.RawMessage(`{ "b": 2, "a": {"y": 1.50, "x": [3, 1]} }`)}
	got, err := Canonical(a)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"description":"d <b>","inputSchema":{"a":{"x":[3,1],"y":1.50},"b":2},"name":"n"}`; string(got) != want {
		t.Fatalf("canonical\n got %s\nwant %s", got, want)
	}
	b := a
	b.InputSchema = json.RawMessage(`{"a":{"x":[3,1],"y":1.50},"b":2}`)
	ha, _ := Hash(a)
	hb, _ := Hash(b)
	if ha != hb || !strings.HasPrefix(ha, "sha256:") || len(ha) != len("sha256:")+64 {
		t.Fatalf("whitespace and key order must not change the hash: %s %s", ha, hb)
	}
	for _, c := range []Definition{
		{Name: "n2", Description: a.Description, InputSchema: a.InputSchema},
		{Name: "n", Description: "d <b>.", InputSchema: a.InputSchema},
		{Name: "n", Description: a.Description, InputSchema: json.RawMessage(`{"a":{"x":[1,3],"y":1.50},"b":2}`)},
	} {
		if h, _ := Hash(c); h == ha {
			t.Errorf("%+v hashes like the original", c)
		}
	}
	if _, err := Hash(Definition{Name: "x", InputSchema: json.RawMessage(`{bad`)}); err == nil {
		t.Fatal("a schema that is not JSON must not hash")
	}
}

func def(name, desc string) Definition {
	return Definition{Name: name, Description: desc, InputSchema: json.RawMessage(`{"type":"object"}`)}
}

func status(pins []Pinned) map[string]string {
	m := map[string]string{}
	for _, p := range pins {
		m[p.Name] = p.Status + ":" + p.Reason
	}
	return m
}

func TestReconcileAndApprove(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pins, err := pinAll([]Definition{def("b", "B"), def("a", "A"), def("gone", "G")})
	if err != nil || pins[0].Name != "a" || pins[0].Status != StatusOK {
		t.Fatalf("pinAll: %+v %v", pins, err)
	}
	schema := def("b", "B")
	schema.InputSchema = json.RawMessage(`{"type":"object","properties":{"x":{}}}`)
	up := []Definition{def("a", "A"), schema, def("new", "N"), def("hid", "x\u200by")}
	pins = append(pins, Pinned{Definition: def("hid", "xy"), Status: StatusOK})
	pins[len(pins)-1].Hash, _ = Hash(def("hid", "xy"))
	out, notes, err := reconcile(pins, up, now)
	if err != nil {
		t.Fatal(err)
	}
	st := status(out)
	if st["a"] != "ok:" {
		t.Errorf("unchanged a: %s", st["a"])
	}
	if !strings.HasPrefix(st["b"], "quarantined:changed upstream since pinned: input schema") {
		t.Errorf("changed b: %s", st["b"])
	}
	if !strings.HasPrefix(st["new"], "quarantined:new tool") {
		t.Errorf("new: %s", st["new"])
	}
	if !strings.Contains(st["hid"], "U+200B") {
		t.Errorf("hidden: %s", st["hid"])
	}
	if _, ok := st["gone"]; ok || len(notes) != 1 || notes[0] != `2026-01-02T03:04:05Z: tool "gone" removed upstream` {
		t.Errorf("removed: %v %v", st, notes)
	}
	for _, p := range out {
		if p.Name == "b" && p.Description != "B" && string(p.InputSchema) != `{"type":"object"}` {
			t.Errorf("a quarantined tool keeps its pinned definition: %+v", p)
		}
	}

	// Reverting upstream restores the pin without an approval.
	again, _, _ := reconcile(out, []Definition{def("a", "A"), def("b", "B")}, now)
	if st := status(again); st["b"] != "ok:" {
		t.Errorf("reverted b: %s", st["b"])
	}

	if _, _, err := approve(out, []string{"hid"}); err == nil || !strings.Contains(err.Error(), "U+200B") {
		t.Errorf("approving a hidden-character definition: %v", err)
	}
	if _, _, err := approve(out, []string{"nope"}); err == nil {
		t.Error("approving an unknown tool must fail")
	}
	ap, done, err := approve(out, []string{"b", "new"})
	if err != nil || strings.Join(done, ",") != "b,new" {
		t.Fatalf("approve: %v %v", done, err)
	}
	st = status(ap)
	if st["b"] != "ok:" || st["new"] != "ok:" || !strings.HasPrefix(st["hid"], "quarantined") {
		t.Fatalf("after approve: %v", st)
	}
	for _, p := range ap {
		if p.Name == "b" {
			if h, _ := Hash(schema); p.Hash != h || p.Pending != nil {
				t.Fatalf("b re-pinned to %+v", p)
			}
		}
	}
	// An endpoint move quarantines an OpenAPI tool even with the same text.
	op := def("op", "O")
	op.Op = &Operation{Method: "GET", Server: "http://a", Path: "/x"}
	opPins, _ := pinAll([]Definition{op})
	moved := op
	moved.Op = &Operation{Method: "GET", Server: "http://evil", Path: "/x"}
	res, _, _ := reconcile(opPins, []Definition{moved}, now)
	if !strings.Contains(res[0].Reason, "endpoint (GET http://a/x -> GET http://evil/x)") {
		t.Fatalf("moved endpoint: %+v", res[0])
	}
}
