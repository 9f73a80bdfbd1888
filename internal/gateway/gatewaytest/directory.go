package gatewaytest

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/internal/gateway/httpsig"
	"github.com/agentcloud/agentcloud/internal/gateway/webbotauth"
)

// Directory is a Web Bot Auth key directory served over TLS on loopback,
// with a possession proof for each key, standing in for a bot operator's
// origin. Its Fetcher reaches it whatever origin a request names, as the
// egress proxy would reach the real one.
type Directory struct {
	srv     *httptest.Server
	Fetches atomic.Int64

	mu     sync.Mutex // protects keys, status
	keys   []ed25519.PrivateKey
	status int
	now    func() time.Time
}

// NewDirectory serves keys; now dates the proofs. Close it when done.
func NewDirectory(now func() time.Time, keys ...ed25519.PrivateKey) *Directory {
	d := &Directory{keys: keys, status: http.StatusOK, now: now}
	d.srv = httptest.NewTLSServer(http.HandlerFunc(d.serve))
	return d
}

// Close stops the server.
func (d *Directory) Close() { d.srv.Close() }

// SetStatus makes the directory answer with status (e.g. 503) from now on.
func (d *Directory) SetStatus(status int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status = status
}

func (d *Directory) serve(w http.ResponseWriter, r *http.Request) {
	d.Fetches.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.URL.Path != webbotauth.WellKnownPath {
		http.NotFound(w, r)
		return
	}
	var jwks []string
	for _, k := range d.keys {
		pub := k.Public().(ed25519.PublicKey)
		jwks = append(jwks, fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","kid":%q,"x":%q,"use":"sig"}`,
			webbotauth.Thumbprint(pub), base64.RawURLEncoding.EncodeToString(pub)))
	}
	body := []byte(`{"keys":[` + strings.Join(jwks, ",") + `]}`)
	h := w.Header()
	h.Set("Content-Type", webbotauth.DirectoryMediaType)
	h.Set("Cache-Control", "max-age=3600")
	h.Set("Content-Digest", httpsig.ContentDigest(body))
	now := d.now().Unix()
	req := &httpsig.Message{Method: "GET", Scheme: "https", Authority: r.Host, RawPath: r.URL.EscapedPath()}
	for i, k := range d.keys {
		in, sig, err := httpsig.Sign(httpsig.FromResponse(200, h, req), "p", []httpsig.Component{httpsig.C("@authority").WithReq(), httpsig.C("content-digest")},
			httpsig.SignParams{Created: now, Expires: now + 86400, KeyID: webbotauth.Thumbprint(k.Public().(ed25519.PublicKey)), Tag: webbotauth.ProofTag}, k)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		h.Add("Signature-Input", fmt.Sprintf("p%d=%s", i, in))
		h.Add("Signature", fmt.Sprintf("p%d=%s", i, sig))
	}
	w.WriteHeader(d.status)
	_, _ = w.Write(body)
}

// Fetcher returns a webbotauth.Fetcher that sends every URL to this
// server, over TLS, without following redirects.
func (d *Directory) Fetcher() webbotauth.Fetcher {
	addr := d.srv.Listener.Addr().String()
	roots := d.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c := &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "example.com"},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return fetcher{c}
}

type fetcher struct{ c *http.Client }

func (f fetcher) Fetch(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", webbotauth.DirectoryMediaType)
	return f.c.Do(req)
}

var nonces atomic.Int64

// SignBot signs r as a Web Bot Auth request by origin's key, created at
// now and valid for a minute, covering @authority, @method, @path and its
// Signature-Agent member.
func SignBot(r *http.Request, key ed25519.PrivateKey, origin string, now time.Time) error {
	r.Header.Set("Signature-Agent", fmt.Sprintf("sig1=%q", origin))
	comps := []httpsig.Component{httpsig.C("@authority"), httpsig.C("@method"), httpsig.C("@path"), httpsig.C("signature-agent").WithKey("sig1")}
	return httpsig.SignRequest(r, "sig1", comps, httpsig.SignParams{
		Created: now.Unix(), Expires: now.Unix() + 60, Nonce: fmt.Sprintf("n%d-%d", now.UnixNano(), nonces.Add(1)),
		KeyID: webbotauth.Thumbprint(key.Public().(ed25519.PublicKey)), Tag: webbotauth.Tag,
	}, key)
}

// Addr is the directory server's loopback host:port.
func (d *Directory) Addr() string { return d.srv.Listener.Addr().String() }

// RootCAs are the roots that verify the directory server's certificate
// (issued for example.com and 127.0.0.1).
func (d *Directory) RootCAs() *x509.CertPool {
	return d.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
}
