package daemon

// Sandbox networking (sandbox_net.go).
//
// A process-tier sandbox has its own network namespace with loopback only:
// no interface, no route, nothing listening. At creation the daemon opens
// a listener on 127.0.0.1:3128 inside that namespace (sandbox.ListenInNetNS)
// and serves it from the host with the one egress proxy, bound to the
// sandbox's identity and grants. HTTP_PROXY and HTTPS_PROXY point there, so
// ordinary clients (curl, pip, urllib, requests, node) use it; a client
// that ignores them reaches nothing, since the namespace has no way out.
//
// Requests for http://agentcloud.internal/... do not leave the host: the
// proxy hands them to the daemon's own API, authenticated as the sandbox
// (a short-lived JWT-SVID the proxy adds; the sandbox never holds one).
//
// gVisor sandboxes (runsc --network=none) have no host network namespace:
// their pid 1 relays 127.0.0.1:3128 inside to a host Unix socket (see
// internal/sandbox/gvisor/egress.go), where the same proxy is served.

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
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const (
	// PlatformHost is the name under which sandboxes reach the platform API.
	PlatformHost = "agentcloud.internal"
	// sandboxProxyAddr is where the egress proxy listens inside a sandbox.
	sandboxProxyAddr = "127.0.0.1:3128"
	// sandboxTokenTTL bounds the JWT-SVID the proxy adds to platform calls.
	sandboxTokenTTL = 15 * time.Minute
)

// sandboxNet is the proxy listener of one sandbox.
type sandboxNet struct {
	rec security.SandboxRecord
	id  spiffeid.ID
	srv *http.Server

	mu    sync.Mutex // guards token and exp
	token string
	exp   time.Time
}

// sandboxNets tracks the proxy listeners by sandbox id.
type sandboxNets struct {
	mu   sync.Mutex
	byID map[string]*sandboxNet
}

// sandboxNetworkHook is the Manager's NetworkHook: it serves the egress
// proxy inside the sandbox's network namespace and returns the proxy
// environment.
func (d *Daemon) sandboxNetworkHook(ctx context.Context, parts *sandboxParts, sb sandbox.Sandbox, ns string) (map[string]string, error) {
	sid, err := d.sec.SandboxID(sb.ID())
	if err != nil {
		return nil, err
	}
	id, err := spiffeid.FromString(sid)
	if err != nil {
		return nil, fmt.Errorf("sandbox identity: %w", err)
	}
	var ln net.Listener
	if ns != "" {
		if ln, err = sandbox.ListenInNetNS(ctx, ns, "tcp", sandboxProxyAddr); err != nil {
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
	n := &sandboxNet{rec: recordOf(sb.ID(), sb.Spec().Labels), id: id}
	n.srv = &http.Server{
		Handler:           d.sandboxProxy(n),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	nets := &parts.nets
	nets.mu.Lock()
	if nets.byID == nil {
		nets.byID = map[string]*sandboxNet{}
	}
	nets.byID[sb.ID()] = n
	nets.mu.Unlock()
	go func() {
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Warn("sandbox proxy stopped", "sandbox", sb.ID(), "err", err)
		}
	}()
	proxy := "http://" + sandboxProxyAddr
	env := map[string]string{
		"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
		"NO_PROXY": "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1",
		"AGENTCLOUD_URL": "http://" + PlatformHost,
	}
	if len(parts.caBundle) > 0 {
		// The proxy intercepts HTTPS with leaves from the platform CA: put
		// the system roots plus that CA where TLS clients look.
		if err := sb.WriteFile(ctx, sandboxCAFile, bytes.NewReader(parts.caBundle), 0o444); err != nil {
			d.closeSandboxNet(parts, sb.ID())
			return nil, fmt.Errorf("sandbox CA bundle: %w", err)
		}
		for _, k := range []string{"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"} {
			env[k] = sandboxCAFile
		}
	}
	return env, nil
}

// sandboxCAFile is where a sandbox finds the roots it trusts.
const sandboxCAFile = sandbox.TmpDir + "/agentcloud-ca.pem"

// systemRoots are the host's trusted roots, for the sandbox CA bundle.
var systemRoots = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"}

// sandboxCABundle is the host's roots plus the platform CA, PEM.
func sandboxCABundle(ca *x509.Certificate) []byte {
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

// closeSandboxNet stops a sandbox's proxy listener (Manager OnClose).
func (d *Daemon) closeSandboxNet(parts *sandboxParts, id string) {
	nets := &parts.nets
	nets.mu.Lock()
	n := nets.byID[id]
	delete(nets.byID, id)
	nets.mu.Unlock()
	if n != nil {
		_ = n.srv.Close()
	}
}

// sandboxProxy serves one sandbox's proxy listener: platform calls go to
// the daemon's API, everything else through the egress proxy as the
// sandbox, with its grants in its egress.Caller.
func (d *Daemon) sandboxProxy(n *sandboxNet) http.Handler {
	rec := n.rec
	// The sandbox's grants travel in its egress caller, read by the decider,
	// the secret hook and the auditor. A session's sandbox reading an
	// untrusted host lowers the session's integrity: security's AuditEgress
	// does it as each answer arrives.
	caller := rec.EgressCaller(n.id.String())
	// Captured now: closeParts clears the daemon's fields while a handler
	// may still be finishing.
	proxy, sec := d.proxy.Handler(caller), d.sec
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
			d.servePlatform(w, r, n, sec)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// servePlatform hands a sandbox's request for http://agentcloud.internal to
// the daemon's API, authenticated as the sandbox. Whatever credentials the
// sandbox sent are replaced: it acts only as itself.
func (d *Daemon) servePlatform(w http.ResponseWriter, r *http.Request, n *sandboxNet, sec *security.Security) {
	tok, err := n.bearer(sec)
	if err != nil {
		d.log.Warn("sandbox platform token", "sandbox", n.rec.ID, "err", err)
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
	d.router.ServeHTTP(w, r2)
}

// bearer returns a JWT-SVID of the sandbox for the API audience, reissued
// when less than a third of its life is left.
func (n *sandboxNet) bearer(s *security.Security) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.token != "" && time.Until(n.exp) > sandboxTokenTTL/3 {
		return n.token, nil
	}
	tok, _, err := s.CA().IssueJWT(n.id, []string{security.APIAudience}, sandboxTokenTTL)
	if err != nil {
		return "", fmt.Errorf("issue sandbox token: %w", err)
	}
	n.token, n.exp = tok, time.Now().Add(sandboxTokenTTL)
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
