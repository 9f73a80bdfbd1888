//go:build linux

package gvisor

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestParkedForkClass: a paused fork of a gVisor sandbox (workspaces on
// host storage, as the daemon runs it) makes copies that run nothing: each
// is listed paused and holds links to the one checkpoint image. Resuming a
// copy restores the source's memory (a process whose token lives only in
// memory answers the same token) and its files, and the copies are their
// own (a write in one is in no other, nor in the source). After the tier
// and Manager stop and start again (a restart), the other copy is still
// paused and resumes with the same memory; one whose image was lost comes
// back stopped and starts fresh over its files; a resumed copy with a stale
// parked/ beside it is not taken for a parked one (its files kept). A
// parked copy cannot be paused, snapshotted or forked (clear errors);
// deleting one removes its files; the fork's shared directory is gone once
// the fork returns.
func TestParkedForkClass(t *testing.T) {
	ctx := t.Context()
	data := t.TempDir()
	dir := filepath.Join(data, "sandboxes")
	up := hostWSNode(t, data)
	tier, m := up()
	if !tier.egress {
		t.Skip("runsc without --host-uds: no exec agent, no checkpoint with it")
	}
	src, err := m.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.WriteFile(ctx, "/workspace/seed.txt", strings.NewReader("seed"), 0o644); err != nil {
		t.Fatal(err)
	}
	startTokenProcess(ctx, t, src)
	token := askToken(ctx, t, "source", src)
	copies, err := m.ForkWith(ctx, src.ID(), sandbox.ForkOptions{Count: 3, Parked: true})
	if err != nil || len(copies) != 3 {
		t.Fatalf("parked fork: %v %v", copies, err)
	}
	ids := make([]string, 3)
	for i, c := range copies {
		if c.Err != nil || c.Sandbox != nil || c.ID == "" {
			t.Fatalf("copy %d: %+v", i, c)
		}
		ids[i] = c.ID
		info, err := m.Info(c.ID)
		if err != nil || info.State != sandbox.StatePaused || !strings.Contains(info.Reason, "memory") {
			t.Fatalf("copy %d: %+v %v", i, info, err)
		}
		if _, err := m.Get(c.ID); !errors.Is(err, sandbox.ErrPaused) || !strings.Contains(err.Error(), "not yet run") {
			t.Fatalf("copy %d runs something before it is resumed: %v", i, err)
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, ".fork-*")); len(ents) != 0 {
		t.Fatalf("the fork's own directory stayed: %v", ents)
	}
	// One image, linked by both copies.
	img := filepath.Join(dir, ids[0], "parked", sandbox.SnapshotMemory)
	ents, err := os.ReadDir(img)
	if err != nil || len(ents) == 0 {
		t.Fatalf("copy's memory image: %v %v", ents, err)
	}
	a, errA := os.Stat(filepath.Join(img, ents[0].Name()))
	b, errB := os.Stat(filepath.Join(dir, ids[1], "parked", sandbox.SnapshotMemory, ents[0].Name()))
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Fatalf("the copies' images are not one file: %v %v", errA, errB)
	}
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"pause", func() error { return m.Pause(ctx, ids[0]) }},
		{"fork", func() error { _, err := m.ForkWith(ctx, ids[0], sandbox.ForkOptions{Count: 1}); return err }},
		{"snapshot", func() error { _, err := m.Snapshot(ctx, ids[0], filepath.Join(t.TempDir(), "s")); return err }},
	} {
		if err := op.do(); !errors.Is(err, sandbox.ErrPaused) {
			t.Errorf("%s of a parked copy: %v, want ErrPaused (409: resume it first)", op.name, err)
		}
	}

	if err := m.Resume(ctx, ids[0]); err != nil {
		t.Fatalf("resume a parked copy: %v", err)
	}
	c0, err := m.Get(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := askToken(ctx, t, "resumed copy", c0); got != token {
		t.Errorf("resumed copy answered %q, want the source's %q", got, token)
	}
	if out := catFiles(t, c0); out != "seed" {
		t.Errorf("resumed copy's files: %q", out)
	}
	if err := c0.WriteFile(ctx, "/workspace/own.txt", strings.NewReader("own"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ids[0], "parked")); !os.IsNotExist(err) {
		t.Errorf("a resumed copy kept its links: %v", err)
	}
	if err := m.Delete(ctx, src.ID()); err != nil {
		t.Fatal(err)
	}
	// A parked/ left behind by an unpark cut short must not make a resumed
	// copy parked again at the next start (it would be refilled from it).
	if err := os.MkdirAll(filepath.Join(dir, ids[0], "parked", sandbox.SnapshotMemory), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	// A copy whose memory image is gone starts fresh over its files.
	if err := os.RemoveAll(filepath.Join(dir, ids[2], "parked", sandbox.SnapshotMemory)); err != nil {
		t.Fatal(err)
	}
	_ = m.Close()
	_ = tier.Close()

	tier, m = up()
	defer func() { _ = m.Close(); _ = tier.Close() }()
	info, err := m.Info(ids[1])
	if err != nil || info.State != sandbox.StatePaused {
		t.Fatalf("parked copy after a restart: %+v %v", info, err)
	}
	c1, err := m.StartSandbox(ctx, ids[1]) // start resumes a parked copy, as resume does
	if err != nil {
		t.Fatalf("start a parked copy after a restart: %v", err)
	}
	if got := askToken(ctx, t, "copy resumed after a restart", c1); got != token {
		t.Errorf("copy resumed after a restart answered %q, want %q", got, token)
	}
	if out := catFiles(t, c1); out != "seed" {
		t.Errorf("the other copy's files: %q (a write in one copy reached it?)", out)
	}
	if info, err := m.Info(ids[0]); err != nil || info.State != sandbox.StateStopped {
		t.Fatalf("a resumed copy after a restart: %+v %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ids[0], "parked")); !os.IsNotExist(err) {
		t.Errorf("a stale parked/ stayed: %v", err)
	}
	c0, err = m.StartSandbox(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if out := catFiles(t, c0); out != "ownseed" {
		t.Errorf("a resumed copy's files after a restart: %q", out)
	}
	info, err = m.Info(ids[2])
	if err != nil || info.State != sandbox.StateStopped || !strings.Contains(info.Reason, "missing") {
		t.Fatalf("a copy without its image after a restart: %+v %v", info, err)
	}
	c2, err := m.StartSandbox(ctx, ids[2])
	if err != nil {
		t.Fatalf("start a copy without its image: %v", err)
	}
	if out := catFiles(t, c2); out != "seed" {
		t.Errorf("a copy started without its image has files %q", out)
	}
	for _, id := range ids {
		if err := m.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, id)); !os.IsNotExist(err) {
			t.Fatalf("deleted copy's dir: %v", err)
		}
	}
}

// catFiles lists /workspace's files with their contents, in name order.
func catFiles(t *testing.T, sb sandbox.Sandbox) string {
	t.Helper()
	var out bytes.Buffer
	if code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "cat /workspace/*"}}, &out, &out); err != nil || code != 0 {
		t.Fatalf("cat /workspace/*: %d %v %s", code, err, out.String())
	}
	return out.String()
}

