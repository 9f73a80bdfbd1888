package cluster_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// fwdNode is one member with a public listener (the Forwarder) and a peer
// listener (mutual TLS with its node SVID).
type fwdNode struct {
	name   string
	member *cluster.Member
	public *httptest.Server
	peer   *http.Server
	peerLn net.Listener
}

// startForwarding starts n members sharing one real store bucket, each with
// a local handler that says who served the request.
func startForwarding(t testing.TB, n int) ([]*fwdNode, *identity.CA) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kv, err := st.KV(ctx, "cluster", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca := storetest.NewCA(t, "cluster.test")
	var nodes []*fwdNode
	for i := range n {
		name := fmt.Sprintf("node-%d", i)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m, err := cluster.New(cluster.Config{Node: name, Addr: ln.Addr().String(), KV: kv, Partitions: parts,
			Heartbeat: heartbeat, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/sandboxes" && r.Method == "GET" {
				serveTestList(w, r, name, i)
				return
			}
			if (r.URL.Path == "/e2b/sandboxes" || r.URL.Path == "/e2b/v2/sandboxes") && r.Method == "GET" {
				serveTestE2BList(w, r, name)
				return
			}
			if r.URL.Path == "/v1/agents/chatty/logs" && r.Method == "GET" {
				serveTestLogs(w, r, name, i)
				return
			}
			if r.Header.Get("Upgrade") == testUpgrade {
				serveTestUpgrade(w, r, name)
				return
			}
			if gate, ok := streamGates.Load(r.URL.Path); ok {
				serveTestStream(w, r, name, gate.(chan struct{}))
				return
			}
			w.Header().Set("Served-By", name)
			w.Header().Set("Saw-Forwarded", r.Header.Get(cluster.ForwardedHeader))
			w.Header().Set("Saw-Auth", r.Header.Get("Authorization"))
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s", name, r.URL.Path, body)
		})
		peerTLS := storetest.PeerTLS(t, ca, name)
		fwd := &cluster.Forwarder{Node: name, Owners: m, Local: local,
			Transport: cluster.PeerTransport(peerTLS)}
		srv := &http.Server{Handler: fwd.Peer(), TLSConfig: peerTLS.Clone(), ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: log.New(io.Discard, "", 0)} // refused handshakes are the point of some tests
		go srv.ServeTLS(ln, "", "")
		pub := httptest.NewServer(fwd)
		nd := &fwdNode{name: name, member: m, public: pub, peer: srv, peerLn: ln}
		t.Cleanup(func() {
			pub.Close()
			srv.Close()
			m.Close(context.Background())
		})
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	settle(t, nodes)
	return nodes, ca
}

// settle waits until every partition has one owner that every member sees
// and every member has a share.
func settle(t testing.TB, nodes []*fwdNode) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		for p := 0; p < parts && ok; p++ {
			var owner string
			for _, n := range nodes {
				if _, mine := n.member.Owned(p); mine {
					if owner != "" {
						ok = false
					}
					owner = n.name
				}
			}
			for _, n := range nodes {
				if o, _, seen := n.member.OwnerOf(p); !seen || o != owner {
					ok = false
				}
			}
		}
		for _, n := range nodes {
			if n.member.OwnedCount() < parts/(2*len(nodes)) {
				ok = false // a member that joined late has not got its share yet
			}
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("partitions did not settle")
}

func ownerName(nodes []*fwdNode, agent, session string) string {
	p := nodes[0].member.Partition(agent, session)
	for _, n := range nodes {
		if _, ok := n.member.Owned(p); ok {
			return n.name
		}
	}
	return ""
}

