"""The Python SDK against a live daemon (AGENTCLOUD_URL, AGENTCLOUD_TOKEN:
internal/doctest TestPythonSDK starts one)."""

import json
import os
import uuid

import pytest

from agentcloud import APIError, Client
from agentcloud._routes import ROUTES

COUNTER = """
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/missing") {
      return new Response("not here", { status: 404, headers: { "x-agent": "yes" } });
    }
    if (url.pathname === "/stream") {
      const enc = new TextEncoder();
      return new Response(enc.encode("a\\nb\\nc\\n"), { headers: { "content-type": "text/plain" } });
    }
    const n = ((await env.state.get("n")) ?? 0) + 1;
    await env.state.put("n", n);
    return Response.json({ n, method: request.method });
  },
};
"""


@pytest.fixture(scope="module")
def client():
    c = Client()
    c.wait_ready()
    return c


def agent_files(name):
    return {"agent.json": json.dumps({"name": name, "entry": "agent.js"}), "agent.js": COUNTER}


def test_every_route_is_in_the_table():
    # Generated from the OpenAPI document; a few anchors the SDK's methods use.
    for op in ["post-v1-agents", "get-v1-status", "post-v1-sandboxes", "post-v1-sandboxes-by-sandbox-exec",
               "post-v1-tokens", "post-v1-tools-by-tool-call", "post-mcp"]:
        assert op in ROUTES, op
    assert all(m in ("GET", "POST", "PUT", "PATCH", "DELETE") for m, _, _ in ROUTES.values())


def test_status_and_whoami(client):
    assert client.status()["healthy"] is True
    assert client.whoami()["kind"] == "admin"


def test_deploy_dir_and_call(client, tmp_path):
    name = "py-" + uuid.uuid4().hex[:8]
    for fname, data in agent_files(name).items():
        (tmp_path / fname).write_text(data)
    v = client.deploy_dir(str(tmp_path))
    assert v["agent"] == name and v["digest"]
    assert any(a["name"] == name for a in client.agents())
    assert client.call(name, "s1", "/", "POST").json() == {"n": 1, "method": "POST"}
    assert client.call(name, "s1", "/").json()["n"] == 2
    assert client.call(name, "s2").json()["n"] == 1
    missing = client.call(name, "s1", "/missing")  # the agent's own 404 comes back as it was sent
    assert (missing.status, missing.body, missing.headers.get("X-Agent")) == (404, b"not here", "yes")
    with pytest.raises(APIError) as e:  # the platform's own problems are raised
        client.call("no-such-agent-" + name, "s1")
    assert e.value.status == 404 and e.value.type.startswith("https://agentcloud.dev/problems/")
    streamed = b"".join(client.call_stream(name, "s1", "/stream", chunk=1))
    assert streamed == b"a\nb\nc\n"
    assert {s["id"] for s in client.sessions(name)} >= {"s1", "s2"}
    client.hibernate(name, "s1")
    assert client.call(name, "s1").json()["n"] == 3  # the heap survived hibernation
    assert len(client.versions(name)) == 1


def test_bad_input_is_a_problem(client):
    with pytest.raises(APIError) as e:
        client.deploy_files({"agent.json": '{"name": "Bad Name!", "entry": "agent.js"}', "agent.js": COUNTER})
    assert 400 <= e.value.status < 500 and e.value.type.startswith("https://")
    with pytest.raises(APIError) as e:
        client.op("get-v1-agents-by-agent", {"agent": "no-such-agent"})
    assert e.value.status == 404
    with pytest.raises(KeyError):
        client.op("no-such-operation")
    with pytest.raises(ValueError):
        client.op("get-v1-agents-by-agent")


def test_tokens_and_other_principals(client):
    tok = client.create_token("user:py-alice", ttl="10m")
    alice = Client(url=client.url, token=tok["token"])
    assert alice.whoami()["principal"].endswith("/user/py-alice")
    with pytest.raises(APIError) as e:
        alice.op("get-v1-traffic")
    assert e.value.status == 403
    client.revoke_token(token_id=tok["id"])
    with pytest.raises(APIError) as e:
        alice.whoami()
    assert e.value.status == 401


def test_tools_rest_and_mcp(client):
    names = {t["name"] for t in client.tools()}
    assert "ping" in names
    out = client.call_tool("ping", {})
    assert out and not out.get("is_error", False)
    assert "ping" in {t["name"] for t in client.mcp_tools()}
    res = client.mcp_call("ping", {})
    assert not res.get("isError", False)


@pytest.mark.skipif(os.environ.get("AGENTCLOUD_NO_SANDBOXES") == "1", reason="no sandboxes on this host")
def test_sandbox_exec_files_pause_resume(client):
    try:
        sb = client.create_sandbox(timeout_s=120)
    except APIError as e:
        if e.status == 503:
            pytest.skip("this host cannot run sandboxes: %s" % e.detail)
        raise
    sid = sb["id"]
    try:
        events = list(client.exec_stream(sid, "sh", ["-c", "echo out; echo err >&2; exit 3"]))
        kinds = [ev["type"] for ev in events]
        assert kinds[-1] == "exit" and events[-1]["exit_code"] == 3
        assert "".join(ev.get("data", "") for ev in events if ev["type"] == "stdout") == "out\n"
        r = client.exec(sid, "python3", ["-c", "print(6*7)"])
        assert (r.exit_code, r.stdout) == (0, "42\n")
        client.write_file(sid, "/workspace/hello.txt", "hi there")
        assert client.read_file(sid, "/workspace/hello.txt") == b"hi there"
        client.write_file(sid, "/workspace/data.json", '{ "a" :1 }')  # bytes as written, not re-encoded
        assert client.read_file(sid, "/workspace/data.json") == b'{ "a" :1 }'
        assert "hello.txt" in {f["name"] for f in client.list_files(sid, "/workspace")}
        assert client.pause_sandbox(sid)["state"] == "paused"
        assert client.resume_sandbox(sid)["state"] == "running"
        assert client.exec(sid, "cat", ["/workspace/hello.txt"]).stdout == "hi there"
        assert sid in {s["id"] for s in client.sandboxes()}
        with pytest.raises(APIError) as e:
            client.read_file(sid, "/etc/../../outside")
        assert 400 <= e.value.status < 500
    finally:
        client.delete_sandbox(sid)
    with pytest.raises(APIError) as e:
        client.exec(sid, "true")
    assert e.value.status == 404
