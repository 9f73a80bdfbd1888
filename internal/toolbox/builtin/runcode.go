package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/toolbox"
)

// Output limits of run_code.
const (
	maxStreamBytes   = 1 << 20  // stdout and stderr each
	maxFileInline    = 64 << 10 // a written file's content is returned up to this size
	maxFilesReported = 100
	defaultRunTime   = 30 * time.Second
)

// languages maps run_code's language to the interpreter and script name.
var languages = map[string]struct{ cmd, script string }{
	"python":     {"python3", "/tmp/run_code.py"},
	"javascript": {"node", "/tmp/run_code.js"},
	"bash":       {"bash", "/tmp/run_code.sh"},
}

type runCodeArgs struct {
	Language string            `json:"language"`
	Code     string            `json:"code"`
	Files    map[string]string `json:"files"`
	Tier     string            `json:"tier"`
	TimeoutS float64           `json:"timeout_s"`
	Stdin    string            `json:"stdin"`
}

// WrittenFile is a file under /workspace after the run.
type WrittenFile struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	Content   string `json:"content,omitempty"` // small UTF-8 files only
	Truncated bool   `json:"truncated,omitempty"`
}

// RunCodeOutput is run_code's structured result.
type RunCodeOutput struct {
	ExitCode        int           `json:"exit_code"`
	Stdout          string        `json:"stdout"`
	Stderr          string        `json:"stderr"`
	StdoutTruncated bool          `json:"stdout_truncated,omitempty"`
	StderrTruncated bool          `json:"stderr_truncated,omitempty"`
	TimedOut        bool          `json:"timed_out,omitempty"`
	Limit           string        `json:"limit,omitempty"` // memory, processes or disk limit hit
	Files           []WrittenFile `json:"files"`
	Tier            string        `json:"tier"`
	DurationMs      float64       `json:"duration_ms"`
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - c.buf.Len()
	if room < len(p) {
		c.truncated = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

// workspacePath turns a files key into an absolute path under /workspace.
func workspacePath(p string) (string, error) {
	if strings.ContainsRune(p, 0) || p == "" {
		return "", fmt.Errorf("empty or contains NUL")
	}
	if !strings.HasPrefix(p, "/") {
		p = "/workspace/" + p
	}
	clean := path.Clean(p)
	if clean != "/workspace" && strings.HasPrefix(clean, "/workspace/") {
		return clean, nil
	}
	return "", fmt.Errorf("must be a path under /workspace")
}

func (p *Provider) runCode(ctx context.Context, c toolbox.Caller, raw json.RawMessage) (toolbox.Result, error) {
	const name = "run_code"
	var a runCodeArgs
	if err := decode(name, raw, &a); err != nil {
		return toolbox.Result{}, err
	}
	if p.d.Sandboxes == nil {
		why := "sandboxes are not available on this node"
		if p.d.SandboxesOff != nil {
			why += ": " + p.d.SandboxesOff.Error()
		}
		return toolbox.Result{}, toolbox.Errorf(toolbox.CodeUnavailable, name, "%s", why)
	}
	lang := languages[a.Language]
	files := make(map[string]string, len(a.Files))
	for k, v := range a.Files {
		wp, err := workspacePath(k)
		if err != nil {
			e := toolbox.Errorf(toolbox.CodeInvalidArgs, name, "files[%q]: %v, e.g. \"data/input.csv\"", k, err)
			e.Fields = []toolbox.FieldError{{Field: "files", Detail: err.Error()}}
			return toolbox.Result{}, e
		}
		files[wp] = v
	}
	tier := a.Tier
	if tier == "" {
		tier = sandbox.TierProcess
	}
	timeout := defaultRunTime
	if a.TimeoutS > 0 {
		timeout = time.Duration(a.TimeoutS * float64(time.Second))
	}
	start := time.Now()
	// The sandbox outlives the run by a minute at most: it is deleted right
	// after, and expires on its own should that fail.
	sb, err := p.d.Sandboxes.Create(ctx, c, sandbox.Spec{Tier: tier, Timeout: timeout + time.Minute, Labels: map[string]string{"tool": name}})
	if err != nil {
		return toolbox.Result{}, createError(name, tier, err)
	}
	id := sb.ID()
	defer func() {
		// Deleting tears down namespaces and cgroups; the caller need not wait.
		go func() { _ = p.d.Sandboxes.Delete(context.Background(), id) }()
	}()
	for fp, content := range files {
		if err := writeFile(ctx, sb, fp, content); err != nil {
			return toolbox.Result{}, toolbox.Wrap(toolbox.CodeInvalidArgs, name, err, "write files[%q]: %v", fp, err)
		}
	}
	if err := sb.WriteFile(ctx, lang.script, strings.NewReader(a.Code), 0o644); err != nil {
		return toolbox.Result{}, toolbox.Wrap(toolbox.CodeToolFailed, name, err, "write code: %v", err)
	}
	xctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	spec := sandbox.ExecSpec{Cmd: lang.cmd, Args: []string{lang.script}, Cwd: "/workspace"}
	if a.Stdin != "" {
		spec.Stdin = strings.NewReader(a.Stdin)
	}
	stdout, stderr := &capped{max: maxStreamBytes}, &capped{max: maxStreamBytes}
	code, err := sb.Exec(xctx, spec, stdout, stderr)
	out := RunCodeOutput{ExitCode: code, Tier: tier}
	res := toolbox.Result{}
	switch {
	case err == nil:
	case errors.Is(err, sandbox.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		out.TimedOut, res.IsError = true, true
	case errors.Is(err, sandbox.ErrMemoryLimit):
		out.Limit, res.IsError = "memory", true
	case errors.Is(err, sandbox.ErrPidsLimit):
		out.Limit, res.IsError = "processes", true
	case errors.Is(err, sandbox.ErrDiskLimit):
		out.Limit, res.IsError = "disk", true
	case code < 0:
		return toolbox.Result{}, toolbox.Wrap(toolbox.CodeToolFailed, name, err, "run %s: %v", lang.cmd, err)
	}
	out.Stdout, out.StdoutTruncated = strings.ToValidUTF8(stdout.buf.String(), "\uFFFD"), stdout.truncated
	out.Stderr, out.StderrTruncated = strings.ToValidUTF8(stderr.buf.String(), "\uFFFD"), stderr.truncated
	out.Files = written(ctx, sb, files)
	out.DurationMs = float64(time.Since(start).Microseconds()) / 1000
	b, err := json.Marshal(out)
	if err != nil {
		return toolbox.Result{}, fmt.Errorf("encode result: %w", err)
	}
	res.Structured = json.RawMessage(b)
	res.Text = summary(out)
	return res, nil
}

// createError explains why run_code could not get a sandbox: an unknown
// tier, or the caller's sandbox caps or quota.
func createError(name, tier string, err error) error {
	var p *api.Problem
	switch {
	case errors.Is(err, sandbox.ErrUnknownTier) || errors.Is(err, sandbox.ErrUnavailable):
		e := toolbox.Wrap(toolbox.CodeInvalidArgs, name, err, "tier %q is not available on this node: %v", tier, err)
		e.Fields = []toolbox.FieldError{{Field: "tier", Detail: "use process, or gvisor where runsc is installed"}}
		return e
	case !errors.As(err, &p):
	case p.Kind() == api.KindRateLimited:
		return toolbox.Wrap(toolbox.CodeRateLimited, name, err, "%s", p.Detail)
	case p.Kind() == api.KindValidation:
		e := toolbox.Wrap(toolbox.CodeInvalidArgs, name, err, "%s (the sandbox lives timeout_s plus 60 s)", p.Detail)
		for _, fe := range p.Errors {
			e.Fields = append(e.Fields, toolbox.FieldError{Field: fe.Field, Detail: fe.Detail})
		}
		return e
	}
	return toolbox.Wrap(toolbox.CodeToolFailed, name, err, "create sandbox: %v", err)
}

// summary is the human-readable text of a run.
func summary(o RunCodeOutput) string {
	var b strings.Builder
	switch {
	case o.TimedOut:
		b.WriteString("timed out\n")
	case o.Limit != "":
		fmt.Fprintf(&b, "stopped: %s limit exceeded\n", o.Limit)
	default:
		fmt.Fprintf(&b, "exit code %d\n", o.ExitCode)
	}
	if o.Stdout != "" {
		b.WriteString("--- stdout\n" + o.Stdout)
		if !strings.HasSuffix(o.Stdout, "\n") {
			b.WriteString("\n")
		}
	}
	if o.Stderr != "" {
		b.WriteString("--- stderr\n" + o.Stderr)
		if !strings.HasSuffix(o.Stderr, "\n") {
			b.WriteString("\n")
		}
	}
	for _, f := range o.Files {
		fmt.Fprintf(&b, "--- wrote %s (%d bytes)\n", f.Path, f.Size)
	}
	return b.String()
}

func writeFile(ctx context.Context, sb sandbox.Files, p, content string) error {
	if dir := path.Dir(p); dir != "/workspace" {
		if err := sb.Mkdir(ctx, dir, 0o755); err != nil {
			return err
		}
	}
	return sb.WriteFile(ctx, p, strings.NewReader(content), 0o644)
}

// written lists the files under /workspace after the run, leaving out the
// inputs the code did not change; small UTF-8 files come with content.
func written(ctx context.Context, sb sandbox.Files, inputs map[string]string) []WrittenFile {
	out := []WrittenFile{}
	var walk func(dir string, depth int)
	walk = func(dir string, depth int) {
		if depth > 8 || len(out) >= maxFilesReported {
			return
		}
		ents, err := sb.List(ctx, dir)
		if err != nil {
			return
		}
		for _, e := range ents {
			if len(out) >= maxFilesReported {
				return
			}
			p := path.Join(dir, e.Name)
			if e.IsDir {
				walk(p, depth+1)
				continue
			}
			f := WrittenFile{Path: p, Size: e.Size}
			in, wasInput := inputs[p]
			if e.Size <= maxFileInline {
				var buf bytes.Buffer
				if err := sb.ReadFile(ctx, p, &buf); err == nil {
					if wasInput && buf.String() == in {
						continue
					}
					if utf8.Valid(buf.Bytes()) {
						f.Content = buf.String()
					}
				}
			} else {
				f.Truncated = true
			}
			out = append(out, f)
		}
	}
	walk("/workspace", 0)
	return out
}