// TestForwardingClass: a session request reaching any member is served by
// the session's owner, once; what is not a session stays local; a client
// cannot pose as a member; the peer listener admits only node SVIDs and
// refuses sessions its member does not own with 503 + Retry-After.
func TestForwardingClass(t *testing.T) {
	nodes, ca := startForwarding(t, 3)
	client := &http.Client{Timeout: 10 * time.Second}
	forwarded := 0
	for i := range 60 {
		session := fmt.Sprintf("s%d", i)
		entry := nodes[i%len(nodes)]
		for _, path := range []string{"/agents/counter/sessions/" + session + "/inc", "/v1/agents/counter/sessions/" + session} {
			req, _ := http.NewRequest("POST", entry.public.URL+path, strings.NewReader("body"))
			req.Header.Set("Authorization", "Bearer tok")
			req.Header.Set(cluster.ForwardedHeader, "node-evil") // a client posing as a member
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := ownerName(nodes, "counter", session)
			if resp.StatusCode != 200 || resp.Header.Get("Served-By") != want || string(body) != want+" "+path+" body" {
				t.Fatalf("%s via %s: %d served by %q (%s), owner %s", path, entry.name, resp.StatusCode, resp.Header.Get("Served-By"), body, want)
			}
			saw := resp.Header.Get("Saw-Forwarded")
			switch {
			case want == entry.name && saw != "":
				t.Errorf("%s served locally saw %s=%q", path, cluster.ForwardedHeader, saw)
			case want != entry.name && saw != entry.name:
				t.Errorf("%s forwarded by %s saw %s=%q", path, entry.name, cluster.ForwardedHeader, saw)
			}
			if want != entry.name {
				forwarded++
			}
			if resp.Header.Get("Saw-Auth") != "Bearer tok" {
				t.Errorf("%s: the owner did not get the caller's credentials", path)
			}
		}
	}
	if forwarded == 0 {
		t.Fatal("nothing was forwarded")
	}
	// Not a session: always local.
	for _, path := range []string{"/v1/agents", "/v1/agents/counter", "/v1/agents/counter/sessions", "/agents/counter/sessions/", "/healthz"} {
		resp, err := client.Get(nodes[1].public.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Served-By") != "node-1" {
			t.Errorf("%s served by %q, want the entry member", path, resp.Header.Get("Served-By"))
		}
	}

	// The peer listener: only node SVIDs of this CA.
	peerAddr := nodes[0].peerLn.Addr().String()
	userID, _ := identity.NewID(ca.TrustDomain(), identity.KindUser, "mallory")
	userRot, err := ca.NewRotator(userID)
	if err != nil {
		t.Fatal(err)
	}
	other := storetest.NewCA(t, "cluster.test")
	for name, cfg := range map[string]*tls.Config{
		"no client certificate": {InsecureSkipVerify: true},
		"a user SVID":           ca.PeerTLSConfig(userRot),
		"another CA's node":     storetest.PeerTLS(t, other, "node-0"),
	} {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get("https://" + peerAddr + "/agents/counter/sessions/s1/x")
		if err == nil {
			resp.Body.Close()
			t.Errorf("peer listener answered %s with %d", name, resp.StatusCode)
		}
	}
	// A member never forwards a forwarded request: a session it does not
	// own is 503 with Retry-After on its peer listener.
	var notOwned string
	for i := range 100 {
		s := fmt.Sprintf("x%d", i)
		if ownerName(nodes, "counter", s) != "node-0" {
			notOwned = s
			break
		}
	}
	pc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: storetest.PeerTLS(t, ca, "node-1")}}
	resp, err := pc.Get("https://" + peerAddr + "/agents/counter/sessions/" + notOwned + "/x")
	if err != nil {
		t.Fatal(err)
	}
	var prob api.Problem
	json.NewDecoder(resp.Body).Decode(&prob)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || prob.Kind() != api.KindUnavailable {
		t.Fatalf("peer request for a session it does not own: %d %q %+v", resp.StatusCode, resp.Header.Get("Retry-After"), prob)
	}
}

