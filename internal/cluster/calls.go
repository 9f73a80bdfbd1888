package cluster

// Calls between sessions on different members (calls.go). A session's
// call_agent (or any in-process caller of the session manager) that names
// a session another member owns is sent to the owner's peer listener as
// one request (Node.CallRemote), and the owner runs it in the session
// (NodeConfig.Run). The peer listener takes only members (mutual TLS with
// node SVIDs); the caller's member authorized the call and moves the
// labels, as it does for a local call.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// peerCallPath is the peer listener's route for a call into a session.
// It is not an API route: the public listener never serves it, and the
// forwarder sends only session and sandbox paths to peers.
const peerCallPath = "/_peer/v1/call"

// maxPeerCall bounds a call's or an answer's encoding (bodies are capped
// by the session manager well below it; base64 adds a third).
const maxPeerCall = 96 << 20

// RunFunc runs a request in a session this member owns
// (session.Manager.CallOwned).
type RunFunc func(ctx context.Context, agent, id string, req isolate.Request) (isolate.Response, error)

// peerCall is a call on the wire.
type peerCall struct {
	Agent   string      `json:"agent"`
	Session string      `json:"session"`
	Method  string      `json:"method"`
	URL     string      `json:"url"`
	Headers [][2]string `json:"headers,omitempty"`
	Body    []byte      `json:"body,omitempty"`
}

// peerAnswer is a call's response on the wire.
type peerAnswer struct {
	Status     int         `json:"status"`
	StatusText string      `json:"status_text,omitempty"`
	Headers    [][2]string `json:"headers,omitempty"`
	Body       []byte      `json:"body,omitempty"`
}

// movingProblem is the 503 a call gets while its session has no owner
// that can run it.
func movingProblem(agent, id, why string) *api.Problem {
	p := api.Errorf(api.KindUnavailable, "session %s/%s: %s: retry in a second", agent, id, why)
	p.RetryAfterSeconds = 1
	return p
}

// CallRemote implements session.Remote: it runs req in session agent/id
// on the member that owns it. The owner runs it with Run, which never
// forwards again (a call the session makes in turn is a new call); a
// session without a reachable owner answers 503 with Retry-After. A call
// whose link fails after it was sent may have run: the problem says so.
func (n *Node) CallRemote(ctx context.Context, agent, id string, req isolate.Request) (isolate.Response, error) {
	p := n.Partition(agent, id)
	owner, addr, ok := n.OwnerOf(p)
	if !ok || owner == n.cfg.Node || addr == "" {
		n.fwd.met.request(fwdUnavailable)
		return isolate.Response{}, movingProblem(agent, id, fmt.Sprintf("partition %d has no owner right now", p))
	}
	b, err := json.Marshal(peerCall{Agent: agent, Session: id, Method: req.Method, URL: req.URL, Headers: req.Headers, Body: req.Body})
	if err != nil {
		return isolate.Response{}, fmt.Errorf("cluster: encode call: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+peerCallPath, bytes.NewReader(b))
	if err != nil {
		return isolate.Response{}, fmt.Errorf("cluster: call %s: %w", owner, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(ForwardedHeader, n.cfg.Node)
	n.fwd.met.request(fwdForwarded)
	resp, err := n.fwd.Transport.RoundTrip(hr)
	if err != nil {
		return isolate.Response{}, api.Errorf(api.KindUnavailable, "session %s/%s: its owner %s cannot be reached (the call may or may not have run): %w", agent, id, owner, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerCall+1))
	if err != nil || len(body) > maxPeerCall {
		return isolate.Response{}, api.Errorf(api.KindUnavailable, "session %s/%s: the answer of its owner %s was cut short (the call may have run): %v", agent, id, owner, err)
	}
	if resp.StatusCode != http.StatusOK {
		var prob api.Problem
		if json.Unmarshal(body, &prob) != nil || prob.Type == "" {
			return isolate.Response{}, fmt.Errorf("cluster: call %s/%s on %s: status %d", agent, id, owner, resp.StatusCode)
		}
		return isolate.Response{}, &prob
	}
	var a peerAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return isolate.Response{}, fmt.Errorf("cluster: call %s/%s on %s: answer: %w", agent, id, owner, err)
	}
	return isolate.Response{Status: a.Status, StatusText: a.StatusText, Headers: a.Headers, Body: a.Body}, nil
}

// servePeerCall runs a call another member sent (CallRemote), if this
// member owns the session now.
func (n *Node) servePeerCall(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeProblem(w, api.Errorf(api.KindMethodNotAllowed, "%s takes POST", peerCallPath))
		return
	}
	c, err := decodePeerCall(http.MaxBytesReader(w, r.Body, maxPeerCall))
	if err != nil {
		writeProblem(w, api.Errorf(api.KindBadRequest, "call: %v", err))
		return
	}
	if _, mine := n.Owned(n.Partition(c.Agent, c.Session)); !mine || n.cfg.Run == nil {
		n.fwd.met.request(fwdPeerRefused)
		writeProblem(w, movingProblem(c.Agent, c.Session, "this member no longer owns it"))
		return
	}
	n.fwd.met.request(fwdPeerServed)
	resp, err := n.cfg.Run(r.Context(), c.Agent, c.Session,
		isolate.Request{Method: c.Method, URL: c.URL, Headers: c.Headers, Body: c.Body})
	if err != nil {
		writeProblem(w, api.AsProblem(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(peerAnswer{Status: resp.Status, StatusText: resp.StatusText, Headers: resp.Headers, Body: resp.Body})
}

// decodePeerCall reads one call: one JSON object of known fields, naming
// an agent and a session (the session manager checks them as ids).
func decodePeerCall(r io.Reader) (peerCall, error) {
	var c peerCall
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return peerCall{}, err
	}
	if dec.More() {
		return peerCall{}, fmt.Errorf("one JSON object expected")
	}
	if c.Agent == "" || c.Session == "" {
		return peerCall{}, fmt.Errorf("agent and session are required")
	}
	return c, nil
}

// writeProblem answers p as problem+json, with Retry-After if it says when.
func writeProblem(w http.ResponseWriter, p *api.Problem) {
	if p.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfterSeconds))
	}
	status := p.Status
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", api.ProblemContentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}
