package pipeline

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/security"
)

// FuzzSecretTargetCheck: any proposed secret metadata is refused with a
// validation problem or accepted in a canonical form that checks again to
// the same bytes; its items never carry more than hosts and allow_http.
func FuzzSecretTargetCheck(f *testing.F) {
	for _, s := range []string{`{"allow_hosts":["a.example.com"]}`, `{"allow_hosts":["B.example.com","a.example.com","a.example.com"],"allow_http":true}`,
		`{"allow_hosts":[]}`, `{"allow_hosts":"x"}`, `{"allow_hosts":["bad host"]}`, `{"allow_hosts":["*.example.com:8443"]}`, `[]`, `null`, `{"value":"s3cret"}`} {
		f.Add(s)
	}
	tg := SecretTarget{Validate: security.CheckSecretMetadata}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := tg.Check(context.Background(), "k", json.RawMessage(s))
		if err != nil {
			if !api.IsKind(err, api.KindValidation) {
				t.Fatalf("%q: %v, want a validation problem", s, err)
			}
			return
		}
		again, err := tg.Check(context.Background(), "k", v.Value)
		if err != nil || string(again.Value) != string(v.Value) {
			t.Fatalf("canonical %s checks to %s %v", v.Value, again.Value, err)
		}
		var m map[string]any
		_ = json.Unmarshal(v.Value, &m)
		for k := range m {
			if k != "allow_hosts" && k != "allow_http" {
				t.Fatalf("canonical value keeps %q: %s", k, v.Value)
			}
		}
	})
}
