package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// Target is the daemon a benchmark measures.
type Target struct {
	// Client talks to an existing daemon; nil starts one in a temporary
	// data dir for the benchmark and stops it afterwards.
	Client *client.Client
	// Token is Client's bearer token (Tools opens its own MCP connection).
	Token string
}

// node is the daemon a benchmark runs against.
type node struct {
	c         *client.Client
	token     string
	addr      string // host:port of an in-process daemon, else ""
	dir       string // data dir of an in-process daemon, else ""
	inProcess bool
	stop      func()
	// restart stops an in-process daemon and starts a new one on the same
	// data dir, returning how long the new one's Start took.
	restart func(ctx context.Context) (time.Duration, error)
}

// connect returns t's daemon, or starts one in a temporary data dir whose
// configuration tune may adjust; conc sizes the client's connection pool.
func connect(ctx context.Context, t Target, conc int, tune func(*config.Config)) (*node, error) {
	if t.Client != nil {
		return &node{c: t.Client, token: t.Token, stop: func() {}}, nil
	}
	dir, err := os.MkdirTemp("", "agentcloud-bench-")
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.Data, cfg.Listen = dir, "127.0.0.1:0"
	if tune != nil {
		tune(&cfg)
	}
	n := &node{dir: dir, inProcess: true}
	var d *daemon.Daemon
	start := func(ctx context.Context) (time.Duration, error) {
		t0 := time.Now()
		nd, err := daemon.New(cfg, nil)
		if err != nil {
			return 0, err
		}
		if err := nd.Start(ctx); err != nil {
			return 0, err
		}
		took := time.Since(t0)
		d, n.addr = nd, nd.Addr()
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}}
		if n.c, err = client.New("http://"+n.addr, n.token, client.WithHTTPClient(hc)); err != nil {
			_ = nd.Shutdown(context.Background())
			return 0, err
		}
		return took, nil
	}
	n.stop = func() {
		if d != nil {
			_ = d.Shutdown(context.Background())
		}
		os.RemoveAll(dir)
	}
	n.restart = func(ctx context.Context) (time.Duration, error) {
		if err := d.Shutdown(ctx); err != nil {
			return 0, fmt.Errorf("stop daemon: %w", err)
		}
		d = nil
		return start(ctx)
	}
	tok, err := func() ([]byte, error) {
		if _, err := start(ctx); err != nil {
			return nil, err
		}
		return os.ReadFile(filepath.Join(dir, daemon.TokenFile))
	}()
	if err != nil {
		n.stop()
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	n.token = strings.TrimSpace(string(tok))
	n.c, err = client.New("http://"+n.addr, n.token, client.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}}))
	if err != nil {
		n.stop()
		return nil, err
	}
	return n, nil
}

// describe formats an error for a result's first_error.
func describe(err error) string {
	var p *api.Problem
	if errors.As(err, &p) {
		s := fmt.Sprintf("%s (%d %s)", p.Detail, p.Status, p.Kind())
		if p.Field != "" {
			s += " [field: " + p.Field + "]"
		}
		return s
	}
	return err.Error()
}
