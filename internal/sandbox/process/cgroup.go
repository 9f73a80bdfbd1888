//go:build linux

package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Cgroups: every sandbox gets its own cgroup in each v1 hierarchy that has a
// controller we use (memory, cpu, pids, freezer) and in the v2 hierarchy
// (cgroup.kill and cgroup.freeze need no controller; memory/cpu/pids are used
// there when v1 does not provide them). Creating the directories costs tens of
// milliseconds, so a pool keeps a few ready and a goroutine refills it;
// used sets are removed in the background.

var v1Controllers = []string{"memory", "cpu", "pids", "freezer"}

type cgroupSet struct {
	name string
	v1   map[string]string // controller -> directory
	v2   string            // directory in the unified hierarchy, "" if none
	// background: the CPU weight is the minimum (see setBackground).
	background bool
}

type cgroupPool struct {
	log     *slog.Logger
	parents map[string]string // v1 controller -> parent dir (ours + /agentcloud-sandbox)
	v2      string            // v2 parent dir, "" if none
	ready   chan *cgroupSet
	seq     atomic.Uint64
	prefix  string
	wake    chan struct{}
	wg      sync.WaitGroup
	stop    chan struct{}
}

// newCgroupPool finds the hierarchies, creates our parent directories below
// the daemon's own cgroups and starts the refill goroutine.
func newCgroupPool(size int, log *slog.Logger) (*cgroupPool, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	p := &cgroupPool{
		log:     log,
		parents: map[string]string{},
		ready:   make(chan *cgroupSet, size),
		prefix:  fmt.Sprintf("sb-%d-%d-", os.Getpid(), poolSeq.Add(1)),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	for _, c := range v1Controllers {
		m, ok := mounts[c]
		if !ok {
			continue
		}
		dir := filepath.Join(m, own[c], "agentcloud-sandbox")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Warn("cgroup v1 controller unusable", "controller", c, "err", err)
			continue
		}
		p.parents[c] = dir
	}
	if m, ok := mounts[""]; ok {
		dir := filepath.Join(m, own[""], "agentcloud-sandbox")
		if err := os.MkdirAll(dir, 0o755); err == nil {
			p.v2 = dir
			// Delegate whatever controllers the parent offers (pure v2 hosts).
			if b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "cgroup.subtree_control")); err == nil {
				enable := ""
				for _, c := range strings.Fields(string(b)) {
					if c == "memory" || c == "cpu" || c == "pids" {
						enable += " +" + c
					}
				}
				if enable != "" {
					_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.TrimSpace(enable)), 0)
				}
			}
		}
	}
	if len(p.parents) == 0 && p.v2 == "" {
		return nil, fmt.Errorf("no usable cgroup hierarchy: %w", sandbox.ErrUnavailable)
	}
	p.removeStale()
	p.wg.Add(1)
	go func() { // again once the inits of a daemon killed just before us are gone
		defer p.wg.Done()
		select {
		case <-time.After(15 * time.Second):
			p.removeStale()
		case <-p.stop:
		}
	}()
	p.wg.Add(1)
	go p.refill()
	return p, nil
}

func (p *cgroupPool) refill() {
	defer p.wg.Done()
	for {
		for len(p.ready) < cap(p.ready) {
			s, err := p.create()
			if err != nil {
				p.log.Warn("pre-create cgroup", "err", err)
				break
			}
			select {
			case p.ready <- s:
			case <-p.stop:
				s.destroy()
				return
			}
		}
		select {
		case <-p.wake:
		case <-p.stop:
			return
		}
	}
}

// get returns a ready cgroup set, creating one synchronously if the pool is
// empty.
func (p *cgroupPool) get() (*cgroupSet, error) {
	defer func() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}()
	select {
	case s := <-p.ready:
		return s, nil
	default:
		return p.create()
	}
}

// poolSeq tells apart the pools of one process (several daemons in a test
// binary), so their cgroup names never collide.
var poolSeq atomic.Uint64

func (p *cgroupPool) create() (*cgroupSet, error) {
	for range 8 {
		s, err := p.createOnce()
		if errors.Is(err, fs.ErrExist) {
			// A stale set from an earlier process with our pid; skip it.
			continue
		}
		return s, err
	}
	return nil, errors.New("create cgroup: names keep colliding with existing cgroups")
}

