// Package sandboxnet is sandbox networking: the egress proxy listener
// inside each sandbox and its platform calls.
//
// A process-tier sandbox has its own network namespace with loopback only:
// no interface, no route, nothing listening. At creation Nets.Hook opens
// a listener on 127.0.0.1:3128 inside that namespace (sandbox.ListenInNetNS)
// and serves it from the host with the one egress proxy, bound to the
// sandbox's identity and grants. HTTP_PROXY and HTTPS_PROXY point there, so
// ordinary clients (curl, pip, urllib, requests, node) use it; a client
// that ignores them reaches nothing, since the namespace has no way out.
//
// Requests for http://agentcloud.internal/... do not leave the host: the
// proxy hands them to the platform's own API (Config.Platform),
// authenticated as the sandbox (a short-lived JWT-SVID the proxy adds; the
// sandbox never holds one).
//
// gVisor sandboxes (runsc --network=none) have no host network namespace:
// their pid 1 relays 127.0.0.1:3128 inside to a host Unix socket (see
// internal/sandbox/gvisor/egress.go), where the same proxy is served.
//
// The package owns the per-sandbox listeners, the proxy environment and CA
// bundle written into a sandbox, and the sandbox's platform credentials.
// It does not decide egress (the egress proxy and the security part do,
// reached through Config.Egress) nor serve the API (Config.Platform).
package sandboxnet

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const (
	// PlatformHost is the name under which sandboxes reach the platform API.
	PlatformHost = "agentcloud.internal"
	// ProxyAddr is where the egress proxy listens inside a sandbox.
	ProxyAddr = "127.0.0.1:3128"
	// TokenTTL bounds the JWT-SVID the proxy adds to platform calls.
	TokenTTL = 15 * time.Minute
)

// Config is what the sandbox networks run on.
type Config struct {
	// SandboxID is the SPIFFE ID of a sandbox.
	SandboxID func(id string) (string, error)
	// Egress is the egress proxy acting as sandbox id with o's grants.
	Egress func(id spiffeid.ID, o sandbox.Ownership) http.Handler
	// Platform serves the API for requests to http://PlatformHost.
	Platform http.Handler
	// IssueToken issues a JWT-SVID of id for the API audience.
	IssueToken func(id spiffeid.ID, ttl time.Duration) (string, error)
	// CABundle (PEM) is written into each sandbox as the roots it trusts;
	// none: the sandbox keeps its own.
	CABundle []byte
	Logger   *slog.Logger
	// Now is the clock of token renewal (time.Now if nil).
	Now func() time.Time
}

// Nets tracks the proxy listeners of the live sandboxes by id.
type Nets struct {
	cfg  Config
	mu   sync.Mutex
	byID map[string]*sandboxNet
}

// New returns the sandbox networks over cfg.
func New(cfg Config) *Nets {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Nets{cfg: cfg, byID: map[string]*sandboxNet{}}
}

// sandboxNet is the proxy listener of one sandbox.
type sandboxNet struct {
	rec sandbox.Ownership
	id  spiffeid.ID
	srv *http.Server

	mu    sync.Mutex // guards token and exp
	token string
	exp   time.Time
}

// Hook is the Manager's NetworkHook: it serves the egress proxy inside
// the sandbox's network namespace and returns the proxy environment.
func (ns *Nets) Hook(ctx context.Context, sb sandbox.Sandbox, netns string) (map[string]string, error) {
	sid, err := ns.cfg.SandboxID(sb.ID())
	if err != nil {
		return nil, err
	}
	id, err := spiffeid.FromString(sid)
	if err != nil {
		return nil, fmt.Errorf("sandbox identity: %w", err)
	}
	var ln net.Listener
	if netns != "" {
		if ln, err = sandbox.ListenInNetNS(ctx, netns, "tcp", ProxyAddr); err != nil {
			return nil, err
		}
	} else {
		es, ok := sb.(sandbox.EgressSocketer)
		if !ok {
			return nil, nil // no way to reach the sandbox's loopback: it keeps loopback only
		}
		path, err := es.EgressSocket()
		if errors.Is(err, sandbox.ErrUnsupported) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if ln, err = listenUnix(path); err != nil {
			return nil, err
		}
	}
	n := &sandboxNet{rec: sandbox.OwnershipOf(sb.ID(), sb.Spec().Labels), id: id}
	n.srv = &http.Server{
		Handler:           ns.proxy(n),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(ns.cfg.Logger.Handler(), slog.LevelDebug),
	}
	ns.mu.Lock()
	ns.byID[sb.ID()] = n
	ns.mu.Unlock()
	go func() {
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			ns.cfg.Logger.Warn("sandbox proxy stopped", "sandbox", sb.ID(), "err", err)
		}
	}()
	proxy := "http://" + ProxyAddr
	env := map[string]string{
		"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
		"NO_PROXY": "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1",
		"AGENTCLOUD_URL": "http://" + PlatformHost,
	}
	if len(ns.cfg.CABundle) > 0 {
		// The proxy intercepts HTTPS with leaves from the platform CA: put
		// the system roots plus that CA where TLS clients look.
		if err := sb.WriteFile(ctx, CAFile, bytes.NewReader(ns.cfg.CABundle), 0o444); err != nil {
			ns.Close(sb.ID())
			return nil, fmt.Errorf("sandbox CA bundle: %w", err)
		}
		for _, k := range []string{"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"} {
			env[k] = CAFile
		}
	}
	return env, nil
}

