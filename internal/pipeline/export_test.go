package pipeline

import (
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/session"
)

// TestEnv exposes the test node to the external tests (pipeline_test),
// which use jstest (itself importing this package).
type TestEnv struct{ e *env }

// SharedRuntime is the test binary's isolate runtime.
func SharedRuntime() *isolate.Runtime { return testRuntime }

// OpenTestEnv opens a started test node in dir; tester, if set, makes the
// test stage's Tester from the node's session manager.
func OpenTestEnv(t testing.TB, dir string, tester func(*session.Manager) Tester, more ...func(*Config)) *TestEnv {
	e := openEnv(t, dir, func(e *env, c *Config) {
		if tester != nil {
			c.Tester = tester(e.sessions)
		}
		for _, m := range more {
			m(c)
		}
	})
	e.start(t)
	return &TestEnv{e}
}

func (te *TestEnv) Runner() *Runner                              { return te.e.runner }
func (te *TestEnv) Sessions() *session.Manager                   { return te.e.sessions }
func (te *TestEnv) Ledger() *ledger.Ledger                       { return te.e.ledger }
func (te *TestEnv) Serving(t testing.TB, agent string) string    { return te.e.serving(t, agent) }
func (te *TestEnv) Wait(t testing.TB, id string) api.PipelineRun { return te.e.wait(t, id) }

var (
	Alice = alice
	Bob   = bob
	Bot   = botAgt
)
