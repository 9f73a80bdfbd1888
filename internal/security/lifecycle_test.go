package security

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

// TestLifecycleClass: New → Start → Close, in every order a daemon that
// fails half-way may use: closed without starting, started once only,
// closed twice, closed with a context that has already ended.
func TestLifecycleClass(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	open := func() *Security {
		dir := t.TempDir()
		s, err := New(ctx, Config{TrustDomain: "agentcloud.local", CADir: dir + "/ca", DataDir: dir}, Deps{Store: st, Agents: agentTable{}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := New(ctx, Config{TrustDomain: "agentcloud.local"}, Deps{Store: st}); err == nil {
		t.Error("New without an agent directory: no error")
	}
	if _, err := New(ctx, Config{TrustDomain: "not a domain!"}, Deps{Store: st, Agents: agentTable{}}); err == nil {
		t.Error("New with a malformed trust domain: no error")
	}

	s := open() // closed without starting
	if err := s.Close(ctx); err != nil {
		t.Errorf("close without start: %v", err)
	}

	s = open()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Error("second Start: no error")
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}

	s = open()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Close(done); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("close with an ended context: %v", err)
	}
}

// TestSessionIdentityClass: a session whose manifest lists egress hosts
// gets its SPIFFE ID and, from the background minter, its X.509-SVID;
// one without egress gets the ID only; release drops the SVID; a caller
// whose names are not an identity is refused.
func TestSessionIdentityClass(t *testing.T) {
	s := newSecurity(t)
	ctx := context.Background()
	out, err := s.Activate(ctx, session.Caller{Agent: "bot", Session: "s1", Egress: []string{"api.example.com"}})
	if err != nil || out != botS1 {
		t.Fatalf("activate with egress = %q, %v; want %s", out, err, botS1)
	}
	in, err := s.Activate(ctx, session.Caller{Agent: "bot", Session: "s2"})
	if err != nil || in != "spiffe://agentcloud.local/agent/bot/session/s2" {
		t.Fatalf("activate without egress = %q, %v", in, err)
	}
	for deadline := time.Now().Add(10 * time.Second); !s.SessionSVIDMinted(out); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the SVID of a session with egress hosts was not minted")
		}
	}
	if s.SessionSVIDMinted(in) {
		t.Error("a session without egress hosts got an SVID")
	}
	s.Release("bot", "s1")
	if s.SessionSVIDMinted(out) {
		t.Error("a released session still holds its SVID")
	}
	for _, c := range []session.Caller{{Agent: "", Session: "s1"}, {Agent: "bot", Session: ""}, {Agent: "bad name!", Session: "s1"}} {
		if id, err := s.Activate(ctx, c); err == nil {
			t.Errorf("activate %+v = %q, want an error", c, id)
		}
	}
}
