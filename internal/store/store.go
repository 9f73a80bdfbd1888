// Package store owns agentcloud's storage and is the only package that imports
// NATS. It runs an embedded NATS server with JetStream inside the process (no
// network listener unless asked for) or connects to an external NATS server or
// cluster, and hands the rest of the daemon small interfaces: key-value
// buckets (KV), append-only logs (Log) and blobs (Blobs).
//
// Durability: in embedded mode every write is fsynced before it is
// acknowledged to the caller, so a write acknowledged to a client survives
// kill -9 of the daemon (and a power cut). A single node with no listener
// does it by group commit (groupsync.go): writes that arrive together share
// one fsync. Otherwise JetStream fsyncs each write itself (SyncAlways). See
// docs/RATIONALE.md for why per-write sync rather than an interval.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Errors callers switch on with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	ErrConflict = errors.New("store: revision conflict")
	ErrInvalid  = errors.New("store: invalid name or key")
	// ErrUnavailable: the store cannot be reached right now (its
	// connection is being re-established); the operation may be retried.
	ErrUnavailable = errors.New("store: unavailable")
)

// Options configures Open. The zero value plus Dir is a durable single node.
type Options struct {
	// Dir is where the embedded server keeps JetStream data.
	Dir string
	// Listen exposes the embedded server on host:port; empty means no
	// listener. A listener always requires authentication (the nkey user of
	// NKeySeedFile) and, off loopback, TLS (ListenTLS).
	Listen string
	// NKeySeedFile holds the nkey user seed the store connects with; with
	// Listen it is created if absent and is the one user the listener
	// admits.
	NKeySeedFile string
	// ListenTLS is the listener's server TLS configuration.
	ListenTLS *tls.Config
	// ClientTLS configures TLS to an external server (URL mode).
	ClientTLS *tls.Config
	// URL connects to an existing NATS server or cluster instead of embedding one.
	URL string
	// NoSync turns off fsync per write (tests and benchmarks only).
	NoSync bool
	// SyncEachWrite makes JetStream fsync each write itself (SyncAlways)
	// where the store would use group commit: the behaviour before group
	// commit, kept so benchmarks can compare the two.
	SyncEachWrite bool
	// Replicas for buckets and streams (cluster mode); 0 means 1.
	Replicas int
	// Cluster makes the embedded server a member of a NATS cluster.
	Cluster *ClusterOptions
	// Logger receives the store's logs.
	Logger *slog.Logger
	// Metrics registers the store's collectors (metrics.go); nil: none.
	Metrics prometheus.Registerer
}

// Store is an open connection to JetStream. The connection is replaced when
// it fails for good (the server closed it after a protocol error, say):
// every KV, Log and Blobs handle binds to the current connection on its next
// call, and watches resume on the new one, so a broken connection costs the
// operations in flight at that moment and nothing after.
type Store struct {
	opts Options
	log  *slog.Logger
	ns   *server.Server // nil in external mode

	cur     atomic.Pointer[conn]
	mu      sync.Mutex    // guards changed and closing; serialises redials
	changed chan struct{} // closed (and replaced) when cur changes
	closing bool
	redials atomic.Uint64
	met     *metrics   // nil: no metrics
	gs      *groupSync // nil: no group commit (groupsync.go)
	watches watchSet   // running watches (watchstall.go)
	// elections, if set (tests only), replaces leaderElected for reads
	// (reads.go).
	elections func(stream string) (<-chan struct{}, func())

	rcMu       sync.Mutex
	readCaches map[string]*readCache // bucket -> its read cache (readcache.go)
}

// conn is one generation of the client connection.
type conn struct {
	gen uint64
	nc  *nats.Conn
	js  jetstream.JetStream
}

// inProcessConnectTimeout bounds the handshake with the embedded server.
const inProcessConnectTimeout = 30 * time.Second

// Open starts (or connects to) NATS and JetStream.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Cluster != nil && opts.URL == "" && opts.Listen == "" {
		// The server starts its routes only once its client listener is
		// up, so a member always has one: on loopback, a free port, for
		// the node's nkey user only.
		opts.Listen = "127.0.0.1:0"
		if opts.NKeySeedFile == "" {
			opts.NKeySeedFile = filepath.Join(opts.Dir, "nats", "user.nk")
		}
	}
	s := &Store{opts: opts, log: opts.Logger, changed: make(chan struct{})}
	var err error
	if s.met, err = newMetrics(opts.Metrics, s); err != nil {
		return nil, fmt.Errorf("store metrics: %w", err)
	}
	if opts.URL == "" {
		if err := s.startEmbedded(); err != nil {
			return nil, err
		}
	}
	c, err := s.dialEmbedded(ctx)
	if err != nil {
		s.shutdownServer()
		return nil, err
	}
	s.cur.Store(c)
	if err := s.waitJetStream(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("jetstream account: %w", err)
	}
	return s, nil
}