// TestForwardingOwnerDownClass: while the owner cannot be reached, or a
// partition has no owner, a request is 503 problem+json with Retry-After,
// never a hang or a 5xx without one; once the partition moves, it is
// served again.
func TestForwardingOwnerDownClass(t *testing.T) {
	nodes, _ := startForwarding(t, 2)
	var session string
	for i := range 100 {
		s := fmt.Sprintf("d%d", i)
		if ownerName(nodes, "counter", s) == "node-1" {
			session = s
			break
		}
	}
	nodes[1].peer.Close() // the owner's peer link is down; its lease still renews
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(nodes[0].public.URL + "/agents/counter/sessions/" + session + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != api.ProblemContentType {
		t.Fatalf("owner unreachable (session %q): %d %q %q served by %q", session, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), resp.Header.Get("Served-By"))
	}
	// The owner goes away for good: node-0 takes the partition and serves.
	nodes[1].member.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(nodes[0].public.URL + "/agents/counter/sessions/" + session + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 && resp.Header.Get("Served-By") == "node-0" {
			break
		}
		if resp.StatusCode != 503 || time.Now().After(deadline) {
			t.Fatalf("after the owner left: %d served by %q", resp.StatusCode, resp.Header.Get("Served-By"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func FuzzSessionOf(f *testing.F) {
	for _, s := range []string{"/agents/a/sessions/s/x", "/v1/agents/a/sessions/s", "/v1/agents//sessions/s", "/agents/a/sessions/", "/v1/v1/agents/a/sessions/s", "",
		"/agents/a/preview/sessions/s/x", "/agents//preview/sessions/s", "/agents/a/preview/preview/sessions/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		agent, session, ok := cluster.SessionOf(path)
		if !ok {
			return
		}
		if agent == "" || session == "" || strings.Contains(agent, "/") || strings.Contains(session, "/") {
			t.Fatalf("%q -> %q %q", path, agent, session)
		}
		named := "/agents/" + agent + "/sessions/" + session
		if base, preview := strings.CutSuffix(agent, api.PreviewSuffix); preview && !strings.Contains(path, named) {
			named = "/agents/" + base + "/preview/sessions/" + session
		}
		if !strings.Contains(path, named) {
			t.Fatalf("%q -> %q %q not in the path", path, agent, session)
		}
	})
}

// BenchmarkForward compares a session request served by the entry member
// with one forwarded to the owner over the peer link (mutual TLS, HTTP/2),
// both on loopback; the difference is the forwarding overhead.
func BenchmarkForward(b *testing.B) {
	nodes, _ := startForwarding(b, 2)
	local, remote := "", ""
	for i := 0; local == "" || remote == ""; i++ {
		s := fmt.Sprintf("b%d", i)
		if ownerName(nodes, "counter", s) == "node-0" {
			local = s
		} else {
			remote = s
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for _, c := range []struct{ name, session string }{{"local", local}, {"forwarded", remote}} {
		b.Run(c.name, func(b *testing.B) {
			url := nodes[0].public.URL + "/agents/counter/sessions/" + c.session + "/x"
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(start))
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// TestSessionLogsRoutingClass: a session's log stream
// (GET /v1/agents/A/logs?session=S, follow or not) is served by the
// session's owner, whichever member it reaches, and so are a preview's
// sessions and their logs (placed by the preview's name, A.preview); an agent's whole stream,
// other methods and look-alike paths are served where they arrive.
func TestSessionLogsRoutingClass(t *testing.T) {
	nodes, _ := startForwarding(t, 3)
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(entry *fwdNode, method, path string) string {
		t.Helper()
		req, _ := http.NewRequest(method, entry.public.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("Served-By")
	}
	for i := range 12 {
		session := fmt.Sprintf("s%d", i)
		for _, entry := range nodes {
			// A preview's sessions (and their logs) are placed by the
			// preview's own name, as its owner runs them.
			for _, c := range []struct{ agent, path string }{
				{"counter", "/v1/agents/counter/logs?session=" + session},
				{"counter", "/v1/agents/counter/logs?session=" + session + "&follow=true&after=3"},
				{"counter.preview", "/v1/agents/counter/preview/logs?session=" + session},
				{"counter.preview", "/agents/counter/preview/sessions/" + session + "/x"},
				{"counter.preview", "/v1/agents/counter/preview/sessions/" + session},
			} {
				// Leases may change hands on a loaded machine (1.2 s
				// TTL): ask until the owner of the moment serves it.
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					owner := ownerName(nodes, c.agent, session)
					got := do(entry, "GET", c.path)
					if owner != "" && got == owner {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s via %s: served by %q, owner %q", c.path, entry.name, got, owner)
					}
				}
			}
			for _, rt := range [][2]string{{"GET", "/v1/agents/counter/logs"}, {"GET", "/v1/agents/counter/logs?session="},
				{"DELETE", "/v1/agents/counter/logs?session=" + session}, {"GET", "/v1/agents/counter/x/logs?session=" + session},
				{"GET", "/v1/agents//logs?session=" + session}} {
				if got := do(entry, rt[0], rt[1]); got != entry.name {
					t.Fatalf("%s %s via %s: served by %q, want the entry", rt[0], rt[1], entry.name, got)
				}
			}
		}
	}
}

// streamGates holds, by path, what a streamed answer of the test members
// waits for between its two parts (serveTestStream).
var streamGates sync.Map

// serveTestStream answers a stream of unknown length in two parts, the
// second only once the gate is closed (the client has read the first).
func serveTestStream(w http.ResponseWriter, r *http.Request, name string, gate chan struct{}) {
	w.Header().Set("Served-By", name)
	w.Header().Set("Content-Type", r.URL.Query().Get("type"))
	fmt.Fprint(w, "first\n")
	http.NewResponseController(w).Flush()
	select {
	case <-gate:
	case <-r.Context().Done():
		return
	}
	fmt.Fprint(w, "second\n")
}

// TestForwardStreamsClass: an answer that streams (server-sent events,
// or a body of unknown length) reaches the client through a forwarding
// member part by part as the owner flushes it: the first part is read
// while the owner still holds the second back, so the forwarder does not
// wait for the whole answer (answers of known length go out in one write).
func TestForwardStreamsClass(t *testing.T) {
	nodes, _ := startForwarding(t, 2)
	session := ""
	for i := 0; session == ""; i++ {
		if s := fmt.Sprintf("st%d", i); ownerName(nodes, "counter", s) == "node-1" {
			session = s
		}
	}
	for _, typ := range []string{"text/event-stream", "text/plain", "application/x-ndjson"} {
		path := "/v1/agents/counter/sessions/" + session + "/" + strings.ReplaceAll(typ, "/", "-")
		gate := make(chan struct{})
		streamGates.Store(path, gate)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", nodes[0].public.URL+path+"?type="+url.QueryEscape(typ), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if resp.Header.Get("Served-By") != "node-1" {
			t.Fatalf("%s: served by %q, want the owner node-1", typ, resp.Header.Get("Served-By"))
		}
		br := bufio.NewReader(resp.Body)
		first, err := br.ReadString('\n')
		if err != nil || first != "first\n" {
			t.Fatalf("%s: the first part did not arrive before the owner sent the rest: %q %v", typ, first, err)
		}
		close(gate)
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "second\n" {
			t.Fatalf("%s: the rest: %q %v", typ, rest, err)
		}
		resp.Body.Close()
		cancel()
		streamGates.Delete(path)
	}
}

// testUpgrade is the protocol the test members switch to (a stand-in for
// a session's WebSocket): after 101 they say who they are and echo what
// they read, line by line.
const testUpgrade = "agentcloud-test-echo"

func serveTestUpgrade(w http.ResponseWriter, r *http.Request, name string) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n%s\n", testUpgrade, name)
	brw.Flush()
	for {
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString("echo " + line)
		brw.Flush()
	}
}

// TestForwardUpgradeClass: a protocol upgrade through a member that does
// not own the session reaches the owner and stays open both ways. (Over
// HTTP/2 links only a WebSocket passed, Go's client opening an HTTP/1.1
// connection for it; any other protocol was a 503.)
func TestForwardUpgradeClass(t *testing.T) {
	nodes, _ := startForwarding(t, 2)
	session := ""
	for i := 0; session == ""; i++ {
		if s := fmt.Sprintf("up%d", i); ownerName(nodes, "counter", s) == "node-1" {
			session = s
		}
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(nodes[0].public.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET /v1/agents/counter/sessions/%s/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", session, testUpgrade)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade through node-0: %d %s", resp.StatusCode, body)
	}
	if who, err := br.ReadString('\n'); err != nil || who != "node-1\n" {
		t.Fatalf("the upgraded connection leads to %q %v, want the owner node-1", who, err)
	}
	for i := range 3 {
		fmt.Fprintf(conn, "ping %d\n", i)
		if got, err := br.ReadString('\n'); err != nil || got != fmt.Sprintf("echo ping %d\n", i) {
			t.Fatalf("round %d: %q %v", i, got, err)
		}
	}
}
