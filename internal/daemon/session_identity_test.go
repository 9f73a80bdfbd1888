package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// TestSessionSVIDAtActivation: a session whose manifest lists egress hosts
// holds its X.509-SVID after activation, before any egress; one without
// egress never gets one; hibernation drops it.
func TestSessionSVIDAtActivation(t *testing.T) {
	d, c := startDaemon(t)
	ctx := context.Background()
	for name, egress := range map[string]string{"out": `["api.example.com"]`, "in": `[]`} {
		b, err := bundle.FromFiles(map[string][]byte{
			"agent.json": []byte(`{"name":"` + name + `","entry":"a.js","egress":` + egress + `,"limits":{"idle_seconds":3600}}`),
			"a.js":       []byte(`export default { fetch() { return new Response("ok") } }`)})
		if err != nil {
			t.Fatal(err)
		}
		tgz, _ := b.TarGz()
		if _, err := c.Deploy(ctx, tgz); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Call(ctx, name, "s1", "GET", "/", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	const out, in = "spiffe://agentcloud.local/agent/out/session/s1", "spiffe://agentcloud.local/agent/in/session/s1"
	deadline := time.Now().Add(10 * time.Second)
	for !daemon.SessionSVIDMintedForTest(d, out) {
		if time.Now().After(deadline) {
			t.Fatal("the session's SVID was not minted after activation")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if daemon.SessionSVIDMintedForTest(d, in) {
		t.Fatal("a session without egress hosts got an SVID")
	}
	if _, err := c.Hibernate(ctx, "out", "s1"); err != nil {
		t.Fatal(err)
	}
	if daemon.SessionSVIDMintedForTest(d, out) {
		t.Fatal("a hibernated session still holds its SVID")
	}
}
