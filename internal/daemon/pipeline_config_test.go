package daemon_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
)

// TestConfigChangeThroughPipelineClass: changes of the policy set and of
// the trusted and private hosts are pipeline runs. An administrator's own
// change applies at once (201, a passed run recorded in the ledger); a
// value that does not validate is 400 naming the field, with no run and
// nothing changed; a change by someone else who may make it (alice, given
// policy.apply) waits for review (202) and changes nothing until an
// administrator approves — not its author, not another tenant; the
// ledger verifies at the end.
func TestConfigChangeThroughPipelineClass(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	alice := userClient(t, d, admin, "user:alice")
	bob := userClient(t, d, admin, "user:bob")

	th, err := admin.ChangeTrustedHosts(ctx, []string{"docs.example.com", "API.example.com"})
	if err != nil || th.RunState != api.RunPassed || th.Run == "" {
		t.Fatalf("admin's trusted hosts: %+v %v", th, err)
	}
	run, err := admin.PipelineRun(ctx, th.Run)
	if err != nil || run.Kind != api.RunKindConfig || run.Config.Target != api.ConfigTrustedHosts || run.Ledger["config"].Hash == "" {
		t.Fatalf("run %+v %v", run, err)
	}
	if got, _ := admin.TrustedHosts(ctx); !slices.Equal(got, []string{"api.example.com", "docs.example.com"}) {
		t.Fatalf("trusted hosts %v", got)
	}
	runs, _ := admin.PipelineRuns(ctx, "", 0)

	// Values that do not validate: 400 naming the field; no run, no change.
	_, err = admin.ChangeTrustedHosts(ctx, []string{"ok.example.com", "bad host!"})
	wantKind(t, "a bad host pattern", err, api.KindValidation, "bad host")
	if p := api.AsProblem(err); p.Field != "hosts[1]" {
		t.Errorf("field %q, want hosts[1]", p.Field)
	}
	_, err = admin.ApplyPolicies(ctx, "@id(\"x\")\npermit (principal, action, resource)\nwhen { principal.nope == 1 ;")
	wantKind(t, "a policy syntax error", err, api.KindValidation, "line 3")
	if got, _ := admin.PipelineRuns(ctx, "", 0); len(got) != len(runs) {
		t.Fatalf("refused changes made %d runs", len(got)-len(runs))
	}
	if got, _ := admin.TrustedHosts(ctx); len(got) != 2 {
		t.Fatalf("trusted hosts %v after a refused change", got)
	}

	// The administrator lets alice change the host lists: a policy change
	// through its own run.
	ps, err := admin.ApplyPolicies(ctx, `@id("alice-applies") permit (principal == User::"alice", action == Action::"policy.apply", resource);`)
	if err != nil || ps.Version != 1 || ps.RunState != api.RunPassed {
		t.Fatalf("policies: %+v %v", ps, err)
	}
	_, err = bob.ChangePrivateHosts(ctx, []string{"bob.example.com"})
	wantKind(t, "bob changing the private hosts", err, api.KindForbidden, "")

	ph, err := alice.ChangePrivateHosts(ctx, []string{"crm.example.com"})
	if err != nil || ph.RunState != api.RunWaiting {
		t.Fatalf("alice's private hosts: %+v %v", ph, err)
	}
	hostileTenant(t, bob, ph.Run)
	if _, err := alice.ApproveRun(ctx, ph.Run, "mine"); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("alice approving her own change: %v", err)
	}
	if got, _ := admin.PrivateHosts(ctx); len(got) != 0 {
		t.Fatalf("private hosts %v before the review", got)
	}
	if _, err := admin.ApproveRun(ctx, ph.Run, "ok"); err != nil {
		t.Fatal(err)
	}
	done, err := admin.WaitRun(ctx, ph.Run)
	if err != nil || done.State != api.RunPassed || done.Ledger["approval"].Hash == "" {
		t.Fatalf("approved run %+v %v", done, err)
	}
	if got, _ := admin.PrivateHosts(ctx); !slices.Equal(got, []string{"crm.example.com"}) {
		t.Fatalf("private hosts %v after the review", got)
	}
	diff, err := admin.PipelineDiff(ctx, ph.Run)
	if err != nil || len(diff.Files) != 1 || !strings.Contains(diff.Files[0].Diff, "+crm.example.com") {
		t.Fatalf("diff %+v %v", diff, err)
	}
	if _, err := admin.LedgerVerify(ctx); err != nil {
		t.Fatalf("ledger verify: %v", err)
	}
}