// CAFile is where a sandbox finds the roots it trusts.
const CAFile = sandbox.TmpDir + "/agentcloud-ca.pem"

// systemRoots are the host's trusted roots, for the sandbox CA bundle.
var systemRoots = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"}

// CABundle is the host's roots plus the platform CA, PEM.
func CABundle(ca *x509.Certificate) []byte {
	var b bytes.Buffer
	for _, p := range systemRoots {
		if data, err := os.ReadFile(p); err == nil {
			b.Write(data)
			b.WriteByte('\n')
			break
		}
	}
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	return b.Bytes()
}

// Close stops a sandbox's proxy listener (the Manager's OnClose).
func (ns *Nets) Close(id string) {
	ns.mu.Lock()
	n := ns.byID[id]
	delete(ns.byID, id)
	ns.mu.Unlock()
	if n != nil {
		_ = n.srv.Close()
	}
}

// proxy serves one sandbox's proxy listener: platform calls go to the
// API, everything else through the egress proxy as the sandbox, with its
// grants (Config.Egress).
func (ns *Nets) proxy(n *sandboxNet) http.Handler {
	proxy := ns.cfg.Egress(n.id, n.rec)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.URL.Hostname()
		if host == "" {
			host, _, _ = strings.Cut(r.Host, ":")
		}
		if strings.EqualFold(strings.TrimSuffix(host, "."), PlatformHost) {
			if r.Method == http.MethodConnect {
				http.Error(w, "use http://"+PlatformHost+": platform calls do not leave the host", http.StatusBadRequest)
				return
			}
			ns.servePlatform(w, r, n)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// servePlatform hands a sandbox's request for http://agentcloud.internal to
// the API, authenticated as the sandbox. Whatever credentials the sandbox
// sent are replaced: it acts only as itself.
func (ns *Nets) servePlatform(w http.ResponseWriter, r *http.Request, n *sandboxNet) {
	tok, err := ns.bearer(n)
	if err != nil {
		ns.cfg.Logger.Warn("sandbox platform token", "sandbox", n.rec.ID, "err", err)
		http.Error(w, "platform credentials unavailable", http.StatusServiceUnavailable)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	r2.RequestURI = r2.URL.RequestURI()
	r2.Host = PlatformHost
	r2.Header.Del("Proxy-Authorization")
	r2.Header.Del("Proxy-Connection")
	r2.Header.Set("Authorization", "Bearer "+tok)
	ns.cfg.Platform.ServeHTTP(w, r2)
}

// bearer returns a JWT-SVID of the sandbox for the API audience, reissued
// when less than a third of its life is left.
func (ns *Nets) bearer(n *sandboxNet) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := ns.cfg.Now()
	if n.token != "" && n.exp.Sub(now) > TokenTTL/3 {
		return n.token, nil
	}
	tok, err := ns.cfg.IssueToken(n.id, TokenTTL)
	if err != nil {
		return "", fmt.Errorf("issue sandbox token: %w", err)
	}
	n.token, n.exp = tok, now.Add(TokenTTL)
	return tok, nil
}

// listenUnix listens on a host Unix socket that a gVisor sandbox's relay
// connects to; the sandbox user must be able to connect (0666; its
// directory is root-owned and read-only to that user).
func listenUnix(path string) (net.Listener, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("sandbox egress socket: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("sandbox egress socket: %w", err)
	}
	return ln, nil
}