// TestParkedForkRaceClass: two callers at one paused copy at once. A
// resume racing a delete ends with the copy gone (the resume answers
// not found, or ran first and the delete closed it), its files and any
// container with it; two starts racing make one sandbox, and both callers
// get it.
func TestParkedForkRaceClass(t *testing.T) {
	ctx := t.Context()
	data := t.TempDir()
	dir := filepath.Join(data, "sandboxes")
	tier, m := hostWSNode(t, data)()
	defer func() { _ = m.Close(); _ = tier.Close() }()
	if !tier.egress {
		t.Skip("runsc without --host-uds: no exec agent, no checkpoint with it")
	}
	src, err := m.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.WriteFile(ctx, "/workspace/f", strings.NewReader("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	copies, err := m.ForkWith(ctx, src.ID(), sandbox.ForkOptions{Count: 2, Parked: true})
	if err != nil || len(copies) != 2 || copies[0].Err != nil || copies[1].Err != nil {
		t.Fatalf("parked fork: %+v %v", copies, err)
	}
	a, b := copies[0].ID, copies[1].ID
	errs := make(chan error, 2)
	go func() { errs <- m.Resume(ctx, a) }()
	go func() { errs <- m.Delete(ctx, a) }()
	for range 2 {
		if err := <-errs; err != nil && !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("resume racing delete: %v", err)
		}
	}
	if _, err := m.Info(a); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("the deleted copy is still listed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, a)); !os.IsNotExist(err) {
		t.Errorf("the deleted copy's dir: %v", err)
	}
	sbs := make(chan sandbox.Sandbox, 2)
	for range 2 {
		go func() {
			sb, err := m.StartSandbox(ctx, b)
			if err != nil {
				t.Errorf("start racing start: %v", err)
			}
			sbs <- sb
		}()
	}
	s1, s2 := <-sbs, <-sbs
	if s1 == nil || s1 != s2 {
		t.Fatalf("two starts made %p and %p", s1, s2)
	}
	if out := catFiles(t, s1); out != "x" {
		t.Errorf("the started copy's files: %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, b, "parked")); !os.IsNotExist(err) {
		t.Errorf("a started copy kept its links: %v", err)
	}
	for _, id := range []string{b, src.ID()} {
		if err := m.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}