func (p *cgroupPool) createOnce() (*cgroupSet, error) {
	s := &cgroupSet{name: p.prefix + strconv.FormatUint(p.seq.Add(1), 10), v1: map[string]string{}}
	for c, parent := range p.parents {
		d := filepath.Join(parent, s.name)
		if err := os.Mkdir(d, 0o755); err != nil {
			s.destroy()
			return nil, fmt.Errorf("create cgroup %s: %w", d, err)
		}
		s.v1[c] = d
	}
	if p.v2 != "" {
		d := filepath.Join(p.v2, s.name)
		if err := os.Mkdir(d, 0o755); err != nil {
			s.destroy()
			return nil, fmt.Errorf("create cgroup %s: %w", d, err)
		}
		s.v2 = d
	}
	return s, nil
}

// close stops the refill goroutine and removes the unused sets.
func (p *cgroupPool) close() {
	close(p.stop)
	p.wg.Wait()
	for {
		select {
		case s := <-p.ready:
			s.destroy()
		default:
			return
		}
	}
}

func writeFile(path, val string) error {
	if err := os.WriteFile(path, []byte(val), 0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// attach moves pid into every cgroup of the set.
func (s *cgroupSet) attach(pid int) error {
	v := strconv.Itoa(pid)
	for _, d := range s.v1 {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), v); err != nil {
			return err
		}
	}
	if s.v2 != "" {
		if err := writeFile(filepath.Join(s.v2, "cgroup.procs"), v); err != nil {
			return err
		}
	}
	return nil
}

// CPU weights of a set: the minimum while its sandbox is prepared for a
// pool, the kernel's default once the sandbox is activated.
const (
	cpuSharesBackground, cpuSharesDefault = "2", "1024" // v1 cpu.shares
	cpuWeightBackground, cpuWeightDefault = "1", "100"  // v2 cpu.weight
)

// setBackground gives the set the lowest CPU weight (on) or the default
// one. A pool refill starts a Go runtime and builds a root, tens of
// milliseconds of CPU; at the lowest weight that work only takes CPU time
// that running sandboxes and the daemon leave idle, instead of halving the
// speed of the command a just-claimed sandbox runs next to it.
func (s *cgroupSet) setBackground(on bool) error {
	v1, v2 := cpuSharesDefault, cpuWeightDefault
	if on {
		v1, v2 = cpuSharesBackground, cpuWeightBackground
	}
	if d, ok := s.v1["cpu"]; ok && exists(filepath.Join(d, "cpu.shares")) {
		if err := writeFile(filepath.Join(d, "cpu.shares"), v1); err != nil {
			return err
		}
	} else if s.v2 != "" && exists(filepath.Join(s.v2, "cpu.weight")) {
		if err := writeFile(filepath.Join(s.v2, "cpu.weight"), v2); err != nil {
			return err
		}
	}
	s.background = on
	return nil
}

// setLimits writes memory, CPU and pids limits, preferring v1 where mounted,
// and restores the default CPU weight of a set prepared in the background.
// The memory limit is l.HostMemoryMB: the tmpfs pages of /workspace, /tmp
// and /dev/shm are charged here too, and full disks must not leave the
// processes without their MemoryMB.
func (s *cgroupSet) setLimits(l sandbox.Limits) error {
	if s.background {
		if err := s.setBackground(false); err != nil {
			return err
		}
	}
	mem := strconv.FormatInt(int64(l.HostMemoryMB())<<20, 10)
	period := 100000
	quota := strconv.Itoa(int(l.CPUs * float64(period)))
	pids := strconv.Itoa(l.Pids)
	if d, ok := s.v1["memory"]; ok {
		if err := writeFile(filepath.Join(d, "memory.limit_in_bytes"), mem); err != nil {
			return err
		}
		if p := filepath.Join(d, "memory.memsw.limit_in_bytes"); exists(p) {
			if err := writeFile(p, mem); err != nil {
				return err
			}
		}
		_ = writeFile(filepath.Join(d, "memory.swappiness"), "0")
	} else if s.v2 != "" && exists(filepath.Join(s.v2, "memory.max")) {
		if err := writeFile(filepath.Join(s.v2, "memory.max"), mem); err != nil {
			return err
		}
		_ = writeFile(filepath.Join(s.v2, "memory.swap.max"), "0")
	}
	if d, ok := s.v1["cpu"]; ok {
		if err := writeFile(filepath.Join(d, "cpu.cfs_period_us"), strconv.Itoa(period)); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d, "cpu.cfs_quota_us"), quota); err != nil {
			return err
		}
	} else if s.v2 != "" && exists(filepath.Join(s.v2, "cpu.max")) {
		if err := writeFile(filepath.Join(s.v2, "cpu.max"), quota+" "+strconv.Itoa(period)); err != nil {
			return err
		}
	}
	if d, ok := s.v1["pids"]; ok {
		if err := writeFile(filepath.Join(d, "pids.max"), pids); err != nil {
			return err
		}
	} else if s.v2 != "" && exists(filepath.Join(s.v2, "pids.max")) {
		if err := writeFile(filepath.Join(s.v2, "pids.max"), pids); err != nil {
			return err
		}
	}
	return nil
}

