package bundle

import (
	"errors"
	"strings"
	"testing"
)

// TestReservedEnvNamesClass: a manifest env key that names a runtime
// binding (env.state, env.session, env.tools, env.ai, env.sandbox,
// env.secrets) is refused naming the field, since configure would replace
// the binding with the string; other names pass. internal/isolate checks
// that every binding its prelude sets is reserved here.
func TestReservedEnvNamesClass(t *testing.T) {
	for _, name := range []string{"state", "session", "tools", "ai", "sandbox", "secrets"} {
		if !ReservedEnv(name) {
			t.Errorf("ReservedEnv(%q) = false", name)
		}
		_, err := Parse([]byte(`{"name":"a","entry":"index.js","env":{"` + name + `":"x"}}`))
		var me *ManifestError
		if !errors.As(err, &me) || len(me.Problems) != 1 || me.Problems[0].Field != "env."+name || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("env.%s: %v", name, err)
		}
	}
	for _, name := range []string{"STATE", "ai_model", "Sandbox", "MODE"} {
		if ReservedEnv(name) {
			t.Errorf("ReservedEnv(%q) = true", name)
		}
		if _, err := Parse([]byte(`{"name":"a","entry":"index.js","env":{"` + name + `":"x"}}`)); err != nil {
			t.Errorf("env.%s: %v", name, err)
		}
	}
}
