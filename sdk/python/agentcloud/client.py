"""The agentcloud client: one HTTP request function, the generated route
table, and methods for the common tasks."""

import gzip
import io
import json
import os
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request

from ._routes import ROUTES

__all__ = ["APIError", "Client", "ExecResult", "Response"]

# Files a local daemon writes in its data dir (the CLI reads the same).
_ADDR_FILE, _URL_FILE, _TOKEN_FILE = "api.addr", "api.url", "admin.token"

# Bundles larger than this are refused here, before the upload (the daemon
# has its own, configurable cap).
MAX_BUNDLE_BYTES = 64 << 20

_SKIP_DIRS = {".git", ".hg", ".svn"}

# The type URIs of the platform's own problems (api/problem.go).
_PROBLEM_TYPES = "https://agentcloud.dev/problems/"


class _Answer:
    """An error answer returned as it came (see Client._open)."""

    def __init__(self, status, headers, body):
        self.status, self.headers, self._body = status, headers, body

    def read(self):
        return self._body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class APIError(Exception):
    """A problem+json answer (or a transport failure, status 0)."""

    def __init__(self, status, problem):
        self.status = status
        self.problem = problem or {}
        self.type = self.problem.get("type", "")
        self.detail = self.problem.get("detail", "")
        self.field = self.problem.get("field", "")
        super().__init__("%d %s: %s" % (status, self.problem.get("title", ""), self.detail))


class Response:
    """An agent's answer to a session call."""

    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


class ExecResult:
    """A finished command: exit code, output, and the problem of a limit hit."""

    def __init__(self, exit_code, stdout, stderr, problem=None):
        self.exit_code, self.stdout, self.stderr, self.problem = exit_code, stdout, stderr, problem


def _from_data_dir(data):
    url = None
    for name, prefix in ((_URL_FILE, ""), (_ADDR_FILE, "http://")):
        try:
            with open(os.path.join(data, name)) as f:
                url = prefix + f.read().strip()
                break
        except FileNotFoundError:
            continue
    try:
        with open(os.path.join(data, _TOKEN_FILE)) as f:
            token = f.read().strip()
    except FileNotFoundError:
        token = None
    return url, token


