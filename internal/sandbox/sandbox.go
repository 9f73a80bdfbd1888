// Package sandbox defines the tier-neutral contract for running agent-written
// programs (python3, node, bash, compilers) in isolation: the Spec a caller asks
// for, the Tier interface each isolation technology implements, the Sandbox
// handle (exec with streamed output, background processes, files confined to
// the writable paths, pause/resume, close) and a Manager that keeps warm pools
// per (tier, template), enforces sandbox timeouts and looks sandboxes up by id.
//
// The package owns no isolation mechanism itself: the process tier lives in
// internal/sandbox/process and the gVisor tier in internal/sandbox/gvisor. It
// does not speak HTTP and does not know about users or policy; the daemon
// authorizes a call before it reaches the Manager.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Well-known tier and template names.
const (
	TierProcess = "process"
	TierGVisor  = "gvisor"

	// TemplateHost is a read-only view of the host's /usr, /bin, /lib*, /etc
	// (with secrets such as /etc/shadow masked) plus a fresh /proc, a minimal
	// /dev and writable, size-limited /workspace and /tmp.
	TemplateHost = "host"
)

// Reserved Spec.Labels keys, set by the daemon and never by a caller's
// metadata: who owns a sandbox (a SPIFFE ID), the session that created it
// ("agent/session"), and its egress host patterns and usable secrets
// (comma-separated).
const (
	LabelPrefix  = "agentcloud/"
	LabelOwner   = LabelPrefix + "owner"
	LabelSession = LabelPrefix + "session"
	LabelEgress  = LabelPrefix + "egress"
	LabelSecrets = LabelPrefix + "secrets"
)

// Writable paths inside every sandbox. File operations are confined to them.
const (
	WorkspaceDir = "/workspace"
	TmpDir       = "/tmp"
)

// SandboxUID and SandboxGID are the unprivileged ids programs run as inside a
// sandbox. They map to an unprivileged, per-sandbox id on the host.
const (
	SandboxUID = 1000
	SandboxGID = 1000
)

// Errors returned (wrapped) by tiers and the Manager. Match with errors.Is.
var (
	ErrNotFound        = errors.New("sandbox not found")
	ErrClosed          = errors.New("sandbox closed")
	ErrUnknownTier     = errors.New("unknown sandbox tier")
	ErrUnknownTemplate = errors.New("unknown sandbox template")
	ErrUnsupported     = errors.New("operation not supported by this tier")
	ErrPathNotAllowed  = errors.New("path outside the sandbox's writable paths")
	ErrUnavailable     = errors.New("sandbox tier unavailable on this host")
	ErrPaused          = errors.New("sandbox paused")
	// ErrTimeout: an exec ran past its context deadline and was killed. It
	// also matches context.DeadlineExceeded.
	ErrTimeout = timeoutError{}
	// ErrMemoryLimit: a process was killed for exceeding Limits.MemoryMB.
	ErrMemoryLimit = errors.New("sandbox memory limit exceeded")
	// ErrPidsLimit: process creation failed because of Limits.Pids.
	ErrPidsLimit = errors.New("sandbox process limit exceeded")
	// ErrDiskLimit: a writable filesystem was full (Limits.DiskMB).
	ErrDiskLimit = errors.New("sandbox disk limit exceeded")
	// ErrFailed: the sandbox stopped working underneath its users: its
	// init or its sandbox kernel died (out of memory, killed from the
	// host). Every later operation answers a *FailedError, which matches
	// it and says why; only Close is left to do.
	ErrFailed = errors.New("sandbox failed")
)

// FailedError is the error of every operation on a failed sandbox.
// errors.Is(err, ErrFailed) matches it.
type FailedError struct {
	ID     string
	Reason string // e.g. "out of memory: ..."
}

func (e *FailedError) Error() string { return fmt.Sprintf("sandbox %s failed: %s", e.ID, e.Reason) }

