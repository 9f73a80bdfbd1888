package e2bhttp

// The data plane's front (envd.go): every envd call names its sandbox in
// the E2b-Sandbox-Id header (the SDK sends it when its sandbox URL is
// set), authenticates with the envd access token of that sandbox
// (X-Access-Token) or an API key, and is authorized like the matching
// /v1/sandboxes route.

import (
	"net/http"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
)

// envdFunc serves one envd call on a sandbox the caller may act on.
type envdFunc func(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error

// Error formats of envd's two kinds of routes.
const (
	formatConnect = iota // Connect RPC: {code: "not_found", message}
	formatREST           // /files: {code: 404, message}
)

func (h *Handler) envdRoutes(r *httpapi.Router) {
	rpc := func(service, method, action, summary string, fn envdFunc) {
		e2bRoute(r, "POST", "/"+service+"/"+method, "envd "+service+"/"+method+": "+summary, h.envd(action, formatConnect, fn))
	}
	const proc, fsys = "process.Process", "filesystem.Filesystem"
	rpc(proc, "Start", sandbox.ActionExec, "start a process; stream start, output and end events (Connect server stream).", h.rpcStart)
	rpc(proc, "Connect", sandbox.ActionExec, "stream the events of a running process.", h.rpcConnect)
	rpc(proc, "List", sandbox.ActionRead, "list the processes started through envd.", h.rpcList)
	rpc(proc, "SendInput", sandbox.ActionExec, "write to a process's stdin.", h.rpcSendInput)
	rpc(proc, "CloseStdin", sandbox.ActionExec, "close a process's stdin.", h.rpcCloseStdin)
	rpc(proc, "SendSignal", sandbox.ActionExec, "send SIGTERM or SIGKILL to a process.", h.rpcSendSignal)
	rpc(proc, "Update", sandbox.ActionExec, "resize a process's terminal (pty.size).", h.rpcUpdate)
	rpc(fsys, "Stat", sandbox.ActionRead, "describe a path.", h.rpcStat)
	rpc(fsys, "ListDir", sandbox.ActionRead, "list a directory (depth levels).", h.rpcListDir)
	rpc(fsys, "MakeDir", sandbox.ActionWrite, "create a directory with its parents.", h.rpcMakeDir)
	rpc(fsys, "Move", sandbox.ActionWrite, "rename a file or directory.", h.rpcMove)
	rpc(fsys, "Remove", sandbox.ActionWrite, "remove a file or directory tree.", h.rpcRemove)
	e2bRoute(r, "GET", "/files", "envd: download the file at ?path=.", h.envd(sandbox.ActionRead, formatREST, h.handleDownload))
	e2bRoute(r, "POST", "/files", "envd: upload files (multipart/form-data or application/octet-stream) to ?path=.", h.envd(sandbox.ActionWrite, formatREST, h.handleUpload))
}

// envd wraps an envd call: sandboxes on, the sandbox named by
// E2b-Sandbox-Id, the caller authenticated for it and authorized for
// action, errors in the route's format.
func (h *Handler) envd(action string, format int, fn envdFunc) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h.serveEnvd(w, r, action, fn)
		if err == nil {
			return nil
		}
		if format == formatREST {
			h.writeAPIError(w, r, err)
			return nil
		}
		if api.AsProblem(err).Kind() == api.KindInternal {
			h.log.ErrorContext(r.Context(), "e2b envd", "path", r.URL.Path, "err", err)
		}
		writeConnectError(w, err)
		return nil
	}
}

func (h *Handler) serveEnvd(w http.ResponseWriter, r *http.Request, action string, fn envdFunc) error {
	if err := h.available(); err != nil {
		return err
	}
	id := r.Header.Get("E2b-Sandbox-Id")
	if id == "" {
		return api.Errorf(api.KindBadRequest, "missing E2b-Sandbox-Id header: set the SDK's sandbox URL (E2B_SANDBOX_URL) to this node's %s", Prefix)
	}
	if p := api.CheckID("E2b-Sandbox-Id", api.IDSandbox, id); p != nil {
		return p
	}
	var c caller
	var err error
	if c.Principal, c.keyHash, err = h.authenticate(r, id); err != nil {
		return err
	}
	r = r.WithContext(httpapi.WithPrincipal(r.Context(), c.Principal))
	if err := h.authorizeSandbox(r.Context(), c, action, id); err != nil {
		return err
	}
	sb, err := h.m.Get(id)
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	return fn(w, r, c, sb)
}

// handleHealth is the control plane's health, or with E2b-Sandbox-Id
// envd's: 204 while the sandbox runs, 502 (what E2B's proxy answers) once
// it is gone or is not the caller's.
func (h *Handler) handleHealth(w http.ResponseWriter, r *http.Request) error {
	if r.Header.Get("E2b-Sandbox-Id") == "" {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	}
	err := h.serveEnvd(w, r, sandbox.ActionRead, func(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	switch {
	case err == nil:
	case api.IsKind(err, api.KindNotFound):
		writeJSON(w, http.StatusBadGateway, apiError{Code: http.StatusBadGateway, Message: api.AsProblem(err).Detail})
	default:
		h.writeAPIError(w, r, err)
	}
	return nil
}
