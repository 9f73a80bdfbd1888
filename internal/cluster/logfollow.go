package cluster

// Following an agent's log stream across members (logfollow.go): one
// followed stream per member (this member's in-process, the others' over
// the peer link), their entries passed on as they come, each with the
// cursor that resumes after it. A member that stops answering is named in
// the stream and asked again until it answers; a member that joins is
// followed from when it is seen.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// Timing of a followed gathered stream.
const (
	// logRescan is how often the member list is read again, to follow
	// members that joined or came back.
	logRescan = 2 * time.Second
	// logWriteStall bounds one write to a client that does not read.
	logWriteStall = 10 * time.Second
	// maxLogLine bounds one line of a member's stream.
	maxLogLine = 1 << 20
)

// memberEvent is what a member's stream reader reports: an entry, or
// (done) that the stream ended.
type memberEvent struct {
	node  string
	entry api.LogEntry
	done  bool
}

// pipeResponse is an in-process response read as a stream (this member's
// own followed stream).
type pipeResponse struct {
	header http.Header
	status int
	head   chan struct{}
	once   sync.Once
	pw     *io.PipeWriter
}

func (p *pipeResponse) Header() http.Header { return p.header }
func (p *pipeResponse) WriteHeader(s int) {
	p.once.Do(func() { p.status = s; close(p.head) })
}
func (p *pipeResponse) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.pw.Write(b)
}
func (p *pipeResponse) Flush() {}

// streamBody closes a member stream's body and ends its request.
type streamBody struct {
	io.Reader
	close func()
}

func (s streamBody) Close() error { s.close(); return nil }

// openLocal starts this member's own followed stream of r.
func (f *Forwarder) openLocal(ctx context.Context, r *http.Request, uri string) (int, io.ReadCloser) {
	ctx, cancel := context.WithCancel(ctx)
	req := r.Clone(ctx)
	req.URL, _ = req.URL.Parse(uri)
	req.RequestURI = uri
	req.Header.Set("Accept", api.LogContentType)
	pr, pw := io.Pipe()
	resp := &pipeResponse{header: http.Header{}, head: make(chan struct{}), pw: pw}
	go func() {
		f.Local.ServeHTTP(resp, req)
		resp.WriteHeader(http.StatusOK)
		pw.Close()
	}()
	<-resp.head
	return resp.status, streamBody{Reader: pr, close: func() { cancel(); pr.Close() }}
}

// openPeer starts the followed stream of the member at addr.
func (f *Forwarder) openPeer(ctx context.Context, r *http.Request, addr, uri string) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	scheme := f.Scheme
	if scheme == "" {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+uri, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header = r.Header.Clone()
	req.Header.Set(ForwardedHeader, f.Node)
	req.Header.Set("Accept", api.LogContentType)
	req.Host = r.Host
	// The head must come within peerListTimeout; the stream may then
	// stay open as long as the client's.
	t := time.AfterFunc(peerListTimeout, cancel)
	resp, err := f.Transport.RoundTrip(req)
	if !t.Stop() || err != nil {
		cancel()
		if err == nil {
			resp.Body.Close()
			err = errPeerList
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, errPeerList
	}
	return streamBody{Reader: resp.Body, close: func() { cancel(); resp.Body.Close() }}, nil
}

// readMember passes each entry of body to events, then says it ended.
func readMember(ctx context.Context, node string, body io.ReadCloser, events chan<- memberEvent) {
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxLogLine)
	for sc.Scan() {
		var e api.LogEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			break
		}
		e.Node = node
		select {
		case events <- memberEvent{node: node, entry: e}:
		case <-ctx.Done():
			return
		}
	}
	select {
	case events <- memberEvent{node: node, done: true}:
	case <-ctx.Done():
	}
}

// logFollower is one client's gathered followed stream.
type logFollower struct {
	f      *Forwarder
	r      *http.Request
	agent  string
	pos    map[string]uint64
	events chan memberEvent
	// open lists the members whose stream is being read.
	open map[string]bool
	// down lists the members named unreachable and not heard since.
	down map[string]bool
}

func (lf *logFollower) cursor() string {
	return api.EncodeLogCursor(api.LogCursor{Agent: lf.agent, Pos: lf.pos})
}

// follow reads the stream of the member at addr from where the reader
// stands; a member that cannot be followed reports its end at once.
func (lf *logFollower) follow(ctx context.Context, node, addr, cursor string) error {
	body, err := lf.f.openPeer(ctx, lf.r, addr, cursorQuery(lf.r, cursor))
	if err != nil {
		select {
		case lf.events <- memberEvent{node: node, done: true}:
		case <-ctx.Done():
		}
		return err
	}
	readMember(ctx, node, body, lf.events)
	return nil
}

