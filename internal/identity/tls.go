package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ErrUnauthenticated is returned by Authenticate when the request carries
// neither a client certificate nor a bearer token.
var ErrUnauthenticated = errors.New("no credentials")

// Rotator keeps an X.509-SVID for one ID fresh: GetX509SVID reissues it once
// half its lifetime has passed. It implements x509svid.Source, so it plugs
// straight into the tlsconfig helpers and is consulted on every handshake.
type Rotator struct {
	ca  *CA
	id  spiffeid.ID
	dns []string

	mu   sync.Mutex // protects svid
	svid *x509svid.SVID
}

var _ x509svid.Source = (*Rotator)(nil)

// NewRotator issues the first SVID for id and returns a Rotator for it.
func (ca *CA) NewRotator(id spiffeid.ID, dnsNames ...string) (*Rotator, error) {
	r := &Rotator{ca: ca, id: id, dns: dnsNames}
	if _, err := r.GetX509SVID(); err != nil {
		return nil, err
	}
	return r, nil
}

// RotateAt returns when the current SVID reaches half-life.
func (r *Rotator) RotateAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return halfLife(r.svid)
}

func halfLife(s *x509svid.SVID) time.Time {
	leaf := s.Certificates[0]
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
}

// GetX509SVID returns the current SVID, reissuing it at half-life.
func (r *Rotator) GetX509SVID() (*x509svid.SVID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.svid != nil && r.ca.cfg.Now().Before(halfLife(r.svid)) {
		return r.svid, nil
	}
	s, err := r.ca.IssueX509SVID(r.id, r.dns...)
	if err != nil {
		if r.svid != nil && r.ca.cfg.Now().Before(r.svid.Certificates[0].NotAfter) {
			r.ca.cfg.Logger.Warn("rotate x509-svid failed; keeping current", "id", r.id.String(), "err", err)
			return r.svid, nil
		}
		return nil, fmt.Errorf("rotate x509-svid %s: %w", r.id, err)
	}
	r.svid = s
	return s, nil
}

// ServerTLSConfig returns a server TLS config presenting src's SVID. Client
// certificates are optional (bearer tokens are the alternative) but, when
// presented, must be SVIDs of this trust domain.
func (ca *CA) ServerTLSConfig(src x509svid.Source) *tls.Config {
	cfg := tlsconfig.TLSServerConfig(src)
	cfg.ClientAuth = tls.RequestClientCert
	verify := tlsconfig.VerifyPeerCertificate(ca.x509Bundle, tlsconfig.AuthorizeMemberOf(ca.td))
	cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return nil
		}
		return verify(raw, chains)
	}
	return cfg
}

// ClientTLSConfig returns an mTLS client config presenting src's SVID and
// accepting only a server whose SVID is server (or, if server is zero, any
// member of the trust domain).
func (ca *CA) ClientTLSConfig(src x509svid.Source, server spiffeid.ID) *tls.Config {
	auth := tlsconfig.AuthorizeMemberOf(ca.td)
	if !server.IsZero() {
		auth = tlsconfig.AuthorizeID(server)
	}
	return tlsconfig.MTLSClientConfig(src, ca.x509Bundle, auth)
}

// Authenticator authenticates HTTP requests by mTLS client SVID or by a
// bearer JWT-SVID whose audience includes Audience.
type Authenticator struct {
	CA       *CA
	Audience string
}

// Authenticate returns the caller's principal. A verified client certificate
// wins over a bearer token.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	return a.authenticate(r.Context(), r)
}

func (a *Authenticator) authenticate(ctx context.Context, r *http.Request) (Principal, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		id, _, err := x509svid.Verify(r.TLS.PeerCertificates, a.CA.x509Bundle, x509svid.WithTime(a.CA.cfg.Now()))
		if err != nil {
			return Principal{}, fmt.Errorf("authenticate client certificate: %w", err)
		}
		p, err := PrincipalFromID(a.CA.td, id)
		if err != nil {
			return Principal{}, fmt.Errorf("authenticate client certificate: %w", err)
		}
		return p, nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return Principal{}, fmt.Errorf("authenticate: %w", ErrUnauthenticated)
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return Principal{}, fmt.Errorf("authenticate: authorization scheme is not Bearer: %w", ErrMalformedToken)
	}
	t, err := a.CA.VerifyJWT(ctx, strings.TrimSpace(tok), a.Audience)
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	return t.Principal, nil
}

// PeerTLSConfig returns the TLS configuration of a link between nodes that
// both accept and dial (NATS cluster routes): each side presents src's
// SVID and accepts only a node SVID of this trust domain, as server and as
// client. Peers are verified by SPIFFE ID, not host name, so the standard
// host name check is replaced by that verification.
func (ca *CA) PeerTLSConfig(src x509svid.Source) *tls.Config {
	nodes := tlsconfig.AdaptMatcher(func(id spiffeid.ID) error {
		if !id.MemberOf(ca.td) || !strings.HasPrefix(id.Path(), "/"+string(KindNode)+"/") {
			return fmt.Errorf("peer %s is not a node of %s", id, ca.td)
		}
		return nil
	})
	cfg := tlsconfig.MTLSServerConfig(src, ca.x509Bundle, nodes)
	client := tlsconfig.MTLSClientConfig(src, ca.x509Bundle, nodes)
	cfg.GetClientCertificate = client.GetClientCertificate
	cfg.InsecureSkipVerify = client.InsecureSkipVerify // VerifyPeerCertificate checks the SVID
	return cfg
}
