package api

import "time"

// Sandbox tiers and the default template, as accepted by CreateSandboxRequest.
const (
	SandboxTierProcess  = "process"
	SandboxTierGVisor   = "gvisor"
	SandboxTemplateHost = "host"
)

// Sandbox states (Sandbox.State).
const (
	SandboxStateRunning = "running"
	SandboxStatePaused  = "paused"
	// SandboxStateFailed: the sandbox stopped working underneath its users
	// (its init or sandbox kernel died, e.g. out of memory); Sandbox.Failure
	// says why. Exec and file calls answer 409 with KindSandboxFailed;
	// delete it and create a new one.
	SandboxStateFailed = "failed"
	// SandboxStateStopped: the sandbox runs no processes but keeps its
	// files (after a daemon restart); POST .../start runs it again.
	SandboxStateStopped = "stopped"
)

// Exec event types, in the order a stream can carry them: any number of
// stdout and stderr events, then exactly one exit or error event.
const (
	ExecEventStdout = "stdout"
	ExecEventStderr = "stderr"
	ExecEventExit   = "exit"
	ExecEventError  = "error"
)

// ExecStreamContentType is the media type of an exec stream: one ExecEvent
// JSON object per line. Send "Accept: text/event-stream" for Server-Sent
// Events instead (event: TYPE, data: the ExecEvent JSON).
const ExecStreamContentType = "application/x-ndjson"

// SandboxLimits bound one sandbox's resources. Zero means the server default.
type SandboxLimits struct {
	CPUs     float64 `json:"cpus,omitempty"`      // CPU bandwidth in cores, e.g. 0.5
	MemoryMB int     `json:"memory_mb,omitempty"` // memory of the processes; files in /workspace, /tmp and /dev/shm come on top
	Pids     int     `json:"pids,omitempty"`      // processes and threads
	DiskMB   int     `json:"disk_mb,omitempty"`   // size of /workspace and of /tmp
}

// CreateSandboxRequest is the body of POST /v1/sandboxes.
type CreateSandboxRequest struct {
	Tier     string        `json:"tier,omitempty"`     // "process" (default) or "gvisor"
	Template string        `json:"template,omitempty"` // default "host"
	Limits   SandboxLimits `json:"limits,omitzero"`
	// TimeoutS is how long the sandbox lives before it is deleted, in
	// seconds; 0 means the server default. Extend it with /extend.
	TimeoutS float64           `json:"timeout_s,omitempty"`
	Env      map[string]string `json:"env,omitempty"`      // added to every process
	Metadata map[string]string `json:"metadata,omitempty"` // opaque to the server; keys may not start with "agentcloud/"
	// Egress lists the host patterns ("api.example.com", "*.example.com")
	// the sandbox may reach through the platform's egress proxy; empty means
	// none. Policy can still deny a listed host.
	Egress []string `json:"egress,omitempty"`
	// Secrets names the caller's secrets the egress proxy may substitute
	// into requests from this sandbox ({{secret:NAME}} in a header), for
	// the hosts each secret allows. Their values never enter the sandbox.
	Secrets []string `json:"secrets,omitempty"`
	// Volumes are the caller's named volumes to mount (at most 8), each
	// below /workspace or /mnt.
	Volumes []SandboxVolume `json:"volumes,omitempty"`
}