// start follows every other member, waiting until each answered or did
// not, and returns those that did not (or are not live).
func (lf *logFollower) start(ctx context.Context) []string {
	cursor := lf.cursor()
	return lf.f.gather(func(node, addr string) error {
		opened := make(chan error, 1)
		go func() {
			body, err := lf.f.openPeer(ctx, lf.r, addr, cursorQuery(lf.r, cursor))
			opened <- err
			if err == nil {
				readMember(ctx, node, body, lf.events)
			}
		}()
		return <-opened
	})
}

// rescan follows the live members that are not followed, and returns
// those that are not live.
func (lf *logFollower) rescan(ctx context.Context) []string {
	var gone []string
	for _, mi := range lf.f.Owners.Members() {
		if mi.Node == lf.f.Node || lf.open[mi.Node] {
			continue
		}
		if !mi.Live || mi.Addr == "" {
			gone = append(gone, mi.Node)
			continue
		}
		lf.open[mi.Node] = true
		go func() { _ = lf.follow(ctx, mi.Node, mi.Addr, lf.cursor()) }()
	}
	return gone
}

// followAgentLogs streams an agent's log entries from every member.
func (f *Forwarder) followAgentLogs(w http.ResponseWriter, r *http.Request, agent string) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	status, local := f.openLocal(ctx, r, r.URL.RequestURI())
	if status != http.StatusOK {
		// Refused (authorization, a malformed query or cursor): as this
		// member answers it.
		defer local.Close()
		w.Header().Set("Content-Type", api.ProblemContentType)
		w.WriteHeader(status)
		_, _ = io.Copy(w, io.LimitReader(local, maxPeerList))
		return
	}
	lf := &logFollower{f: f, r: r, agent: agent, pos: f.knownPositions(agent, r.URL.Query().Get("cursor")),
		events: make(chan memberEvent, 64), open: map[string]bool{f.Node: true}, down: map[string]bool{}}
	go readMember(ctx, f.Node, local, lf.events)
	unreachable := lf.start(ctx)
	for _, mi := range f.Owners.Members() {
		lf.open[mi.Node] = !slices.Contains(unreachable, mi.Node)
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", api.LogContentType)
	}
	w.Header().Set("Cache-Control", "no-store")
	if len(unreachable) > 0 {
		w.Header().Set(UnreachableHeader, strings.Join(unreachable, ","))
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	if rc.Flush() != nil {
		return
	}
	for _, n := range unreachable {
		if lf.markDown(w, rc, n, sse) != nil {
			return
		}
	}
	tick := time.NewTicker(logRescan)
	defer tick.Stop()
	for {
		var e api.LogEntry
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			for _, n := range lf.rescan(ctx) {
				if err := lf.markDown(w, rc, n, sse); err != nil {
					return
				}
			}
			continue
		case ev := <-lf.events:
			if ev.done {
				if ev.node == f.Node {
					return // this member stops, or the agent was deleted
				}
				delete(lf.open, ev.node)
				if err := lf.markDown(w, rc, ev.node, sse); err != nil {
					return
				}
				continue
			}
			e = ev.entry
			delete(lf.down, ev.node)
			lf.pos[ev.node] = e.Seq
		}
		e.Cursor = lf.cursor()
		if err := writeLogEntry(w, rc, e, sse); err != nil {
			return // the client left
		}
	}
}

// markDown names node in the stream as not answering, once until it
// answers again.
func (lf *logFollower) markDown(w io.Writer, rc *http.ResponseController, node string, sse bool) error {
	if lf.down[node] {
		return nil
	}
	lf.down[node] = true
	e := api.LogEntry{Time: time.Now().UTC(), Agent: lf.agent, Node: node, Level: api.LogLevelUnreachable,
		Text: fmt.Sprintf("member %s does not answer: its lines are missing until it answers again", node), Cursor: lf.cursor()}
	return writeLogEntry(w, rc, e, sse)
}

// writeLogEntry writes one entry as the client asked (NDJSON or an event)
// and flushes it.
func writeLogEntry(w io.Writer, rc *http.ResponseController, e api.LogEntry, sse bool) error {
	_ = rc.SetWriteDeadline(time.Now().Add(logWriteStall))
	b, _ := json.Marshal(e)
	var err error
	if sse {
		_, err = fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", e.Cursor, e.Level, b)
	} else {
		_, err = fmt.Fprintf(w, "%s\n", b)
	}
	if err != nil {
		return err
	}
	if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}
