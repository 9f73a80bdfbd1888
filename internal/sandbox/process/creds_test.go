//go:build linux

package process

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// threadCreds reads the credentials of every thread of host process pid,
// as the host sees them: one map of status field (Uid, Gid, Groups,
// CapEff, CapPrm) to its value per thread.
func threadCreds(t *testing.T, pid int) []map[string]string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/status")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	var out []map[string]string
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for l := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
			if ok {
				m[k] = strings.Join(strings.Fields(v), " ")
			}
		}
		out = append(out, m)
	}
	return out
}

// TestInitCredentialsClass: a pooled sandbox's init has dropped its
// supplementary groups and its gids to the sandbox's on every thread while
// it waits for a claim (sbinit's dropGroups, at setup), and still holds
// uid 0 of its namespace to mount at activation; once activated, every
// thread of it has the sandbox user's uids and gids, no group and no
// capability, and so does a command it runs (uid, gid, groups as the
// sandbox sees them). The gids were dropped at activation before, the
// first half of this test failed then.
func TestInitCredentialsClass(t *testing.T) {
	tier := newTestTier(t)
	pr, err := tier.Prepare(sandbox.ForPool(t.Context()), sandbox.TemplateHost)
	if err != nil {
		t.Fatal(err)
	}
	b := pr.(*box)
	base := b.hostUID - sandbox.SandboxUID
	gid := strconv.Itoa(b.hostGID)
	root := strconv.Itoa(base)
	for i, th := range threadCreds(t, b.pid) {
		if want := strings.Repeat(gid+" ", 3) + gid; th["Gid"] != want {
			t.Errorf("pooled init thread %d: Gid %q, want %q", i, th["Gid"], want)
		}
		if th["Groups"] != "" {
			t.Errorf("pooled init thread %d: Groups %q, want none", i, th["Groups"])
		}
		if want := strings.Repeat(root+" ", 3) + root; th["Uid"] != want {
			t.Errorf("pooled init thread %d: Uid %q, want %q (root of its namespace until activation)", i, th["Uid"], want)
		}
	}

	sb, err := pr.Activate(t.Context(), "creds-a", sandbox.Spec{})
	if err != nil {
		_ = pr.Discard()
		t.Fatal(err)
	}
	defer sb.Close()
	uid := strconv.Itoa(b.hostUID)
	threads := threadCreds(t, b.pid)
	if len(threads) < 8 {
		t.Errorf("init has %d threads, want its prestarted ones (prestartThreads)", len(threads))
	}
	for i, th := range threads {
		for k, want := range map[string]string{
			"Uid": strings.Repeat(uid+" ", 3) + uid, "Gid": strings.Repeat(gid+" ", 3) + gid, "Groups": "",
			"CapEff": "0000000000000000", "CapPrm": "0000000000000000",
		} {
			if th[k] != want {
				t.Errorf("activated init thread %d: %s %q, want %q", i, k, th[k], want)
			}
		}
	}
	var out bytes.Buffer
	code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "id -u; id -g; id -G"}}, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("id: %d %v %q", code, err, out.String())
	}
	if got, want := strings.Fields(out.String()), []string{"1000", "1000", "1000"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("id in the sandbox: %q, want uid, gid and groups %v", out.String(), want)
	}
}

// TestInitStartsWithSandboxGID: the spawner starts an init with no
// supplementary groups and the sandbox user's gids (uid 0 of its
// namespace still), so that its setup has no credentials to change on
// every thread (sbinit's dropGroups only checks them then). Before, init
// started with gid 0 of its namespace and this test failed.
func TestInitStartsWithSandboxGID(t *testing.T) {
	tier := newTestTier(t)
	cg, err := tier.cg.get()
	if err != nil {
		t.Fatal(err)
	}
	b, err := tier.startInit(t.Context(), cg)
	if err != nil {
		tier.release(cg)
		t.Fatal(err)
	}
	defer b.destroy()
	base := b.hostUID - sandbox.SandboxUID
	gid, root := strconv.Itoa(b.hostGID), strconv.Itoa(base)
	for i, th := range threadCreds(t, b.pid) {
		if want := strings.Repeat(gid+" ", 3) + gid; th["Gid"] != want {
			t.Errorf("new init thread %d: Gid %q, want %q", i, th["Gid"], want)
		}
		if th["Groups"] != "" {
			t.Errorf("new init thread %d: Groups %q, want none", i, th["Groups"])
		}
		if want := strings.Repeat(root+" ", 3) + root; th["Uid"] != want {
			t.Errorf("new init thread %d: Uid %q, want %q", i, th["Uid"], want)
		}
	}
}

// TestPoolWarmThenClaimClass: a sandbox prepared for a pool signals all
// of init's threads once after its setup reply (sbinit's warmThreads), so
// a claim can come while that runs. Claimed at once, every thread must
// still end with the sandbox user's credentials and commands run; one
// discarded at once must see its init exit (EOF during the warm-up), and
// a cold prepare, which does not warm, must activate the same way.
func TestPoolWarmThenClaimClass(t *testing.T) {
	tier := newTestTier(t)
	for i := range 6 {
		ctx := t.Context()
		if i%2 == 0 {
			ctx = sandbox.ForPool(ctx)
		}
		pr, err := tier.Prepare(ctx, sandbox.TemplateHost)
		if err != nil {
			t.Fatal(err)
		}
		gone, err := tier.Prepare(ctx, sandbox.TemplateHost)
		if err != nil {
			_ = pr.Discard()
			t.Fatal(err)
		}
		if err := gone.Discard(); err != nil {
			t.Errorf("round %d: discard during the warm-up: %v", i, err)
		}
		select {
		case <-gone.(*box).done:
		default:
			t.Errorf("round %d: a discarded init is still running", i)
		}
		sb, err := pr.Activate(t.Context(), "warm-"+strconv.Itoa(i), sandbox.Spec{})
		if err != nil {
			_ = pr.Discard()
			t.Fatal(err)
		}
		b := pr.(*box)
		uid, gid := strconv.Itoa(b.hostUID), strconv.Itoa(b.hostGID)
		for j, th := range threadCreds(t, b.pid) {
			if want := strings.Repeat(uid+" ", 3) + uid; th["Uid"] != want {
				t.Errorf("round %d: thread %d: Uid %q, want %q", i, j, th["Uid"], want)
			}
			if want := strings.Repeat(gid+" ", 3) + gid; th["Gid"] != want || th["Groups"] != "" || th["CapEff"] != "0000000000000000" {
				t.Errorf("round %d: thread %d: Gid %q Groups %q CapEff %q, want %q, none, none", i, j, th["Gid"], th["Groups"], th["CapEff"], want)
			}
		}
		var out bytes.Buffer
		if code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "id", Args: []string{"-u"}}, &out, &out); err != nil || code != 0 || strings.TrimSpace(out.String()) != "1000" {
			t.Errorf("round %d: id -u: %d %v %q", i, code, err, out.String())
		}
		_ = sb.Close()
	}
}
