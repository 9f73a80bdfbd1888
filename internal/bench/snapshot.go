package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// snapshotWorkspaceMiB is the /workspace a snapshot, restore and fork
// measurement fills: big enough to time the copy, small enough that 100
// full copies fit the disk (a fork of a host workspace copies it once into
// a layer its copies share; a tier keeping /workspace itself copies it per
// fork).
const snapshotWorkspaceMiB = 64

// snapshots measures snapshot (per GiB of workspace), restore and a fork
// of Burst copies (fork100_ms when Burst is 100) of one sandbox with a
// snapshotWorkspaceMiB workspace, and says why a figure is missing.
func (r *sandboxRun) snapshots(ctx context.Context, res *SandboxResult) {
	res.Unmeasured = nil
	res.SnapshotWorkspaceMiB = snapshotWorkspaceMiB
	id, _, err := r.create(ctx)
	if err != nil {
		r.errs.add(err)
		res.Unmeasured = []string{"fork100_ms: create failed", "snapshot_ms_per_gib: create failed", "restore_ms: create failed"}
		return
	}
	defer r.del(ctx, id)
	if err := r.fill(ctx, id); err != nil {
		r.errs.add(err)
	}
	t0 := time.Now()
	snap, err := r.c.SnapshotSandbox(ctx, id)
	if err != nil {
		r.errs.add(err)
		res.Unmeasured = append(res.Unmeasured, "snapshot_ms_per_gib: "+err.Error(), "restore_ms: no snapshot")
	} else {
		d := msOf(time.Since(t0))
		perGiB := d * float64(1<<30) / float64(max(snap.Bytes, 1))
		res.SnapshotMsPerGiB, res.SnapshotMemory, res.SnapshotNote = &perGiB, snap.Memory, snap.Note
		t0 = time.Now()
		sb, err := r.c.RestoreSnapshot(ctx, snap.ID)
		if err != nil {
			r.errs.add(err)
			res.Unmeasured = append(res.Unmeasured, "restore_ms: "+err.Error())
		} else {
			rm := msOf(time.Since(t0))
			res.RestoreMs = &rm
			r.del(ctx, sb.ID)
		}
		if err := r.c.DeleteSnapshot(context.WithoutCancel(ctx), snap.ID); err != nil {
			r.errs.add(err)
		}
	}
	n := min(r.Burst, 100)
	res.ForkN = n
	if d, err := r.fork(ctx, id, n); err != nil {
		res.Unmeasured = append(res.Unmeasured, "fork100_ms: "+err.Error())
	} else {
		res.Fork100Ms = &d
	}
	if err := r.pausedFork(ctx, res, id, n); err != nil {
		res.Unmeasured = append(res.Unmeasured, "fork100_paused_ms: "+err.Error())
	}
}

// forkPausedMemoryMiB is what the source of a paused fork holds in memory
// on the gVisor tier: the "100 forks of a 256 MiB sandbox".
const forkPausedMemoryMiB = 256

// pausedFork times a fork of id into n paused copies, with
// forkPausedMemoryMiB of random bytes held by a process of id first where
// the copies keep memory (gVisor), then one copy's resume (or start) to
// its first command answered, and deletes the copies.
func (r *sandboxRun) pausedFork(ctx context.Context, res *SandboxResult, id string, n int) error {
	memory := r.Tier == "gvisor"
	if memory {
		hold := fmt.Sprintf("import os, time\nb = os.urandom(%d << 20)\nopen('/tmp/held', 'w').close()\ntime.sleep(3600)\n", forkPausedMemoryMiB)
		if _, err := r.c.StartProcess(ctx, id, api.ExecRequest{Cmd: "python3", Args: []string{"-c", hold}, Background: true}); err != nil {
			return err
		}
		wait := api.ExecRequest{Cmd: "sh", Args: []string{"-c", "for i in $(seq 600); do [ -e /tmp/held ] && exit 0; sleep 0.1; done; exit 1"}}
		if err := r.run(ctx, id, wait); err != nil {
			return fmt.Errorf("hold %d MiB: %w", forkPausedMemoryMiB, err)
		}
		res.ForkPausedMemoryMiB = forkPausedMemoryMiB
	}
	t0 := time.Now()
	forks, err := r.c.ForkSandboxWith(ctx, id, api.ForkSandboxRequest{Count: n, Paused: true})
	d := msOf(time.Since(t0))
	defer func() {
		for _, f := range forks {
			r.del(ctx, f.ID)
		}
	}()
	if err != nil || len(forks) != n {
		return fmt.Errorf("%d of %d paused forks: %v", len(forks), n, err)
	}
	res.Fork100PausedMs = &d
	t0 = time.Now()
	if memory {
		_, err = r.c.ResumeSandbox(ctx, forks[0].ID)
	} else {
		_, err = r.c.StartSandbox(ctx, forks[0].ID)
	}
	if err == nil {
		err = r.run(ctx, forks[0].ID, api.ExecRequest{Cmd: "true"})
	}
	if err != nil {
		return fmt.Errorf("resume a paused fork: %w", err)
	}
	rd := msOf(time.Since(t0))
	res.ForkPausedResumeMs = &rd
	return nil
}

// fill writes snapshotWorkspaceMiB of random bytes to id's /workspace.
func (r *sandboxRun) fill(ctx context.Context, id string) error {
	return r.run(ctx, id, api.ExecRequest{Cmd: "sh", Args: []string{"-c", fmt.Sprintf("head -c %dM /dev/urandom > /workspace/fill", snapshotWorkspaceMiB)}})
}

// fork times one fork of id into n copies, in milliseconds, and deletes
// the copies.
func (r *sandboxRun) fork(ctx context.Context, id string, n int) (float64, error) {
	t0 := time.Now()
	forks, err := r.c.ForkSandbox(ctx, id, n)
	d := msOf(time.Since(t0))
	for _, f := range forks {
		r.del(ctx, f.ID)
	}
	if err != nil || len(forks) != n {
		return 0, fmt.Errorf("%d of %d forks: %v", len(forks), n, err)
	}
	return d, nil
}

// msOf is d in milliseconds, to the microsecond.
func msOf(d time.Duration) float64 { return ms(float64(d.Microseconds())) }