// SandboxVolume mounts the caller's named volume at Path in a sandbox.
type SandboxVolume struct {
	Name     string `json:"name"`
	Path     string `json:"path"` // e.g. /workspace/data or /mnt/cache
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Sandbox describes a live sandbox.
type Sandbox struct {
	ID       string        `json:"id"`
	Tier     string        `json:"tier"`
	Template string        `json:"template"`
	Created  time.Time     `json:"created"`
	Expires  time.Time     `json:"expires"`
	Limits   SandboxLimits `json:"limits"`
	Paused   bool          `json:"paused"`
	// State is SandboxStateRunning, SandboxStatePaused or
	// SandboxStateFailed; Failure is why a failed sandbox stopped working.
	State   string `json:"state"`
	Failure string `json:"failure,omitempty"`
	// Reason says why the platform paused or stopped the sandbox (its
	// disk quota, a daemon restart).
	Reason   string            `json:"reason,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Owner is the SPIFFE ID of the principal that owns the sandbox (for a
	// session's sandbox, the agent's owner); Session is "agent/session"
	// when a session created it; Identity is the sandbox's own SPIFFE ID,
	// which its egress and platform API calls carry.
	Owner    string   `json:"owner,omitempty"`
	Session  string   `json:"session,omitempty"`
	Identity string   `json:"identity,omitempty"`
	Egress   []string `json:"egress,omitempty"`
	Secrets  []string `json:"secrets,omitempty"`
	// Volumes are the named volumes mounted into the sandbox.
	Volumes []SandboxVolume `json:"volumes,omitempty"`
}

// SandboxList is the body of GET /v1/sandboxes.
type SandboxList struct {
	Sandboxes []Sandbox `json:"sandboxes"`
}

// ExtendSandboxRequest is the body of POST /v1/sandboxes/{id}/extend: the
// sandbox then expires TimeoutS seconds from now (capped by the server).
type ExtendSandboxRequest struct {
	TimeoutS float64 `json:"timeout_s"`
}

// ForkSandboxRequest is the body of POST /v1/sandboxes/{id}/fork: Count
// copies (1 to 100) of the sandbox with a copy of its /workspace each,
// owned like it. The answer is a SandboxList of the copies.
//
// Paused copies run nothing until they are resumed or started: where the
// tier saves memory (gVisor) each is paused with the source's memory kept
// on disk, and resume restores it; otherwise each is stopped with its
// files, and start runs it. Such a fork takes one checkpoint and one copy
// of the files, however many copies it makes.
type ForkSandboxRequest struct {
	Count  int  `json:"count"`
	Paused bool `json:"paused,omitempty"`
}

// ExecRequest is the body of POST /v1/sandboxes/{id}/exec.
type ExecRequest struct {
	Cmd   string            `json:"cmd"` // looked up in PATH inside the sandbox if not absolute
	Args  []string          `json:"args,omitempty"`
	Env   map[string]string `json:"env,omitempty"`
	Cwd   string            `json:"cwd,omitempty"`   // default /workspace
	Stdin string            `json:"stdin,omitempty"` // fed to the process, then closed
	// TimeoutS kills the process after this many seconds; 0 means no limit
	// beyond the sandbox's own lifetime and the request's.
	TimeoutS float64 `json:"timeout_s,omitempty"`
	// Background starts the process and answers 202 with its pid at once.
	Background bool `json:"background,omitempty"`
	// OutputFile, with Background, is a path under /workspace or /tmp that
	// receives the process's stdout and stderr.
	OutputFile string `json:"output_file,omitempty"`
}

// ExecEvent is one element of an exec stream.
type ExecEvent struct {
	Type string `json:"type"`           // stdout, stderr, exit or error
	Data string `json:"data,omitempty"` // stdout/stderr bytes (invalid UTF-8 is replaced)
	// ExitCode is set on the exit event: the process's status, or
	// 128+signal when it was killed.
	ExitCode *int `json:"exit_code,omitempty"`
	// Problem is set on the error event, and on an exit event when a
	// resource limit was hit (kind sandbox-limit-exceeded).
	Problem *Problem `json:"problem,omitempty"`
}

// ExecStarted is the 202 body of a background exec.
type ExecStarted struct {
	PID int `json:"pid"`
}

// SandboxProcess is one process inside a sandbox, as seen from inside.
type SandboxProcess struct {
	PID     int      `json:"pid"`
	PPID    int      `json:"ppid"`
	Cmdline []string `json:"cmdline"`
	State   string   `json:"state"` // R, S, Z, ... as in /proc/PID/stat
}

// ProcessList is the body of GET /v1/sandboxes/{id}/processes.
type ProcessList struct {
	Processes []SandboxProcess `json:"processes"`
}

// SignalRequest is the body of POST /v1/sandboxes/{id}/processes/{pid}/signal.
type SignalRequest struct {
	Signal string `json:"signal"` // TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT
}

// SandboxFile describes a file under a sandbox's writable paths.
type SandboxFile struct {
	Name    string    `json:"name"`
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"` // e.g. "-rw-r--r--"
	ModTime time.Time `json:"mod_time"`
	IsDir   bool      `json:"is_dir"`
}

// FileList is the body of GET /v1/sandboxes/{id}/files/list.
type FileList struct {
	Files []SandboxFile `json:"files"`
}

// PortURLRequest asks for a public, signed URL of a port of a sandbox.
type PortURLRequest struct {
	Port int `json:"port"`
	// Path is the path prefix the URL may reach ("/" by default).
	Path string `json:"path,omitempty"`
	// TTLS is the URL's lifetime in seconds (default 3600, at most 86400).
	TTLS float64 `json:"ttl_s,omitempty"`
}

// PortURL is a signed URL that reaches a port of a sandbox without
// credentials until it expires: its path (relative to the API) is bound
// to the sandbox, the port, the path prefix and the expiry.
type PortURL struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// TerminalControl is a text message on a terminal WebSocket
// (GET /v1/sandboxes/{id}/terminal). Binary messages carry the terminal's
// bytes both ways; text messages carry these. From the client:
// {"type":"resize","rows":R,"cols":C} and {"type":"signal","signal":"INT"}.
// From the server, last before it closes: {"type":"exit","exit_code":N},
// or {"type":"error","problem":{...}} when the sandbox went away.
type TerminalControl struct {
	Type     string   `json:"type"`
	Rows     int      `json:"rows,omitempty"`
	Cols     int      `json:"cols,omitempty"`
	Signal   string   `json:"signal,omitempty"`
	ExitCode *int     `json:"exit_code,omitempty"`
	Problem  *Problem `json:"problem,omitempty"`
}

// Types of TerminalControl messages.
const (
	TerminalResize = "resize"
	TerminalSignal = "signal"
	TerminalExit   = "exit"
	TerminalError  = "error"
)

// TerminalMaxMessage is the largest WebSocket message a terminal accepts
// (input or control); a larger one closes the socket with 1009.
const TerminalMaxMessage = 64 << 10

// Snapshot describes a sandbox snapshot (POST /v1/sandboxes/{id}/snapshots,
// GET /v1/snapshots/{id}): a copy of the sandbox's /workspace and, when
// Memory is true, its whole memory state, so that a restore carries on its
// processes where they were (the gVisor tier); otherwise Note says why
// the snapshot holds files only.
type Snapshot struct {
	ID       string        `json:"id"`
	Sandbox  string        `json:"sandbox"` // the sandbox it was taken from
	Owner    string        `json:"owner,omitempty"`
	Tier     string        `json:"tier"`
	Template string        `json:"template"`
	Limits   SandboxLimits `json:"limits"`
	Memory   bool          `json:"memory"`
	Note     string        `json:"note,omitempty"`
	Bytes    int64         `json:"bytes"`
	Created  time.Time     `json:"created"`
	// Volumes are the named volumes its sandbox mounted. Their files are
	// not in the snapshot: a restore mounts the same volumes again (the
	// restoring caller must be allowed to mount each).
	Volumes []SandboxVolume `json:"volumes,omitempty"`
}

// SnapshotList is the body of GET /v1/snapshots.
type SnapshotList struct {
	Snapshots []Snapshot `json:"snapshots"`
}
