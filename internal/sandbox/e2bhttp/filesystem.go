package e2bhttp

// envd's filesystem service and /files (filesystem.go), over the
// sandbox's Files: paths are confined to /workspace and /tmp as on
// /v1/sandboxes (relative paths are under /workspace).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
)

// Bounds of a listing and of one upload.
const (
	maxListDepth   = 16
	maxListEntries = 10000
	maxUploadFiles = 100
)

// entryInfo is envd's EntryInfo in proto3 JSON (int64 as a string).
type entryInfo struct {
	Name         string    `json:"name"`
	Type         string    `json:"type"`
	Path         string    `json:"path"`
	Size         string    `json:"size"`
	Mode         uint32    `json:"mode"`
	Permissions  string    `json:"permissions"`
	Owner        string    `json:"owner"`
	Group        string    `json:"group"`
	ModifiedTime time.Time `json:"modifiedTime"`
}

func wireEntry(fi sandbox.FileInfo) entryInfo {
	t := "FILE_TYPE_FILE"
	switch {
	case fi.IsDir:
		t = "FILE_TYPE_DIRECTORY"
	case fi.Mode&fs.ModeSymlink != 0:
		t = "FILE_TYPE_SYMLINK"
	}
	return entryInfo{Name: fi.Name, Type: t, Path: fi.Path, Size: strconv.FormatInt(fi.Size, 10),
		Mode: uint32(fi.Mode.Perm()), Permissions: fi.Mode.String(), Owner: "user", Group: "user", ModifiedTime: fi.ModTime.UTC()}
}

// checkPath validates a path of a request.
func checkPath(field, p string) error {
	if p == "" {
		return api.FieldErrorf(api.KindValidation, field, "is required: a path under %s or %s", sandbox.WorkspaceDir, sandbox.TmpDir)
	}
	if len(p) > 4096 || strings.ContainsRune(p, 0) {
		return api.FieldErrorf(api.KindValidation, field, "must be at most 4096 bytes without NUL")
	}
	if _, _, err := sandbox.ResolvePath(p); err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	return nil
}

type pathRequest struct {
	Path  string `json:"path"`
	Depth uint32 `json:"depth"`
}

func (h *Handler) rpcStat(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req pathRequest
	if err := readUnary(r, &req); err != nil {
		return err
	}
	if err := checkPath("path", req.Path); err != nil {
		return err
	}
	fi, err := sb.Stat(r.Context(), req.Path)
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	writeUnary(w, map[string]entryInfo{"entry": wireEntry(fi)})
	return nil
}

func (h *Handler) rpcListDir(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req pathRequest
	if err := readUnary(r, &req); err != nil {
		return err
	}
	if err := checkPath("path", req.Path); err != nil {
		return err
	}
	depth := int(max(req.Depth, 1))
	if depth > maxListDepth {
		return api.FieldErrorf(api.KindValidation, "depth", "at most %d", maxListDepth)
	}
	entries := []entryInfo{}
	if err := listTree(r.Context(), sb, req.Path, depth, &entries); err != nil {
		return err
	}
	writeUnary(w, map[string][]entryInfo{"entries": entries})
	return nil
}

// listTree appends the entries under dir, depth levels deep.
func listTree(ctx context.Context, sb sandbox.Sandbox, dir string, depth int, out *[]entryInfo) error {
	infos, err := sb.List(ctx, dir)
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	for _, fi := range infos {
		if len(*out) >= maxListEntries {
			return api.Errorf(api.KindTooLarge, "more than %d entries: list a smaller depth or a subdirectory", maxListEntries)
		}
		*out = append(*out, wireEntry(fi))
		if fi.IsDir && depth > 1 {
			if err := listTree(ctx, sb, fi.Path, depth-1, out); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h *Handler) rpcMakeDir(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req pathRequest
	if err := readUnary(r, &req); err != nil {
		return err
	}
	if err := checkPath("path", req.Path); err != nil {
		return err
	}
	if _, err := sb.Stat(r.Context(), req.Path); err == nil {
		return api.Errorf(api.KindConflict, "%s already exists", req.Path)
	}
	if err := sb.Mkdir(r.Context(), req.Path, 0o755); err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	fi, err := sb.Stat(r.Context(), req.Path)
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	writeUnary(w, map[string]entryInfo{"entry": wireEntry(fi)})
	return nil
}

func (h *Handler) rpcRemove(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req pathRequest
	if err := readUnary(r, &req); err != nil {
		return err
	}
	if err := checkPath("path", req.Path); err != nil {
		return err
	}
	if _, err := sb.Stat(r.Context(), req.Path); err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	if err := sb.Remove(r.Context(), req.Path); err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	writeUnary(w, struct{}{})
	return nil
}

// rpcMove renames with mv inside the sandbox, as the sandbox's user: the
// tier-neutral Files has no rename, and both paths are checked first.
func (h *Handler) rpcMove(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req struct {
		Source      string `json:"source"`
		Destination string `json:"destination"`
	}
	if err := readUnary(r, &req); err != nil {
		return err
	}
	if err := checkPath("source", req.Source); err != nil {
		return err
	}
	if err := checkPath("destination", req.Destination); err != nil {
		return err
	}
	if _, err := sb.Stat(r.Context(), req.Source); err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	var stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "mv", Args: []string{"-T", "--", abs(req.Source), abs(req.Destination)}}, io.Discard, &stderr)
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	if code != 0 {
		return api.Errorf(api.KindBadRequest, "move %s to %s: %s", req.Source, req.Destination, strings.TrimSpace(stderr.String()))
	}
	fi, err := sb.Stat(r.Context(), req.Destination)
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	writeUnary(w, map[string]entryInfo{"entry": wireEntry(fi)})
	return nil
}