// Is makes a *FailedError match ErrFailed.
func (e *FailedError) Is(target error) bool { return target == ErrFailed }

// FailureReason returns the reason of a *FailedError in err's chain, or "".
func FailureReason(err error) string {
	var fe *FailedError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return ""
}

type timeoutError struct{}

func (timeoutError) Error() string { return "sandbox exec timed out" }

// Is makes ErrTimeout match context.DeadlineExceeded too.
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Limits bound the resources of one sandbox. Zero values mean "use the
// default" (see DefaultLimits).
type Limits struct {
	CPUs     float64 // CPU bandwidth in cores (cgroup quota), e.g. 0.5
	MemoryMB int     // memory of the sandbox's processes, MiB (see HostMemoryMB)
	Pids     int     // maximum number of tasks (processes and threads)
	DiskMB   int     // size of each writable tmpfs (/workspace and /tmp), MiB
}

// ShmMB is the size of every sandbox's /dev/shm tmpfs.
const ShmMB = 64

// HostMemoryMB is the memory the host grants a sandbox with these limits,
// its memory cgroup limit: MemoryMB for its processes plus room for the
// pages of its tmpfs files (/workspace and /tmp, DiskMB each, and /dev/shm).
// Files in memory count against the same cgroup as the processes, so
// without that room a full disk would leave the processes (and the
// sandbox's init) less than MemoryMB, down to nothing: filling the disks
// must answer "disk full", never kill the sandbox. Processes may use the
// part of the room that files leave free.
func (l Limits) HostMemoryMB() int { return l.MemoryMB + 2*l.DiskMB + ShmMB }

// DefaultLimits are applied to every zero field of Spec.Limits.
var DefaultLimits = Limits{CPUs: 1, MemoryMB: 512, Pids: 256, DiskMB: 256}

// WithDefaults returns l with zero fields replaced by DefaultLimits.
func (l Limits) WithDefaults() Limits {
	if l.CPUs <= 0 {
		l.CPUs = DefaultLimits.CPUs
	}
	if l.MemoryMB <= 0 {
		l.MemoryMB = DefaultLimits.MemoryMB
	}
	if l.Pids <= 0 {
		l.Pids = DefaultLimits.Pids
	}
	if l.DiskMB <= 0 {
		l.DiskMB = DefaultLimits.DiskMB
	}
	return l
}

// Spec describes the sandbox a caller wants.
type Spec struct {
	Tier     string // TierProcess or TierGVisor; "" means TierProcess
	Template string // "" means TemplateHost
	Limits   Limits
	// Env is added to the environment of every process in the sandbox;
	// ExecSpec.Env overrides it per key.
	Env map[string]string
	// Timeout after which the Manager deletes the sandbox; 0 means the
	// Manager's default. Extend it with Manager.Extend.
	Timeout time.Duration
	// Labels are opaque to this package (owner, session id, ...).
	Labels map[string]string
	// HostWorkspace, set by the Manager when it keeps sandboxes on host
	// storage, is the host directory mounted on /workspace instead of a
	// tmpfs; the tier makes it the sandbox user's. "" means a tmpfs.
	HostWorkspace string
	// Volumes are named volumes mounted into the sandbox (volumes.go);
	// only tiers that implement VolumeMounter take them.
	Volumes []VolumeMount
	// Build, set only by a template build (never from a request), runs
	// the sandbox's processes as root of its user namespace with the few
	// capabilities package managers need (see package
	// internal/sandbox/process/sbinit, BuildCaps). Image templates only;
	// tiers that cannot do it refuse with ErrUnsupported.
	Build bool
}

// ExecSpec describes one process to run inside a sandbox.
type ExecSpec struct {
	Cmd  string   // program; looked up in PATH inside the sandbox if not absolute
	Args []string // arguments, not including the program name
	Env  map[string]string
	Cwd  string // "" means /workspace
	// Stdin feeds the process for Exec; nil means empty input.
	Stdin io.Reader
	// OutputFile, for Start only, is a path under /workspace or /tmp that
	// receives the background process's stdout and stderr (appended). ""
	// discards them.
	OutputFile string
}