class Client:
    """A client of one daemon.

    url and token default to AGENTCLOUD_URL and AGENTCLOUD_TOKEN, else to
    what a local daemon wrote in its data dir (data, default
    AGENTCLOUD_DATA or ./data).
    """

    def __init__(self, url=None, token=None, data=None, timeout=60.0):
        url = url or os.environ.get("AGENTCLOUD_URL")
        token = token or os.environ.get("AGENTCLOUD_TOKEN")
        if not url or not token:
            durl, dtok = _from_data_dir(data or os.environ.get("AGENTCLOUD_DATA", "data"))
            url, token = url or durl, token or dtok
        if not url:
            raise ValueError("no daemon URL: pass url=, set AGENTCLOUD_URL, or point data= at a running daemon's data dir")
        if "://" not in url:
            url = "http://" + url
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    # The one request function.
    def _open(self, method, path, body=None, headers=None, query=None, timeout=None, agent_answer=False):
        """Opens one request. Errors are APIError; with agent_answer, an error
        answer that is not one of the platform's problems (an agent's own
        4xx or 5xx) is returned as it came instead."""
        url = self.url + path
        if query:
            q = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
            url += ("&" if "?" in url else "?") + q
        req = urllib.request.Request(url, data=body, method=method)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = None
            if not isinstance(problem, dict):
                problem = None
            if agent_answer and not (problem or {}).get("type", "").startswith(_PROBLEM_TYPES):
                return _Answer(e.code, e.headers, raw)
            raise APIError(e.code, problem or {"title": e.reason, "detail": raw.decode("utf-8", "replace")[:500]}) from None
        except urllib.error.URLError as e:
            raise APIError(0, {"title": "unreachable", "detail": "%s: %s" % (self.url, e.reason)}) from None

    def request(self, method, path, json_body=None, body=None, content_type=None, query=None, headers=None):
        """Sends one request; returns the decoded JSON answer (None when empty)."""
        hdrs = dict(headers or {})
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            hdrs["Content-Type"] = content_type
        with self._open(method, path, body, hdrs, query) as resp:
            raw = resp.read()
            if not raw:
                return None
            if "json" in resp.headers.get("Content-Type", ""):
                return json.loads(raw)
            return raw

    def op(self, operation_id, params=None, **kw):
        """Calls any route by its OpenAPI operationId; params fill the path."""
        try:
            method, path = ROUTES[operation_id][:2]
        except KeyError:
            raise KeyError("no route %r in this SDK's route table (regenerate it from /openapi.json)" % operation_id) from None
        for k, v in (params or {}).items():
            quoted = urllib.parse.quote(str(v), safe="/" if k == "path" else "")
            path = path.replace("{%s}" % k, quoted)
        if "{" in path:
            raise ValueError("%s: missing path parameters in %s" % (operation_id, path))
        return self.request(method, path, **kw)

    # System.
    def status(self):
        return self.op("get-v1-status")

    def whoami(self):
        return self.op("get-v1-whoami")

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.op("get-readyz")
                return
            except APIError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # Agents.
    @staticmethod
    def bundle_dir(path):
        """The tar.gz of an agent directory (what `agentcloud deploy DIR` uploads)."""
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if not os.path.isfile(full) or os.path.islink(full):
                        continue
                    rel = os.path.relpath(full, path).replace(os.sep, "/")
                    info = tarfile.TarInfo(rel)
                    info.size, info.mode, info.mtime = os.path.getsize(full), 0o644, 0
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                    if buf.tell() > MAX_BUNDLE_BYTES:
                        raise ValueError("%s: bundle over %d bytes" % (path, MAX_BUNDLE_BYTES))
        return buf.getvalue()

    @staticmethod
    def bundle_files(files):
        """The tar.gz of {name: str|bytes}."""
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            for name in sorted(files):
                data = files[name].encode() if isinstance(files[name], str) else files[name]
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def deploy(self, tar_gz, wait=True):
        """Deploys a bundle through the pipeline; returns the version (with its run)."""
        headers = {} if wait else {"Prefer": "respond-async"}
        return self.op("post-v1-agents", body=tar_gz, content_type="application/gzip", headers=headers)

    def deploy_dir(self, path, wait=True):
        return self.deploy(self.bundle_dir(path), wait)

    def deploy_files(self, files, wait=True):
        return self.deploy(self.bundle_files(files), wait)

    def agents(self):
        return self.op("get-v1-agents")["agents"]

    def versions(self, agent):
        return self.op("get-v1-agents-by-agent-versions", {"agent": agent})["versions"]

    # Sessions.
    def _session_path(self, agent, session, path):
        p = "/agents/%s/sessions/%s" % (urllib.parse.quote(agent, safe=""), urllib.parse.quote(session, safe=""))
        path = path or "/"
        return p + (path if path.startswith("/") else "/" + path)

    def call(self, agent, session, path="/", method="GET", body=None, headers=None):
        """Calls a session; whatever the agent answers is returned (its own
        error statuses included, body and headers as sent); the platform's
        problems (unauthenticated, no such agent, ...) are raised."""
        if isinstance(body, (dict, list)):
            body, headers = json.dumps(body).encode(), dict(headers or {}, **{"Content-Type": "application/json"})
        elif isinstance(body, str):
            body = body.encode()
        with self._open(method, self._session_path(agent, session, path), body, headers, agent_answer=True) as resp:
            return Response(resp.status, dict(resp.headers), resp.read())

    def call_stream(self, agent, session, path="/", method="GET", body=None, headers=None, chunk=4096):
        """Calls a session and yields its answer's body as it arrives."""
        with self._open(method, self._session_path(agent, session, path), body, headers) as resp:
            while True:
                b = resp.read1(chunk) if hasattr(resp, "read1") else resp.read(chunk)
                if not b:
                    return
                yield b

    def sessions(self, agent):
        return self.op("get-v1-agents-by-agent-sessions", {"agent": agent})["sessions"]

    def hibernate(self, agent, session):
        return self.op("post-v1-agents-by-agent-sessions-by-session-hibernate", {"agent": agent, "session": session})

    def delete_session(self, agent, session):
        self.op("delete-v1-agents-by-agent-sessions-by-session", {"agent": agent, "session": session})

    # Sandboxes.
    def create_sandbox(self, **spec):
        return self.op("post-v1-sandboxes", json_body=spec)

    def sandboxes(self):
        return self.op("get-v1-sandboxes")["sandboxes"]

    def delete_sandbox(self, sid):
        self.op("delete-v1-sandboxes-by-sandbox", {"sandbox": sid})

    def pause_sandbox(self, sid):
        return self.op("post-v1-sandboxes-by-sandbox-pause", {"sandbox": sid})

    def resume_sandbox(self, sid):
        return self.op("post-v1-sandboxes-by-sandbox-resume", {"sandbox": sid})

    def exec_stream(self, sid, cmd, args=None, **kw):
        """Runs a command; yields its events (stdout, stderr, then exit or error)."""
        req = dict(kw, cmd=cmd, args=list(args or []))
        path = "/v1/sandboxes/%s/exec" % urllib.parse.quote(sid, safe="")
        with self._open("POST", path, json.dumps(req).encode(), {"Content-Type": "application/json"}) as resp:
            ended = False
            for line in resp:
                if not line.strip():
                    continue
                ev = json.loads(line)
                yield ev
                if ev.get("type") in ("exit", "error"):
                    ended = True
                    break
            if not ended:
                raise APIError(0, {"title": "stream ended", "detail": "exec stream ended without an exit event"})

    def exec(self, sid, cmd, args=None, **kw):
        """Runs a command to completion."""
        out, err = [], []
        for ev in self.exec_stream(sid, cmd, args, **kw):
            t = ev.get("type")
            if t == "stdout":
                out.append(ev.get("data", ""))
            elif t == "stderr":
                err.append(ev.get("data", ""))
            elif t == "error":
                raise APIError(ev.get("problem", {}).get("status", 0), ev.get("problem"))
            elif t == "exit":
                return ExecResult(ev.get("exit_code"), "".join(out), "".join(err), ev.get("problem"))
        raise AssertionError("unreachable")

    def write_file(self, sid, path, data, mode=None):
        if isinstance(data, str):
            data = data.encode()
        return self.op("put-v1-sandboxes-by-sandbox-files", {"sandbox": sid}, body=data,
                       content_type="application/octet-stream", query={"path": path, "mode": None if mode is None else "%o" % mode})

    def read_file(self, sid, path):
        path_ = "/v1/sandboxes/%s/files" % urllib.parse.quote(sid, safe="")
        with self._open("GET", path_, query={"path": path}) as resp:
            return resp.read()

    def list_files(self, sid, path=""):
        return self.op("get-v1-sandboxes-by-sandbox-files-list", {"sandbox": sid}, query={"path": path})["files"]

    # Tools.
    def tools(self):
        return self.op("get-v1-tools")["tools"]

    def call_tool(self, tool, arguments=None):
        """Calls a tool through POST /v1/tools/{tool}/call."""
        return self.op("post-v1-tools-by-tool-call", {"tool": tool}, json_body=arguments or {})

    def mcp(self, method, params=None):
        """One MCP JSON-RPC request to /mcp (stateless Streamable HTTP); returns its result."""
        msg = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
        hdrs = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-06-18"}
        with self._open("POST", "/mcp", json.dumps(msg).encode(), hdrs) as resp:
            raw = resp.read().decode()
        if "text/event-stream" in resp.headers.get("Content-Type", ""):
            datas = [ln[5:].strip() for ln in raw.splitlines() if ln.startswith("data:")]
            raw = datas[-1] if datas else "{}"
        out = json.loads(raw)
        if "error" in out:
            raise APIError(400, {"title": "mcp error", "detail": out["error"].get("message", ""), "mcp": out["error"]})
        return out.get("result")

    def mcp_tools(self):
        return self.mcp("tools/list")["tools"]

    def mcp_call(self, tool, arguments=None):
        return self.mcp("tools/call", {"name": tool, "arguments": arguments or {}})

    # Tokens.
    def create_token(self, subject, ttl=None, audience=None):
        req = {"subject": subject}
        if ttl:
            req["ttl"] = ttl
        if audience:
            req["audience"] = list(audience)
        return self.op("post-v1-tokens", json_body=req)

    def revoke_token(self, token=None, token_id=None):
        self.op("post-v1-tokens-revoke", json_body={k: v for k, v in (("token", token), ("id", token_id)) if v})
