package security

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Session identities. Every session gets its SPIFFE ID
// (spiffe://TD/agent/A/session/S) when it activates. Its X.509-SVID, which
// the egress proxy presents to upstreams that ask for a client certificate,
// is minted at activation too, off the request path by one background
// worker that starts mintDelay after activation (so it does not compete
// with the activating request for the CPU; a fetch before then mints on
// demand), and only for sessions whose manifest lists egress hosts: a session
// that may reach no host never presents a certificate. The SVID is dropped
// when the session leaves memory and minted again on its next activation.
// Private keys stay in the daemon.

// svidQueue bounds the activations waiting for their SVID; past it, the
// first egress request mints on demand instead.
const svidQueue = 1024

// mintDelay is how long after activation the worker mints a session's SVID.
const mintDelay = 20 * time.Millisecond

type sessionSVIDs struct {
	ca    *identity.CA
	td    spiffeid.TrustDomain
	mu    sync.Mutex // protects slots
	slots map[string]*svidSlot
	queue chan *svidSlot
}

// svidSlot is one session's SVID, minted once by whoever needs it first.
type svidSlot struct {
	id    spiffeid.ID
	at    time.Time // when the worker may mint it
	once  sync.Once
	rot   *identity.Rotator
	err   error
	ready atomic.Bool // set once rot or err is
}

func (sl *svidSlot) get(ca *identity.CA) (*identity.Rotator, error) {
	sl.once.Do(func() {
		sl.rot, sl.err = ca.NewRotator(sl.id)
		sl.ready.Store(true)
	})
	return sl.rot, sl.err
}

// startSessionIdentities starts the minting worker (stopped by Close).
func (s *Security) startSessionIdentities() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.stop:
				return
			case sl := <-s.svids.queue:
				if d := time.Until(sl.at); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-s.stop:
						t.Stop()
						return
					case <-t.C:
					}
				}
				if _, err := sl.get(s.ca); err != nil {
					s.log.Warn("mint session svid", "id", sl.id.String(), "err", err)
				}
			}
		}
	}()
}

var _ session.Identity = (*Security)(nil)

// Activate implements session.Identity: it attaches the session's SPIFFE
// ID and queues the minting of its X.509-SVID when its manifest lists
// egress hosts.
func (s *Security) Activate(ctx context.Context, c session.Caller) (string, error) {
	return s.svids.activate(ctx, c)
}

// Release implements session.Identity: the session left memory, its SVID
// goes.
func (s *Security) Release(agent, sess string) { s.svids.release(agent, sess) }

// SessionSVIDMinted reports whether the session with SPIFFE ID id holds a
// minted X.509-SVID (diagnostics and tests).
func (s *Security) SessionSVIDMinted(id string) bool { return s.svids.minted(id) }

// sessionSVID returns the X.509-SVID source of a session (for its upstream
// client certificate), minted at the session's activation or now. The
// private key stays in the daemon; agent code never sees it.
func (s *Security) sessionSVID(id spiffeid.ID) (*identity.Rotator, error) {
	return s.svids.rotator(id)
}

func (v *sessionSVIDs) activate(_ context.Context, c session.Caller) (string, error) {
	id, err := identity.NewID(v.td, identity.KindSession, c.Agent+"/"+c.Session)
	if err != nil {
		return "", err
	}
	if len(c.Egress) == 0 {
		return id.String(), nil
	}
	sl := &svidSlot{id: id, at: time.Now().Add(mintDelay)}
	v.mu.Lock()
	v.slots[id.String()] = sl
	v.mu.Unlock()
	select {
	case v.queue <- sl:
	default: // busy: minted on first use
	}
	return id.String(), nil
}

func (v *sessionSVIDs) release(agent, sess string) {
	id, err := identity.NewID(v.td, identity.KindSession, agent+"/"+sess)
	if err != nil {
		return
	}
	v.mu.Lock()
	delete(v.slots, id.String())
	v.mu.Unlock()
}

// rotator returns the session's SVID source, minting it now if activation
// did not (FetchAsSession, or a full queue).
func (v *sessionSVIDs) rotator(id spiffeid.ID) (*identity.Rotator, error) {
	v.mu.Lock()
	sl := v.slots[id.String()]
	if sl == nil {
		sl = &svidSlot{id: id}
		v.slots[id.String()] = sl
	}
	v.mu.Unlock()
	return sl.get(v.ca)
}

// minted reports whether the session's SVID exists already.
func (v *sessionSVIDs) minted(id string) bool {
	v.mu.Lock()
	sl := v.slots[id]
	v.mu.Unlock()
	return sl != nil && sl.ready.Load() && sl.err == nil
}

// sessionID is the caller's SPIFFE ID, as attached at activation.
func sessionID(td spiffeid.TrustDomain, c session.Caller) (spiffeid.ID, error) {
	if c.ID != "" {
		return spiffeid.FromString(c.ID)
	}
	return identity.NewID(td, identity.KindSession, c.Agent+"/"+c.Session)
}
