package sandboxenv

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

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
	code, err := sandbox.Exec(ectx, sb, sandbox.ExecSpec{Cmd: cmd, Args: args, Env: req.Env, Stdin: strings.NewReader(req.Stdin)}, stdout, stderr)
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