// dialEmbedded opens the first connection, to the embedded server trying
// again until ctx ends or inProcessConnectTimeout passes: on a loaded
// machine the server may close the pipe before the client's CONNECT
// arrives (a member of a starting cluster failed with "read/write on
// closed pipe"). An external server is dialled once.
func (s *Store) dialEmbedded(ctx context.Context) (*conn, error) {
	c, err := s.dial(1)
	giveUp := time.Now().Add(inProcessConnectTimeout)
	for err != nil && s.opts.URL == "" && ctx.Err() == nil && time.Now().Before(giveUp) {
		s.log.Warn("store: connecting to the embedded server again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
		c, err = s.dial(1)
	}
	return c, err
}

// dial opens generation gen of the client connection.
func (s *Store) dial(gen uint64) (*conn, error) {
	// Asynchronous client errors (a watch's consumer gone at shutdown, a
	// slow consumer) go to the log, not to stderr.
	onErr := nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		s.log.Debug("nats async error", "subject", subject, "err", err)
	})
	// A connection closed for good (the client library gives up after
	// some server errors, "maximum control line exceeded" among them, and
	// does not reconnect) is replaced by a new one.
	onClosed := nats.ClosedHandler(func(nc *nats.Conn) { go s.replace(gen, nc.LastError()) })
	onDisc := nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
		if err != nil {
			s.log.Warn("store connection lost; reconnecting", "err", err)
		}
	})
	o := []nats.Option{nats.Name("agentcloud"), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond), onErr, onClosed, onDisc}
	auth, err := s.clientAuth()
	if err != nil {
		return nil, err
	}
	o = append(o, auth...)
	var nc *nats.Conn
	if s.opts.URL != "" {
		nc, err = nats.Connect(s.opts.URL, o...)
		if err != nil {
			return nil, fmt.Errorf("connect to nats %s: %w", s.opts.URL, err)
		}
	} else {
		// In process there is no network to wait for, only a server
		// that may be slow to answer its first CONNECT on a loaded
		// machine (a member of a cluster starting with two others
		// exited with "read pipe: i/o timeout" after the client's
		// default 2 s).
		nc, err = nats.Connect("", append(o, nats.InProcessServer(inProcessProvider{s.ns}), nats.Timeout(inProcessConnectTimeout))...)
		if err != nil {
			return nil, fmt.Errorf("connect to embedded nats: %w", err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &conn{gen: gen, nc: nc, js: js}, nil
}

// replace dials a new connection after generation gen closed, retrying
// with backoff until it succeeds or the store is closed.
func (s *Store) replace(gen uint64, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.cur.Load().gen != gen {
		return
	}
	s.log.Error("store connection closed; dialling a new one", "err", cause)
	wait := 20 * time.Millisecond
	for {
		c, err := s.dial(gen + 1)
		if err == nil {
			s.cur.Store(c)
			s.redials.Add(1)
			close(s.changed)
			s.changed = make(chan struct{})
			s.log.Info("store connection re-established", "generation", c.gen)
			return
		}
		s.log.Warn("store redial failed", "err", err, "retry_in", wait)
		s.mu.Unlock()
		time.Sleep(wait)
		s.mu.Lock()
		if s.closing {
			return
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// current returns the live connection and a channel closed when it is
// replaced.
func (s *Store) current() (*conn, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Load(), s.changed
}

func (s *Store) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Redials counts how often the connection was replaced since Open.
func (s *Store) Redials() uint64 { return s.redials.Load() }

// MaxRecordBytes is the largest value one KV write or log append may carry:
// the server's max_payload (1 MiB unless the server is configured
// otherwise). Larger writes fail with ErrTooLarge.
func (s *Store) MaxRecordBytes() int {
	return int(s.cur.Load().nc.MaxPayload())
}

func (s *Store) startEmbedded() error {
	dir := filepath.Join(s.opts.Dir, "jetstream")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create store dir: %w", err)
	}
	sopts := &server.Options{
		ServerName:         "agentcloud",
		JetStream:          true,
		StoreDir:           dir,
		DontListen:         s.opts.Listen == "",
		NoLog:              true,
		NoSigs:             true,
		SyncAlways:         !s.opts.NoSync,
		JetStreamMaxMemory: 256 << 20,
	}
	if s.groupCommit() {
		sopts.SyncAlways = false
		s.gs = newGroupSync(dir)
	}
	if s.opts.Listen != "" {
		host, port, err := net.SplitHostPort(s.opts.Listen)
		if err != nil {
			return fmt.Errorf("nats listen address %q: %w", s.opts.Listen, err)
		}
		sopts.Host = host
		sopts.Port, err = strconv.Atoi(port)
		if err != nil {
			return fmt.Errorf("nats listen port %q: %w", port, err)
		}
		if sopts.Port == 0 {
			sopts.Port = server.RANDOM_PORT
		}
		if err := s.listenAuth(sopts); err != nil {
			return err
		}
	}
	if s.opts.Cluster != nil {
		if err := applyCluster(sopts, s.opts.Cluster); err != nil {
			return err
		}
		var slot raftSlot
		if rank, members, ok := ElectionSlot(s.opts.Cluster.Listen, s.opts.Cluster.Routes); ok && s.opts.Cluster.StaggerElections {
			slot = raftSlot{rank, members}
		}
		setRaftTiming(s.log, s.opts.Cluster.ElectionTimeout, slot)
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	// The server's debug lines (routes, raft elections, stream
	// assignments) come with the daemon's debug level.
	ns.SetLoggerV2(natsLogger{s.log}, s.log.Enabled(context.Background(), slog.LevelDebug), false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return errors.New("embedded nats did not become ready in 10s")
	}
	s.ns = ns
	return nil
}

// groupCommit reports whether writes are made durable by group commit: an
// embedded single node with no listener, so every writer is this process
// and waits in durable. Cluster members and listeners keep SyncAlways.
func (s *Store) groupCommit() bool {
	return s.Exclusive() && !s.opts.NoSync && !s.opts.SyncEachWrite
}

// Exclusive reports whether this process is the only writer of the store:
// an embedded single node with no NATS listener other clients could reach
// and no cluster. What a node keeps in memory about the store's contents
// (an index of keys) is complete only then.
func (s *Store) Exclusive() bool {
	return s.opts.URL == "" && s.opts.Listen == "" && s.opts.Cluster == nil
}

// send is called right before a write is published; durable must follow
// it, whatever the write's outcome (groupSync.send).
func (s *Store) send() {
	if s.gs != nil {
		s.gs.send()
	}
}

// durable returns err, or once a write the server acknowledged without
// error is on disk, the group commit's error (nil without group commit).
// It ends the write's send.
func (s *Store) durable(stream string, err error) error {
	if s.gs == nil {
		return err
	}
	if err != nil {
		s.gs.sent()
		return err
	}
	return s.gs.wait(stream)
}

// durableLater is durable for a write whose wait d puts off: the write's
// stream joins the next round and d remembers its ticket.
func (s *Store) durableLater(d *Deferred, stream string, err error) error {
	if s.gs == nil {
		return err
	}
	if err != nil {
		s.gs.sent()
		return err
	}
	d.add(s.gs, s.gs.register(stream))
	return nil
}

// SyncRounds is how many group-commit rounds (one fsync per stream
// written) have run since Open; 0 without group commit.
func (s *Store) SyncRounds() uint64 {
	if s.gs == nil {
		return 0
	}
	s.gs.mu.Lock()
	defer s.gs.mu.Unlock()
	return s.gs.rounds
}

// ListenAddr is the embedded server's client listener, or nil when it has
// none (the default) or the store is external.
func (s *Store) ListenAddr() net.Addr {
	if s.ns == nil {
		return nil
	}
	return s.ns.Addr()
}

// Mode is "embedded" or "external".
func (s *Store) Mode() string {
	if s.ns != nil {
		return "embedded"
	}
	return "external"
}

// SyncMode describes the durability setting.
func (s *Store) SyncMode() string {
	switch {
	case s.ns == nil:
		return "server-defined"
	case s.opts.NoSync:
		return "interval"
	case s.gs != nil:
		return "group"
	default:
		return "always"
	}
}

// Stats summarises what the store holds.
type Stats struct {
	Streams  int
	Messages uint64
	Bytes    uint64
}

// Stats reads JetStream account statistics.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	lister := s.cur.Load().js.ListStreams(ctx)
	for info := range lister.Info() {
		st.Streams++
		st.Messages += info.State.Msgs
		st.Bytes += info.State.Bytes
	}
	if err := lister.Err(); err != nil {
		return st, fmt.Errorf("list streams: %w", mapConnErr(err))
	}
	return st, nil
}

// Ping checks the connection end to end: it fails while the connection is
// down or being replaced, and succeeds again once it is back.
func (s *Store) Ping(ctx context.Context) error {
	c := s.cur.Load()
	if !c.nc.IsConnected() {
		return fmt.Errorf("store ping: not connected (%s): %w", c.nc.Status(), ErrUnavailable)
	}
	if _, err := c.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("store ping: %w", mapConnErr(err))
	}
	return nil
}

// Close flushes and disconnects, then stops the embedded server.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closing = true
	c := s.cur.Load()
	s.mu.Unlock()
	var err error
	if c != nil {
		err = c.nc.Drain()
		// Drain is asynchronous; wait for it so pending acks are not lost.
		for i := 0; i < 200 && !c.nc.IsClosed(); i++ {
			time.Sleep(5 * time.Millisecond)
		}
		c.nc.Close()
	}
	s.shutdownServer()
	if cerr := s.closeReadCaches(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

func (s *Store) shutdownServer() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
	if s.gs != nil {
		s.gs.close()
	}
}

// mapConnErr marks errors of a connection that is down or being replaced
// as ErrUnavailable, keeping the cause.
func mapConnErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		// A request no stream leader answered in time (an election after
		// a member died); the caller's own deadline stays visible too.
		errors.Is(err, context.DeadlineExceeded),
		// JetStream's own 503s ("JetStream system temporarily
		// unavailable" while a member leaves, say).
		isAPIStatus(err, 503):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// isAPIStatus reports a JetStream API error with HTTP-like status code.
func isAPIStatus(err error, code int) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == code
}

// natsLogger forwards the embedded server's logs to slog.
type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any)  {}