// abs is p as an absolute sandbox path (relative paths are under
// /workspace).
func abs(p string) string {
	root, rel, _ := sandbox.ResolvePath(p)
	return path.Join(root, rel)
}

func (h *Handler) handleDownload(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	p := r.URL.Query().Get("path")
	if err := checkPath("path", p); err != nil {
		return err
	}
	fi, err := sb.Stat(r.Context(), p)
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	if fi.IsDir {
		return api.FieldErrorf(api.KindBadRequest, "path", "%s is a directory", p)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size, 10))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := sb.ReadFile(r.Context(), p, w); err != nil {
		// Headers are gone: cut the response so the client sees it.
		h.log.WarnContext(r.Context(), "e2b download", "sandbox", sb.ID(), "path", p, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// handleUpload writes the request's files: one octet-stream body to
// ?path=, or the "file" parts of a multipart form, each to ?path= or, if
// absent, to its file name.
func (h *Handler) handleUpload(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	target := r.URL.Query().Get("path")
	if target != "" {
		if err := checkPath("path", target); err != nil {
			return err
		}
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return api.Errorf(api.KindUnsupportedMedia, "Content-Encoding %q is not supported: upload without gzip", enc)
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return api.Errorf(api.KindUnsupportedMedia, "Content-Type: want multipart/form-data or application/octet-stream")
	}
	written := []entryInfo{}
	write := func(p string, body io.Reader) error {
		if err := checkPath("path", p); err != nil {
			return err
		}
		if fi, err := sb.Stat(r.Context(), p); err == nil && fi.IsDir {
			return api.FieldErrorf(api.KindBadRequest, "path", "%s is a directory", p)
		}
		if err := sb.WriteFile(r.Context(), p, body, 0o644); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return api.Errorf(api.KindTooLarge, "upload larger than the request limit of %d bytes", mbe.Limit)
			}
			return sandboxhttp.ProblemFor(err)
		}
		written = append(written, entryInfo{Name: path.Base(p), Type: "file", Path: abs(p)})
		return nil
	}
	switch mt {
	case "application/octet-stream":
		if target == "" {
			return api.FieldErrorf(api.KindValidation, "path", "is required with an octet-stream body")
		}
		if err := write(target, r.Body); err != nil {
			return err
		}
	case "multipart/form-data":
		if params["boundary"] == "" {
			return api.Errorf(api.KindBadRequest, "multipart body without a boundary")
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return api.Errorf(api.KindBadRequest, "malformed multipart body: %v", bodyError(err))
			}
			if part.FormName() != "file" {
				continue
			}
			if len(written) >= maxUploadFiles {
				return api.Errorf(api.KindTooLarge, "at most %d files per upload", maxUploadFiles)
			}
			dest := target
			if dest == "" {
				// The raw file name: Part.FileName keeps only its base.
				_, dp, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
				dest = dp["filename"]
			}
			if err := write(dest, part); err != nil {
				return err
			}
		}
		if len(written) == 0 {
			return api.FieldErrorf(api.KindValidation, "file", "no file part in the form")
		}
	default:
		return api.Errorf(api.KindUnsupportedMedia, "Content-Type %s: want multipart/form-data or application/octet-stream", mt)
	}
	writeJSON(w, http.StatusOK, written)
	return nil
}
