package sandboxhttp

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// fileTarget resolves the sandbox and the ?path= of a file request.
func (h *Handler) fileTarget(r *http.Request, required bool) (sandbox.Sandbox, string, error) {
	sb, err := h.m.Get(r.PathValue("sandbox"))
	if err != nil {
		return nil, "", problemFor(err)
	}
	p := r.URL.Query().Get("path")
	if p == "" && required {
		return nil, "", api.FieldErrorf(api.KindBadRequest, "path", "missing ?path=: give a path under %s or %s", sandbox.WorkspaceDir, sandbox.TmpDir)
	}
	if strings.ContainsRune(p, 0) {
		return nil, "", api.FieldErrorf(api.KindBadRequest, "path", "path must not contain NUL")
	}
	if _, _, err := sandbox.ResolvePath(p); err != nil {
		return nil, "", problemFor(err)
	}
	return sb, p, nil
}

func (h *Handler) handlePutFile(w http.ResponseWriter, r *http.Request) error {
	sb, p, err := h.fileTarget(r, true)
	if err != nil {
		return err
	}
	perm := fs.FileMode(0o644)
	if m := r.URL.Query().Get("mode"); m != "" {
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil || v > 0o777 {
			return api.FieldErrorf(api.KindBadRequest, "mode", "mode %q: want octal permission bits such as 0644 or 0755", m)
		}
		perm = fs.FileMode(v)
	}
	if fi, err := sb.Stat(r.Context(), p); err == nil && fi.IsDir {
		return api.FieldErrorf(api.KindConflict, "path", "%s is a directory; upload to a file path inside it", p)
	}
	if err := sb.WriteFile(r.Context(), p, r.Body, perm); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return api.Errorf(api.KindTooLarge, "file is larger than the request limit of %d bytes", mbe.Limit)
		}
		return problemFor(err)
	}
	fi, err := sb.Stat(r.Context(), p)
	if err != nil {
		return problemFor(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, wireFile(fi))
	return nil
}

func (h *Handler) handleGetFile(w http.ResponseWriter, r *http.Request) error {
	sb, p, err := h.fileTarget(r, true)
	if err != nil {
		return err
	}
	fi, err := sb.Stat(r.Context(), p)
	if err != nil {
		return problemFor(err)
	}
	if fi.IsDir {
		return api.FieldErrorf(api.KindBadRequest, "path", "%s is a directory: list it with GET .../files/list?path=", p)
	}
	lw := &lazyWriter{w: w}
	if err := sb.ReadFile(r.Context(), p, lw); err != nil {
		if !lw.started {
			return problemFor(err)
		}
		// Headers are gone; cut the response so the client sees an error.
		h.log.WarnContext(r.Context(), "sandbox file download", "sandbox", sb.ID(), "path", p, "err", err)
		panic(http.ErrAbortHandler)
	}
	lw.commit()
	return nil
}

// lazyWriter commits a 200 octet-stream answer on the first write.
type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) commit() {
	if l.started {
		return
	}
	l.started = true
	l.w.Header().Set("Content-Type", "application/octet-stream")
	l.w.Header().Set("X-Content-Type-Options", "nosniff")
	l.w.WriteHeader(http.StatusOK)
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.commit()
	return l.w.Write(p)
}

func (h *Handler) handleListFiles(w http.ResponseWriter, r *http.Request) error {
	sb, p, err := h.fileTarget(r, false)
	if err != nil {
		return err
	}
	infos, err := sb.List(r.Context(), p)
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return api.FieldErrorf(api.KindBadRequest, "path", "%s is not a directory: use .../files/stat", p)
		}
		return problemFor(err)
	}
	out := api.FileList{Files: make([]api.SandboxFile, 0, len(infos))}
	for _, fi := range infos {
		out.Files = append(out.Files, wireFile(fi))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) handleStatFile(w http.ResponseWriter, r *http.Request) error {
	sb, p, err := h.fileTarget(r, true)
	if err != nil {
		return err
	}
	fi, err := sb.Stat(r.Context(), p)
	if err != nil {
		return problemFor(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, wireFile(fi))
	return nil
}

func (h *Handler) handleMkdir(w http.ResponseWriter, r *http.Request) error {
	sb, p, err := h.fileTarget(r, true)
	if err != nil {
		return err
	}
	if err := sb.Mkdir(r.Context(), p, 0o755); err != nil {
		return problemFor(err)
	}
	fi, err := sb.Stat(r.Context(), p)
	if err != nil {
		return problemFor(err)
	}
	httpapi.WriteJSON(w, http.StatusCreated, wireFile(fi))
	return nil
}

func (h *Handler) handleRemoveFile(w http.ResponseWriter, r *http.Request) error {
	sb, p, err := h.fileTarget(r, true)
	if err != nil {
		return err
	}
	if err := sb.Remove(r.Context(), p); err != nil {
		return problemFor(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func wireFile(fi sandbox.FileInfo) api.SandboxFile {
	return api.SandboxFile{Name: fi.Name, Path: fi.Path, Size: fi.Size, Mode: fi.Mode.String(),
		ModTime: fi.ModTime.UTC(), IsDir: fi.IsDir}
}

func (h *Handler) handleProcesses(w http.ResponseWriter, r *http.Request) error {
	sb, err := h.m.Get(r.PathValue("sandbox"))
	if err != nil {
		return problemFor(err)
	}
	ps, err := sb.Processes(r.Context())
	if err != nil {
		return problemFor(err)
	}
	out := api.ProcessList{Processes: make([]api.SandboxProcess, 0, len(ps))}
	for _, p := range ps {
		out.Processes = append(out.Processes, api.SandboxProcess{PID: p.PID, PPID: p.PPID, Cmdline: p.Cmdline, State: p.State})
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// signals are the signals a client may send, by name.
var signals = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
	"QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT,
}

// ParseSignal reads a signal name such as TERM or SIGTERM.
func ParseSignal(name string) (os.Signal, error) {
	s, ok := signals[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
	if !ok {
		return nil, api.FieldErrorf(api.KindValidation, "signal", "unknown signal %q: want one of TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT", name)
	}
	return s, nil
}

func (h *Handler) handleSignal(w http.ResponseWriter, r *http.Request) error {
	sb, err := h.m.Get(r.PathValue("sandbox"))
	if err != nil {
		return problemFor(err)
	}
	pid, err := strconv.Atoi(r.PathValue("pid"))
	if err != nil || pid < 1 {
		return api.FieldErrorf(api.KindBadRequest, "pid", "pid %q: want a positive process id as listed by .../processes", r.PathValue("pid"))
	}
	if pid == 1 {
		return api.FieldErrorf(api.KindForbidden, "pid", "pid 1 is the sandbox's init: delete the sandbox to stop everything")
	}
	var req api.SignalRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	sig, err := ParseSignal(req.Signal)
	if err != nil {
		return err
	}
	if err := sb.Signal(r.Context(), pid, sig); err != nil {
		return problemFor(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
