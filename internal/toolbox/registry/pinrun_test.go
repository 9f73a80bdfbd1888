package registry

import (
	"encoding/json"
	"testing"

	"github.com/agentcloud/agentcloud/api"
)

// FuzzCheckPins: any tool-pins value is refused with a validation problem
// or accepted in a canonical form that checks again to itself.
func FuzzCheckPins(f *testing.F) {
	d := Definition{Name: "add", Description: "Add two numbers.", InputSchema: json.RawMessage(`{"type":"object"}`)}
	h, _ := Hash(d)
	good, _ := json.Marshal([]api.ToolPin{{Name: "add", Hash: h, Description: d.Description, InputSchema: d.InputSchema}})
	for _, s := range []string{string(good), `[]`, `[{"name":"add","hash":"x"}]`, `[{"name":"a b"}]`, `[{"name":"add","description":"\u200b"}]`,
		`[{"name":"add","inputSchema":{"b":1,"a":[1,2]}}]`, `[{},{}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var pins []api.ToolPin
		if json.Unmarshal([]byte(s), &pins) != nil {
			return
		}
		out, err := CheckPins(pins)
		if err != nil {
			if !api.IsKind(err, api.KindValidation) {
				t.Fatalf("%q: %v, want a validation problem", s, err)
			}
			return
		}
		again, err := CheckPins(out)
		a, _ := json.Marshal(out)
		b, _ := json.Marshal(again)
		if err != nil || string(a) != string(b) {
			t.Fatalf("canonical form does not check to itself: %s / %s %v", a, b, err)
		}
	})
}