// Process is one process running inside a sandbox, as seen from inside.
type Process struct {
	PID     int      `json:"pid"`
	PPID    int      `json:"ppid"`
	Cmdline []string `json:"cmdline"`
	State   string   `json:"state"` // "R", "S", "Z", ... as in /proc/PID/stat
}

// FileInfo describes one file under a writable path.
type FileInfo struct {
	Name    string      `json:"name"`
	Path    string      `json:"path"`
	Size    int64       `json:"size"`
	Mode    fs.FileMode `json:"mode"`
	ModTime time.Time   `json:"mod_time"`
	IsDir   bool        `json:"is_dir"`
}

// Sandbox is one live sandbox. All methods are safe for concurrent use.
// Every method after Close returns an error wrapping ErrClosed.
type Sandbox interface {
	Lifecycle
	Executor
	Files
}

// Lifecycle is the part of a Sandbox that names it and runs it: identity,
// pause/resume, failure and close.
type Lifecycle interface {
	ID() string
	Tier() string
	Spec() Spec

	// Pause freezes every process; Resume thaws them.
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error

	// Failure returns a *FailedError saying why the sandbox stopped working
	// (see ErrFailed), or nil while it works or after Close.
	Failure() error

	// NetNSPath returns a path to the sandbox's network namespace
	// (/proc/PID/ns/net) for the egress proxy hook; see NetworkHook. Tiers
	// whose network stack is not a host network namespace return an error
	// wrapping ErrUnsupported.
	NetNSPath() (string, error)

	// Close kills every process in the sandbox and frees everything it holds
	// (cgroups, mounts, namespaces, state directories). It is idempotent.
	Close() error
}

// Executor runs processes inside a sandbox.
type Executor interface {
	// Exec runs a process to completion, streaming its stdout and stderr as
	// they are produced. exitCode is the process's exit status, or 128+signal
	// when it was killed. When ctx ends first the process group is killed and
	// err wraps ErrTimeout (deadline) or context.Canceled. When a limit was
	// hit, err wraps ErrMemoryLimit, ErrPidsLimit or ErrDiskLimit and exitCode
	// is still reported. err is nil for any exit status otherwise.
	Exec(ctx context.Context, spec ExecSpec, stdout, stderr io.Writer) (exitCode int, err error)
	// Start runs a background process and returns its pid inside the sandbox.
	Start(ctx context.Context, spec ExecSpec) (pid int, err error)
	// Processes lists the processes inside the sandbox.
	Processes(ctx context.Context) ([]Process, error)
	// Signal sends sig to a process inside the sandbox (pid as seen inside).
	Signal(ctx context.Context, pid int, sig os.Signal) error
}

// Files is a sandbox's file system as the host sees it; paths are absolute
// paths under /workspace or /tmp, or relative to /workspace. Symlinks never
// resolve outside that tree. internal/sandbox/hostfs implements it once for
// every tier.
type Files interface {
	WriteFile(ctx context.Context, path string, r io.Reader, perm fs.FileMode) error
	ReadFile(ctx context.Context, path string, w io.Writer) error
	List(ctx context.Context, path string) ([]FileInfo, error)
	Stat(ctx context.Context, path string) (FileInfo, error)
	Mkdir(ctx context.Context, path string, perm fs.FileMode) error // with parents
	Remove(ctx context.Context, path string) error                  // recursive
}

// EgressSocketer is implemented by sandboxes whose network is not a host
// network namespace but which relay 127.0.0.1:3128 inside to a host Unix
// socket (the gVisor tier). The network hook listens on that path and
// serves the egress proxy there, as it would inside a network namespace.
// An error wrapping ErrUnsupported means this sandbox has no relay.
type EgressSocketer interface {
	EgressSocket() (string, error)
}

