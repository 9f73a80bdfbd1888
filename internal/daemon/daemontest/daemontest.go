// Package daemontest holds what the daemon's two test packages share:
// internal/daemon's in-process tests and internal/daemon/proctest's tests of
// daemons running as separate processes (kill -9, restarts, clusters). They
// are two packages so that go test runs them side by side.
package daemontest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/bundle"
)

// FreeAddr returns a loopback address with a port free at the time of the
// call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// admins are the administrators' clients of the running test daemons, by
// server address (DeployJS approves the reviews a user's deploy waits for).
var admins sync.Map

// RegisterAdmin records c as the administrator of the daemon it talks to,
// until the test ends.
func RegisterAdmin(t testing.TB, c *client.Client) {
	admins.Store(c.Server(), c)
	t.Cleanup(func() { admins.CompareAndDelete(c.Server(), c) })
}

// DeployJS deploys an agent of one JavaScript file through c; when the
// pipeline asks a person to review the change (a user's new capability),
// the daemon's registered administrator approves it.
func DeployJS(c *client.Client, manifest, js string) error {
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(manifest), "agent.js": []byte(js)})
	if err != nil {
		return err
	}
	tgz, err := b.TarGz()
	if err != nil {
		return err
	}
	v, err := c.Deploy(context.Background(), tgz)
	if err != nil || v.RunState != api.RunWaiting {
		return err
	}
	admin, ok := admins.Load(c.Server())
	if !ok {
		return fmt.Errorf("run %s waits for review and no administrator is known", v.Run)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.(*client.Client).ApproveRun(ctx, v.Run, "test helper"); err != nil {
		return err
	}
	run, err := admin.(*client.Client).WaitRun(ctx, v.Run)
	if err != nil {
		return err
	}
	if run.State != api.RunPassed {
		return fmt.Errorf("run %s ended %s: %s", run.ID, run.State, run.Error)
	}
	return nil
}

// CounterAgent counts calls in a JS global (lost when the isolate is) and
// in its stored state (kept).
const CounterAgent = `
let hits = 0;
export default {
  async fetch(request, env) {
    hits++;
    const n = ((await env.state.get("n")) || 0) + 1;
    await env.state.put("n", n);
    return Response.json({global: hits, stored: n});
  }
};`

// DeployCounter deploys CounterAgent as "counter".
func DeployCounter(t testing.TB, c *client.Client) {
	t.Helper()
	if err := DeployJS(c, `{"name":"counter","entry":"agent.js","limits":{"idle_seconds":3600}}`, CounterAgent); err != nil {
		t.Fatal(err)
	}
}

// CounterResp is the counter's answer.
type CounterResp struct{ Global, Stored int }

// CallCounter calls session id of the counter.
func CallCounter(c *client.Client, id string) (CounterResp, error) {
	var r CounterResp
	resp, err := c.Call(context.Background(), "counter", id, "POST", "/", nil, nil)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return r, json.Unmarshal(body, &r)
}
