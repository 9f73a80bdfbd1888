package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

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
	dir       string // data dir of an in-process daemon, else ""
	inProcess bool
	stop      func()
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
	d, err := daemon.New(cfg, nil)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := d.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n := &node{dir: dir, inProcess: true, stop: func() {
		_ = d.Shutdown(context.Background())
		os.RemoveAll(dir)
	}}
	tok, err := os.ReadFile(filepath.Join(dir, daemon.TokenFile))
	if err != nil {
		n.stop()
		return nil, fmt.Errorf("admin token: %w", err)
	}
	n.token = strings.TrimSpace(string(tok))
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}}
	n.c, err = client.New("http://"+d.Addr(), n.token, client.WithHTTPClient(hc))
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
