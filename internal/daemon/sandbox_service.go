package daemon

// env.sandbox for agent code (sandbox_service.go): the session service
// "sandbox" with methods run, exec and delete.
//
// run makes a sandbox owned by the agent's owner and tied to the calling
// session (its egress grants and secrets are the manifest's), writes the
// given files, runs the code or command, answers {stdout, stderr,
// exit_code, files} (files: what the run created or changed under
// /workspace) and deletes the sandbox, unless keep is set: then the answer
// carries its id for exec and delete. Every call is authorized by Cedar as
// the session (sandbox.create, sandbox.exec, sandbox.delete), and counts
// against the owner's sandbox quota.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
)

// Bounds of env.sandbox calls.
const (
	runDefaultTimeout = 30 * time.Second
	runMaxTimeout     = 10 * time.Minute
	keptTimeout       = 10 * time.Minute // life of a kept sandbox
	runMaxOutput      = 1 << 20          // per stream; the rest is cut
	runMaxFileBytes   = 1 << 20          // per returned file
	runMaxFilesBytes  = 4 << 20          // all returned files
	runMaxFiles       = 64
)

// languages maps env.sandbox.run's language to the file its code goes in
// and the command that runs it.
var languages = map[string]struct{ file, cmd string }{
	"python":     {"main.py", "python3"},
	"javascript": {"main.js", "node"},
	"bash":       {"main.sh", "bash"},
}

// sandboxRun is the argument of run and exec.
type sandboxRun struct {
	ID       string            `json:"id"` // exec only
	Language string            `json:"language"`
	Code     string            `json:"code"`
	Cmd      string            `json:"cmd"`
	Args     []string          `json:"args"`
	Files    map[string]string `json:"files"`
	Stdin    string            `json:"stdin"`
	Env      map[string]string `json:"env"`
	Tier     string            `json:"tier"`     // run only
	Timeout  float64           `json:"timeout"`  // seconds, this exec
	Keep     bool              `json:"keep"`     // run only
	Template string            `json:"template"` // run only
}