// Tier is one isolation technology.
type Tier interface {
	// Name is TierProcess, TierGVisor, ...
	Name() string
	// Templates lists the templates this tier can create.
	Templates() []string
	// Prepare does the expensive, spec-independent part of creating a sandbox
	// for template (namespaces, root file system, a running sandbox kernel)
	// so that Activate is fast. The Manager keeps Prepared values in its warm
	// pools.
	// A ctx marked with ForPool comes from a pool refill that no caller
	// waits for; a tier may then run the work at a low CPU priority until
	// Activate.
	Prepare(ctx context.Context, template string) (Prepared, error)
	// Close releases tier-wide resources (cgroup pools, state dirs). Sandboxes
	// must be closed first.
	Close() error
}

// Prepared is a sandbox that has been set up but not yet handed out: nothing
// of a caller runs in it yet.
type Prepared interface {
	Template() string
	// Activate applies spec (limits, env) and returns the live sandbox. After
	// Activate, the Prepared value must not be used again.
	Activate(ctx context.Context, id string, spec Spec) (Sandbox, error)
	// Discard frees a Prepared value that will never be activated.
	Discard() error
}

// Create prepares and activates a sandbox in one step, without a pool.
func Create(ctx context.Context, t Tier, id string, spec Spec) (Sandbox, error) {
	spec = spec.normalize(t.Name())
	p, err := t.Prepare(ctx, spec.Template)
	if err != nil {
		return nil, err
	}
	sb, err := p.Activate(ctx, id, spec)
	if err != nil {
		_ = p.Discard()
		return nil, err
	}
	return sb, nil
}

func (s Spec) normalize(tier string) Spec {
	if s.Tier == "" {
		s.Tier = tier
	}
	if s.Template == "" {
		s.Template = TemplateHost
	}
	s.Limits = s.Limits.WithDefaults()
	return s
}

// DefaultEnv is the base environment of every sandboxed process, below
// Spec.Env and ExecSpec.Env.
var DefaultEnv = map[string]string{
	"PATH":   "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME":   WorkspaceDir,
	"TMPDIR": TmpDir,
	"LANG":   "C.UTF-8",
	"USER":   "sandbox",
}

// MergeEnv returns DefaultEnv overlaid with each map in order, as KEY=VALUE
// strings sorted by key.
func MergeEnv(layers ...map[string]string) []string {
	m := make(map[string]string, len(DefaultEnv))
	for k, v := range DefaultEnv {
		m[k] = v
	}
	for _, l := range layers {
		for k, v := range l {
			m[k] = v
		}
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// ResolvePath maps a sandbox path to the writable root it lives under
// (WorkspaceDir or TmpDir) and a clean path relative to that root ("." for
// the root itself). Relative paths are taken relative to WorkspaceDir. Paths
// outside the writable roots return an error wrapping ErrPathNotAllowed.
func ResolvePath(p string) (root, rel string, err error) {
	if p == "" {
		p = "."
	}
	if !strings.HasPrefix(p, "/") {
		p = WorkspaceDir + "/" + p
	}
	clean := path.Clean(p)
	for _, r := range []string{WorkspaceDir, TmpDir} {
		if clean == r {
			return r, ".", nil
		}
		if strings.HasPrefix(clean, r+"/") {
			return r, strings.TrimPrefix(clean, r+"/"), nil
		}
	}
	return "", "", fmt.Errorf("resolve %q: %w", p, ErrPathNotAllowed)
}

type forPoolKey struct{}

// ForPool marks ctx as the preparation of a sandbox for a warm pool: work
// that nobody waits for, which should yield the CPU to running sandboxes and
// to requests (see Tier.Prepare).
func ForPool(ctx context.Context) context.Context {
	return context.WithValue(ctx, forPoolKey{}, true)
}

// IsForPool reports whether ctx was marked with ForPool.
func IsForPool(ctx context.Context) bool {
	v, _ := ctx.Value(forPoolKey{}).(bool)
	return v
}