// counters returns the OOM-kill count and the number of forks refused by
// the pids limit, for attributing an exec failure to a limit.
func (s *cgroupSet) counters() (oomKills, pidsMax int64) {
	if d, ok := s.v1["memory"]; ok {
		oomKills = readKey(filepath.Join(d, "memory.oom_control"), "oom_kill")
	} else if s.v2 != "" {
		oomKills = readKey(filepath.Join(s.v2, "memory.events"), "oom_kill")
	}
	if d, ok := s.v1["pids"]; ok {
		pidsMax = readKey(filepath.Join(d, "pids.events"), "max")
	} else if s.v2 != "" {
		pidsMax = readKey(filepath.Join(s.v2, "pids.events"), "max")
	}
	return
}

func readKey(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// freeze stops every task in the set and waits until the kernel reports it
// frozen.
func (s *cgroupSet) freeze(ctx context.Context, frozen bool) error {
	if d, ok := s.v1["freezer"]; ok {
		want := "THAWED"
		if frozen {
			want = "FROZEN"
		}
		if err := writeFile(filepath.Join(d, "freezer.state"), want); err != nil {
			return err
		}
		return waitFor(ctx, func() bool {
			b, _ := os.ReadFile(filepath.Join(d, "freezer.state"))
			return strings.TrimSpace(string(b)) == want
		})
	}
	if s.v2 != "" {
		want := "0"
		if frozen {
			want = "1"
		}
		if err := writeFile(filepath.Join(s.v2, "cgroup.freeze"), want); err != nil {
			return err
		}
		return waitFor(ctx, func() bool {
			return strconv.FormatInt(readKey(filepath.Join(s.v2, "cgroup.events"), "frozen"), 10) == want
		})
	}
	return fmt.Errorf("freeze: no freezer: %w", sandbox.ErrUnsupported)
}

func waitFor(ctx context.Context, cond func() bool) error {
	for d := 100 * time.Microsecond; !cond(); d = min(d*2, 20*time.Millisecond) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return nil
}

// procs lists the host pids in the set.
func (s *cgroupSet) procs() []int {
	var path string
	if s.v2 != "" {
		path = filepath.Join(s.v2, "cgroup.procs")
	}
	for _, d := range s.v1 {
		path = filepath.Join(d, "cgroup.procs")
		break
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// kill SIGKILLs every task in the set: cgroup.kill where the kernel has it,
// otherwise freeze, kill each pid, thaw (so nothing forks in between).
func (s *cgroupSet) kill(ctx context.Context) error {
	if s.v2 != "" && exists(filepath.Join(s.v2, "cgroup.kill")) {
		if err := writeFile(filepath.Join(s.v2, "cgroup.kill"), "1"); err == nil {
			return waitFor(ctx, func() bool { return len(s.procs()) == 0 })
		}
	}
	for len(s.procs()) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		_ = s.freeze(ctx, true)
		for _, pid := range s.procs() {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		_ = s.freeze(ctx, false)
		time.Sleep(time.Millisecond)
	}
	return nil
}

// destroy removes the directories; the set must be empty.
func (s *cgroupSet) destroy() error {
	var errs []error
	dirs := make([]string, 0, len(s.v1)+1)
	for _, d := range s.v1 {
		dirs = append(dirs, d)
	}
	if s.v2 != "" {
		dirs = append(dirs, s.v2)
	}
	for _, d := range dirs {
		var err error
		for i := 0; i < 50; i++ {
			err = unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// ownCgroups maps each v1 controller (and "" for v2) to this process's path.
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

// cgroupMounts maps each v1 controller (and "" for v2) to its mount point.
func cgroupMounts() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || pf[3] != "/" {
			continue
		}
		switch qf[0] {
		case "cgroup2":
			if _, dup := out[""]; !dup {
				out[""] = pf[4]
			}
		case "cgroup":
			for _, opt := range strings.Split(qf[2], ",") {
				for _, c := range v1Controllers {
					if opt == c {
						if _, dup := out[c]; !dup {
							out[c] = pf[4]
						}
					}
				}
			}
		}
	}
	return out, nil
}