// sandboxRunResult is the answer of run and exec.
type sandboxRunResult struct {
	ID       string            `json:"id,omitempty"` // set when the sandbox is kept
	Stdout   string            `json:"stdout"`
	Stderr   string            `json:"stderr"`
	ExitCode int               `json:"exit_code"`
	Files    map[string]string `json:"files"`
	// FilesBase64 holds returned files that are not UTF-8 text.
	FilesBase64 map[string]string `json:"files_base64,omitempty"`
	// Error names a limit the run hit (timeout, memory, processes, disk).
	Error     string `json:"error,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// sandboxService implements session.Service for env.sandbox.
type sandboxService struct {
	d           *Daemon
	parts       *sandboxParts
	unavailable error
}

var _ session.Service = sandboxService{}

func (s sandboxService) Invoke(ctx context.Context, c session.Caller, method string, args []byte) ([]byte, error) {
	if s.unavailable != nil {
		return nil, isolate.HostErrorf("NotSupportedError", "sandboxes are unavailable on this node: %v", s.unavailable)
	}
	var req sandboxRun
	if err := json.Unmarshal(args, &req); err != nil {
		return nil, isolate.HostErrorf("TypeError", "env.sandbox.%s: %v", method, err)
	}
	var (
		out any
		err error
	)
	switch method {
	case "run":
		out, err = s.run(ctx, c, req)
	case "exec":
		out, err = s.exec(ctx, c, req)
	case "delete":
		err = s.delete(ctx, c, req.ID)
		out = map[string]bool{"deleted": err == nil}
	default:
		return nil, isolate.HostErrorf("NotSupportedError", "env.sandbox has no method %q (run, exec, delete)", method)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// authorize asks Cedar whether the session may do action to the sandbox.
func (s sandboxService) authorize(ctx context.Context, c session.Caller, action, id string) error {
	sid, err := identity.NewID(s.d.sec.TrustDomain(), identity.KindSession, c.Agent+"/"+c.Session)
	if err != nil {
		return fmt.Errorf("session identity: %w", err)
	}
	p := security.Principal{ID: sid.String(), Kind: string(identity.KindSession)}
	if err := s.d.sec.Authorize(ctx, p, action, security.Resource{Type: policy.TypeSandbox, ID: id}); err != nil {
		return isolate.HostErrorf("PermissionError", "%s", problemText(err))
	}
	return nil
}

func problemText(err error) string {
	if p := api.AsProblem(err); p != nil {
		return p.Detail
	}
	return err.Error()
}

func (s sandboxService) run(ctx context.Context, c session.Caller, req sandboxRun) (*sandboxRunResult, error) {
	if req.ID != "" {
		return nil, &isolate.HostError{Name: "TypeError", Message: "env.sandbox.run makes a new sandbox: use env.sandbox.exec(id, ...) for a kept one"}
	}
	if err := checkRun(req); err != nil {
		return nil, err
	}
	id := sandbox.NewID()
	if err := s.authorize(ctx, c, sandboxhttp.ActionCreate, id); err != nil {
		return nil, err
	}
	info, ok, err := s.d.sessions.AgentInfo(ctx, c.Agent)
	if err != nil || !ok {
		return nil, fmt.Errorf("agent %s: not deployed (%v)", c.Agent, err)
	}
	tier := req.Tier
	if tier == "" {
		tier = sandbox.TierProcess
	}
	spec := sandbox.Spec{Tier: tier, Template: req.Template, Labels: map[string]string{}}
	if len(c.Egress) > 0 {
		spec.Labels[sandbox.LabelEgress] = strings.Join(c.Egress, ",")
	}
	if len(info.Manifest.Secrets) > 0 {
		spec.Labels[sandbox.LabelSecrets] = strings.Join(info.Manifest.Secrets, ",")
	}
	if req.Keep {
		spec.Timeout = keptTimeout
	}
	owner := info.Owner
	if owner == "" { // deployed by an administrator
		owner = s.d.sec.Admin().ID
	}
	ownSandbox(&spec, owner, c.Agent, c.Session)
	sb, err := s.parts.manager.Create(ctx, id, spec)
	if api.IsKind(err, api.KindRateLimited) || api.IsKind(err, api.KindValidation) {
		return nil, isolate.HostErrorf("LimitError", "%s", problemText(err)) // the owner's caps (sandboxCaps)
	}
	if err != nil {
		return nil, isolate.HostErrorf("SandboxError", "%v", err)
	}
	if !req.Keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := s.parts.manager.Delete(dctx, id); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
				s.d.log.Warn("delete run sandbox", "sandbox", id, "err", err)
			}
		}()
	}
	res, err := runIn(ctx, sb, req)
	if err != nil {
		return nil, err
	}
	if req.Keep {
		res.ID = id
	}
	return res, nil
}

func (s sandboxService) exec(ctx context.Context, c session.Caller, req sandboxRun) (*sandboxRunResult, error) {
	if req.ID == "" {
		return nil, &isolate.HostError{Name: "TypeError", Message: "env.sandbox.exec needs the id of a sandbox kept with env.sandbox.run({keep: true, ...})"}
	}
	if req.Keep || req.Tier != "" || req.Template != "" {
		return nil, &isolate.HostError{Name: "TypeError", Message: "env.sandbox.exec runs in an existing sandbox: keep, tier and template do not apply"}
	}
	if err := checkRun(req); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, sandboxhttp.ActionExec, req.ID); err != nil {
		return nil, err
	}
	sb, err := s.parts.manager.Get(req.ID)
	if err != nil {
		return nil, isolate.HostErrorf("NotFoundError", "sandbox %s does not exist (deleted or expired)", req.ID)
	}
	return runIn(ctx, sb, req)
}

func (s sandboxService) delete(ctx context.Context, c session.Caller, id string) error {
	if id == "" {
		return &isolate.HostError{Name: "TypeError", Message: "env.sandbox.delete needs a sandbox id"}
	}
	if err := s.authorize(ctx, c, sandboxhttp.ActionDelete, id); err != nil {
		return err
	}
	if err := s.parts.manager.Delete(ctx, id); err != nil {
		if errors.Is(err, sandbox.ErrNotFound) {
			return isolate.HostErrorf("NotFoundError", "sandbox %s does not exist (deleted or expired)", id)
		}
		return isolate.HostErrorf("SandboxError", "%v", err)
	}
	return nil
}

// checkRun validates the argument of run and exec.
func checkRun(req sandboxRun) error {
	switch {
	case req.Language != "" && req.Cmd != "":
		return &isolate.HostError{Name: "TypeError", Message: "env.sandbox: give either language and code, or cmd and args, not both"}
	case req.Language == "" && req.Cmd == "":
		return &isolate.HostError{Name: "TypeError", Message: "env.sandbox: give language (python, javascript or bash) and code, or cmd and args"}
	case req.Language != "":
		if _, ok := languages[req.Language]; !ok {
			return isolate.HostErrorf("TypeError", "env.sandbox: language %q: want python, javascript or bash", req.Language)
		}
	case req.Code != "":
		return &isolate.HostError{Name: "TypeError", Message: "env.sandbox: code needs a language; with cmd, pass the program in args or files"}
	}
	if req.Timeout < 0 || req.Timeout > runMaxTimeout.Seconds() {
		return isolate.HostErrorf("TypeError", "env.sandbox: timeout must be between 0 (default %s) and %.0f seconds", runDefaultTimeout, runMaxTimeout.Seconds())
	}
	for p := range req.Files {
		if _, _, err := sandbox.ResolvePath(p); err != nil {
			return isolate.HostErrorf("TypeError", "env.sandbox: files[%q]: paths must be under /workspace or /tmp (or relative to /workspace)", p)
		}
	}
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return isolate.HostErrorf("TypeError", "env.sandbox: env[%q]: names must be non-empty without '=' or NUL, values without NUL", k)
		}
	}
	return nil
}

// runIn writes the files and code, runs, and collects what changed.
func runIn(ctx context.Context, sb sandbox.Sandbox, req sandboxRun) (*sandboxRunResult, error) {
	files := maps.Clone(req.Files)
	cmd, args := req.Cmd, req.Args
	var codeFile string
	if lang, ok := languages[req.Language]; ok {
		codeFile = path.Join(sandbox.WorkspaceDir, lang.file)
		if files == nil {
			files = map[string]string{}
		}
		files[codeFile] = req.Code
		cmd, args = lang.cmd, append([]string{codeFile}, req.Args...)
	}
	for p, content := range files {
		root, rel, err := sandbox.ResolvePath(p)
		if err != nil {
			return nil, isolate.HostErrorf("TypeError", "env.sandbox: files[%q]: %v", p, err)
		}
		if dir := path.Dir(rel); dir != "." {
			if err := sb.Mkdir(ctx, path.Join(root, dir), 0o755); err != nil {
				return nil, isolate.HostErrorf("SandboxError", "mkdir for %s: %v", p, err)
			}
		}
		if err := sb.WriteFile(ctx, p, strings.NewReader(content), 0o644); err != nil {
			return nil, isolate.HostErrorf("SandboxError", "write %s: %v", p, err)
		}
	}
	before := map[string]sandbox.FileInfo{}
	walk(ctx, sb, sandbox.WorkspaceDir, before)
	timeout := runDefaultTimeout
	if req.Timeout > 0 {
		timeout = time.Duration(req.Timeout * float64(time.Second))
	}
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stdout, stderr := &capped{max: runMaxOutput}, &capped{max: runMaxOutput}
	code, err := sb.Exec(ectx, sandbox.ExecSpec{Cmd: cmd, Args: args, Env: req.Env, Stdin: strings.NewReader(req.Stdin)}, stdout, stderr)
	res := &sandboxRunResult{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: code,
		Files: map[string]string{}, Truncated: stdout.cut || stderr.cut}
	switch {
	case err == nil:
	case errors.Is(err, sandbox.ErrTimeout):
		res.Error = fmt.Sprintf("timeout: killed after %s", timeout)
	case errors.Is(err, sandbox.ErrMemoryLimit), errors.Is(err, sandbox.ErrPidsLimit), errors.Is(err, sandbox.ErrDiskLimit):
		res.Error = err.Error()
	default:
		return nil, isolate.HostErrorf("SandboxError", "%v", err)
	}
	after := map[string]sandbox.FileInfo{}
	walk(ctx, sb, sandbox.WorkspaceDir, after)
	total := 0
	for p, fi := range after {
		old, had := before[p]
		if fi.IsDir || p == codeFile || (had && old.Size == fi.Size && old.ModTime.Equal(fi.ModTime)) {
			continue
		}
		if len(res.Files)+len(res.FilesBase64) >= runMaxFiles || fi.Size > runMaxFileBytes || total+int(fi.Size) > runMaxFilesBytes {
			res.Truncated = true
			continue
		}
		var buf bytes.Buffer
		if err := sb.ReadFile(ctx, p, &buf); err != nil {
			continue
		}
		total += buf.Len()
		if utf8.Valid(buf.Bytes()) {
			res.Files[p] = buf.String()
		} else {
			if res.FilesBase64 == nil {
				res.FilesBase64 = map[string]string{}
			}
			res.FilesBase64[p] = base64.StdEncoding.EncodeToString(buf.Bytes())
		}
	}
	return res, nil
}

// walk lists dir recursively into out (bounded).
func walk(ctx context.Context, sb sandbox.Sandbox, dir string, out map[string]sandbox.FileInfo) {
	if len(out) > 1000 {
		return
	}
	list, err := sb.List(ctx, dir)
	if err != nil {
		return
	}
	for _, fi := range list {
		p := path.Join(dir, fi.Name)
		out[p] = fi
		if fi.IsDir {
			walk(ctx, sb, p, out)
		}
	}
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf bytes.Buffer
	max int
	cut bool
}

var _ io.Writer = (*capped)(nil)

func (c *capped) Write(b []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(b) {
		c.cut = true
		if room > 0 {
			c.buf.Write(b[:room])
		}
		return len(b), nil
	}
	return c.buf.Write(b)
}

func (c *capped) String() string { return c.buf.String() }
