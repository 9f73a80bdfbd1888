// Package h3serve serves the API over HTTP/3 (QUIC on UDP) beside the TCP
// listener, as an option (config http3, needs tls): the same guarded
// handler, the same TLS config (ALPN h3), on UDP at the TCP listener's
// host:port, announced on TCP responses with Alt-Svc. The gateway's
// connection caps (serverlimits) wrap a net.Listener, so QUIC gets its own:
// connections over MaxConns or MaxConnsPerIP are closed after the
// handshake, streams per connection are capped by quic.Config, idle
// connections time out.
package h3serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/agentcloud/agentcloud/internal/gateway/serverlimits"
)

// Config is what Start needs. With On false Start does nothing.
type Config struct {
	On bool
	// Addr is the TCP listener's address; UDP binds the same host:port.
	Addr string
	// TLS is the TCP server's TLS config; a clone with ALPN h3 is used.
	TLS *tls.Config
	// Limits are the gateway's server limits, applied to QUIC (conns.go).
	Limits serverlimits.Settings
	Log    *slog.Logger
}

// Server is a running HTTP/3 server. A nil *Server is a disabled one.
type Server struct {
	h3   *http3.Server
	pc   net.PacketConn
	ln   *capped
	done chan struct{}
}

// Start listens on UDP at cfg.Addr and serves srv.Handler (the guarded
// chain, so call it after the gateway wraps srv) over HTTP/3; srv's TCP
// responses then carry Alt-Svc. Call it before srv serves.
func Start(srv *http.Server, cfg Config) (*Server, error) {
	if !cfg.On {
		return nil, nil
	}
	if cfg.TLS == nil {
		return nil, errors.New("http3: needs tls: set tls (--tls) or drop http3")
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	pc, err := net.ListenPacket("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("http3: listen on udp %s: %w", cfg.Addr, err)
	}
	ql, err := quic.Listen(pc, http3.ConfigureTLSConfig(cfg.TLS), quicConfig(cfg.Limits))
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("http3: %w", err)
	}
	guarded := srv.Handler
	s := &Server{pc: pc, ln: newCapped(ql, cfg.Limits), done: make(chan struct{})}
	s.h3 = &http3.Server{
		Handler:        guarded,
		MaxHeaderBytes: cfg.Limits.MaxHeaderBytes,
		IdleTimeout:    cfg.Limits.IdleTimeout,
		Logger:         log.With("component", "http3"),
	}
	altSvc := `h3=":` + strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port) + `"; ma=86400`
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Alt-Svc", altSvc)
		guarded.ServeHTTP(w, r)
	})
	go func() {
		defer close(s.done)
		if err := s.h3.ServeListener(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) {
			log.Error("http3 server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the UDP address served.
func (s *Server) Addr() net.Addr { return s.pc.LocalAddr() }

// Shutdown stops accepting, lets requests finish until ctx ends, then
// closes every connection and the UDP socket. Safe on a nil Server.
func (s *Server) Shutdown(ctx context.Context) error {
	if s == nil {
		return nil
	}
	err := s.h3.Shutdown(ctx)
	if err != nil {
		_ = s.h3.Close()
	}
	_ = s.ln.Close()
	<-s.done
	if cerr := s.pc.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("http3 shutdown: %w", err)
	}
	return nil
}
