// Package store owns agentcloud's storage and is the only package that imports
// NATS. It runs an embedded NATS server with JetStream inside the process (no
// network listener unless asked for) or connects to an external NATS server or
// cluster, and hands the rest of the daemon small interfaces: key-value
// buckets (KV), append-only logs (Log) and blobs (Blobs).
//
// Durability: in embedded mode JetStream fsyncs every write before it
// acknowledges it (SyncAlways), so a write acknowledged to a client survives
// kill -9 of the daemon. See docs/RATIONALE.md for why per-write sync rather
// than an interval.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors callers switch on with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	ErrConflict = errors.New("store: revision conflict")
	ErrInvalid  = errors.New("store: invalid name or key")
)

// Options configures Open. The zero value plus Dir is a durable single node.
type Options struct {
	// Dir is where the embedded server keeps JetStream data.
	Dir string
	// Listen exposes the embedded server on host:port; empty means no listener.
	Listen string
	// URL connects to an existing NATS server or cluster instead of embedding one.
	URL string
	// NoSync turns off fsync per write (tests and benchmarks only).
	NoSync bool
	// Replicas for buckets and streams (cluster mode); 0 means 1.
	Replicas int
	// Logger receives the store's logs.
	Logger *slog.Logger
}

// Store is an open connection to JetStream.
type Store struct {
	opts Options
	log  *slog.Logger
	ns   *server.Server // nil in external mode
	nc   *nats.Conn
	js   jetstream.JetStream
}

// Open starts (or connects to) NATS and JetStream.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	s := &Store{opts: opts, log: opts.Logger}
	// Asynchronous client errors (a watch's consumer gone at shutdown, a
	// slow consumer) go to the log, not to stderr.
	onErr := nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		s.log.Debug("nats async error", "subject", subject, "err", err)
	})
	var err error
	if opts.URL != "" {
		s.nc, err = nats.Connect(opts.URL, nats.Name("agentcloud"), nats.MaxReconnects(-1), onErr)
		if err != nil {
			return nil, fmt.Errorf("connect to nats %s: %w", opts.URL, err)
		}
	} else {
		if err := s.startEmbedded(); err != nil {
			return nil, err
		}
		s.nc, err = nats.Connect("", nats.InProcessServer(s.ns), nats.Name("agentcloud"), onErr)
		if err != nil {
			s.ns.Shutdown()
			return nil, fmt.Errorf("connect to embedded nats: %w", err)
		}
	}
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if _, err := s.js.AccountInfo(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("jetstream account: %w", err)
	}
	return s, nil
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
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	ns.SetLoggerV2(natsLogger{s.log}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return errors.New("embedded nats did not become ready in 10s")
	}
	s.ns = ns
	return nil
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
	lister := s.js.ListStreams(ctx)
	for info := range lister.Info() {
		st.Streams++
		st.Messages += info.State.Msgs
		st.Bytes += info.State.Bytes
	}
	if err := lister.Err(); err != nil {
		return st, fmt.Errorf("list streams: %w", err)
	}
	return st, nil
}

// Ping checks the connection end to end.
func (s *Store) Ping(ctx context.Context) error {
	if !s.nc.IsConnected() {
		return errors.New("store: not connected")
	}
	if _, err := s.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("store ping: %w", err)
	}
	return nil
}

// Close flushes and disconnects, then stops the embedded server.
func (s *Store) Close() error {
	var err error
	if s.nc != nil {
		err = s.nc.Drain()
		// Drain is asynchronous; wait for it so pending acks are not lost.
		for i := 0; i < 200 && !s.nc.IsClosed(); i++ {
			time.Sleep(5 * time.Millisecond)
		}
		s.nc.Close()
	}
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// natsLogger forwards the embedded server's logs to slog.
type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any)  {}
