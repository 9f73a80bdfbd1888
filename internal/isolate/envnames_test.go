package isolate

import (
	"encoding/json"
	"testing"

	"github.com/agentcloud/agentcloud/internal/bundle"
)

// TestEnvBindingsReserved: every key the prelude sets on env is reserved
// in manifests (bundle.ReservedEnv), so a manifest's env values cannot
// replace a binding.
func TestEnvBindingsReserved(t *testing.T) {
	var keys []string
	if err := json.Unmarshal([]byte(evalJS(t, `Object.keys(env)`)), &keys); err != nil || len(keys) < 5 {
		t.Fatalf("env keys %v, %v", keys, err)
	}
	for _, k := range keys {
		if !bundle.ReservedEnv(k) {
			t.Errorf("env.%s is set by the prelude but not reserved in internal/bundle (reservedEnv)", k)
		}
	}
}
