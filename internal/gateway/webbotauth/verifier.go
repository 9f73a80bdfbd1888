package webbotauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/agentcloud/agentcloud/internal/gateway/clock"
	"github.com/agentcloud/agentcloud/internal/gateway/gcra"
	"github.com/agentcloud/agentcloud/internal/gateway/httpsig"
)

// Tag is the signature tag of Web Bot Auth.
const Tag = "web-bot-auth"

// Fetcher GETs a key directory URL (always https). It must not follow
// redirects; the daemon backs it with the egress proxy, which refuses
// private and loopback destinations. The verifier closes the body.
type Fetcher interface {
	Fetch(ctx context.Context, url string) (*http.Response, error)
}

// Config bounds the verifier. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// MaxAge is how old (by created) a signature may be; the replay memory
	// keeps each signature this long. MaxLifetime caps expires - created.
	MaxAge      time.Duration
	MaxLifetime time.Duration
	// ClockSkew is allowed between the signer's clock and ours.
	ClockSkew time.Duration
	// RequireNonce refuses signatures without a nonce.
	RequireNonce bool
	// AllowUnprovenKeys also uses keys the directory response does not
	// prove possession of (no signature with tag
	// http-message-signatures-directory made with the key). By default
	// only proven keys are used.
	AllowUnprovenKeys bool
	// Directory cache: validity from the response's Cache-Control or
	// Expires, DefaultTTL without either, clamped to [MinTTL, MaxTTL];
	// a failed refresh keeps using the old keys for StaleIfError; a failed
	// first fetch is remembered for NegativeTTL.
	DefaultTTL, MinTTL, MaxTTL time.Duration
	StaleIfError, NegativeTTL  time.Duration
	// Fetching: per-fetch timeout, body and key-count limits, the number
	// of directories cached, new fetches per minute and at once.
	FetchTimeout       time.Duration
	MaxDirectoryBytes  int
	MaxKeys            int
	MaxDirectories     int
	FetchesPerMinute   int
	MaxParallelFetches int
	// ReplayEntries and ReplayPerSigner bound the replay memory.
	ReplayEntries, ReplayPerSigner int
}

// DefaultConfig is the verifier's defaults.
func DefaultConfig() Config {
	return Config{
		MaxAge: 5 * time.Minute, MaxLifetime: 24 * time.Hour, ClockSkew: time.Minute,
		DefaultTTL: time.Hour, MinTTL: time.Minute, MaxTTL: 24 * time.Hour,
		StaleIfError: time.Hour, NegativeTTL: time.Minute,
		FetchTimeout: 5 * time.Second, MaxDirectoryBytes: 64 << 10, MaxKeys: 32,
		MaxDirectories: 1024, FetchesPerMinute: 60, MaxParallelFetches: 4,
		ReplayEntries: 200_000, ReplayPerSigner: 20_000,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	seti := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&c.MaxAge, d.MaxAge)
	set(&c.MaxLifetime, d.MaxLifetime)
	set(&c.ClockSkew, d.ClockSkew)
	set(&c.DefaultTTL, d.DefaultTTL)
	set(&c.MinTTL, d.MinTTL)
	set(&c.MaxTTL, d.MaxTTL)
	set(&c.StaleIfError, d.StaleIfError)
	set(&c.NegativeTTL, d.NegativeTTL)
	set(&c.FetchTimeout, d.FetchTimeout)
	seti(&c.MaxDirectoryBytes, d.MaxDirectoryBytes)
	seti(&c.MaxKeys, d.MaxKeys)
	seti(&c.MaxDirectories, d.MaxDirectories)
	seti(&c.FetchesPerMinute, d.FetchesPerMinute)
	seti(&c.MaxParallelFetches, d.MaxParallelFetches)
	seti(&c.ReplayEntries, d.ReplayEntries)
	seti(&c.ReplayPerSigner, d.ReplayPerSigner)
	return c
}

// Outcome is what verification concluded, as the draft's deployment
// guidance names them.
type Outcome int

const (
	// NoSignature: the request carries no web-bot-auth signature.
	NoSignature Outcome = iota
	// Verified: the signature verifies under a key its signer's directory
	// provides; Result.Signer names the signer.
	Verified
	// Invalid: the signature is malformed, expired, replayed, or does not
	// verify under the signer's keys. The request should be refused.
	Invalid
	// Unverified: the verifier could not decide (directory unreachable,
	// unsupported key or discovery type, replay memory full). The request
	// is not attributed to anyone.
	Unverified
)

func (o Outcome) String() string {
	return [...]string{"none", "verified", "invalid", "unverified"}[o]
}

// Errors wrapped by Result.Err for the Invalid outcome.
var (
	ErrMalformed = errors.New("malformed Web Bot Auth signature")
	ErrInvalid   = errors.New("invalid Web Bot Auth signature")
)

// Result is the verdict on one request.
type Result struct {
	Outcome Outcome
	// Signer is the signer's identifier: its directory URL.
	Signer string
	KeyID  string
	Label  string
	// Err says why for Invalid and Unverified.
	Err error
}

// Verifier verifies Web Bot Auth signatures. It is safe for concurrent use.
type Verifier struct {
	cfg     Config
	fetch   Fetcher
	clock   clock.Clock
	dirs    *lru.Cache[string, *entry]
	replay  *replayCache
	fetches *gcra.Limiter
	slots   chan struct{}

	mu       sync.Mutex // protects inflight
	inflight map[string]*call
}

type entry struct {
	keys       []Key
	fetched    time.Time
	fresh      time.Time // usable until
	staleUntil time.Time // usable after a failed refresh until
	failedAt   time.Time // last failed fetch (zero if the last one worked)
	failure    error
}

type call struct {
	done chan struct{}
	e    *entry
	err  error
}

// New returns a verifier that resolves directories with f.
func New(cfg Config, f Fetcher, clk clock.Clock) (*Verifier, error) {
	cfg = cfg.withDefaults()
	if f == nil {
		return nil, errors.New("webbotauth: a Fetcher is required")
	}
	if clk == nil {
		clk = clock.Real()
	}
	dirs, err := lru.New[string, *entry](cfg.MaxDirectories)
	if err != nil {
		return nil, fmt.Errorf("webbotauth: %w", err)
	}
	fl, err := gcra.New(gcra.Limit{Quota: cfg.FetchesPerMinute, Window: time.Minute}, 1)
	if err != nil {
		return nil, fmt.Errorf("webbotauth: fetches per minute: %w", err)
	}
	return &Verifier{
		cfg: cfg, fetch: f, clock: clk, dirs: dirs,
		replay:   newReplayCache(cfg.ReplayEntries, cfg.ReplayPerSigner),
		fetches:  fl,
		slots:    make(chan struct{}, cfg.MaxParallelFetches),
		inflight: make(map[string]*call),
	}, nil
}

// Verify checks every web-bot-auth signature of r (other RFC 9421
// signatures are ignored). One invalid signature makes the request Invalid;
// otherwise the first verified one names the signer.
func (v *Verifier) Verify(ctx context.Context, r *http.Request) Result {
	sigs, err := httpsig.Parse(r.Header)
	if err != nil {
		return Result{Outcome: Invalid, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	var out Result
	msg := httpsig.FromRequest(r)
	for _, s := range sigs {
		if s.Tag != Tag {
			continue // other uses of RFC 9421 are not ours to judge
		}
		res := v.verifyOne(ctx, msg, r, s)
		if res.Outcome == Invalid {
			return res
		}
		if out.Outcome == NoSignature || out.Outcome == Unverified && res.Outcome == Verified {
			out = res
		}
	}
	return out
}

func invalid(s *httpsig.Signature, format string, args ...any) Result {
	return Result{Outcome: Invalid, Label: s.Label, KeyID: s.KeyID,
		Err: fmt.Errorf("%w %q: %s", ErrInvalid, s.Label, fmt.Sprintf(format, args...))}
}

func (v *Verifier) verifyOne(ctx context.Context, msg *httpsig.Message, r *http.Request, s *httpsig.Signature) Result {
	now := v.clock.Now()
	// The profile: created, expires and a thumbprint keyid; the authority
	// and the signer's Signature-Agent member covered.
	if !s.HasCreated || !s.HasExpires || s.KeyID == "" {
		return Result{Outcome: Invalid, Label: s.Label, Err: fmt.Errorf("%w: signature %q needs created, expires and keyid", ErrMalformed, s.Label)}
	}
	if s.Alg != "" && s.Alg != httpsig.AlgEd25519 {
		return Result{Outcome: Unverified, Label: s.Label, KeyID: s.KeyID, Err: fmt.Errorf("algorithm %q is not supported", s.Alg)}
	}
	created, expires := time.Unix(s.Created, 0), time.Unix(s.Expires, 0)
	skew := v.cfg.ClockSkew
	switch {
	case !expires.After(created):
		return invalid(s, "expires is not after created")
	case created.After(now.Add(skew)):
		return invalid(s, "created is in the future")
	case now.After(expires.Add(skew)):
		return invalid(s, "expired at %s", expires.UTC().Format(time.RFC3339))
	case now.Sub(created) > v.cfg.MaxAge+skew:
		return invalid(s, "created %s ago; signatures older than %s are refused", now.Sub(created).Round(time.Second), v.cfg.MaxAge)
	case expires.Sub(created) > v.cfg.MaxLifetime:
		return invalid(s, "lifetime %s is longer than %s", expires.Sub(created), v.cfg.MaxLifetime)
	}
	if v.cfg.RequireNonce && s.Nonce == "" {
		return invalid(s, "a nonce is required")
	}
	if !s.Covers("@authority", "") && !s.Covers("@target-uri", "") {
		return invalid(s, "it must cover @authority or @target-uri")
	}
	member, ok := agentComponent(s)
	if !ok {
		return invalid(s, "it must cover exactly one Signature-Agent member (its signer)")
	}
	signer, err := agentMember(r.Header.Values("Signature-Agent"), member)
	if errors.Is(err, errUnsupportedType) {
		return Result{Outcome: Unverified, Label: s.Label, KeyID: s.KeyID, Err: err}
	}
	if err != nil {
		return Result{Outcome: Invalid, Label: s.Label, KeyID: s.KeyID, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	id := s.Nonce
	if id == "" {
		id = "sig:" + base64.StdEncoding.EncodeToString(s.Value)
	}
	rkey := replayKey(signer, id)
	if v.replay.seenBefore(rkey, now.UnixNano()) {
		return invalid(s, "%v", errReplayed)
	}
	key, err := v.key(ctx, signer, s.KeyID)
	if errors.Is(err, errUnknownKey) || errors.Is(err, errKeyNotValid) {
		return invalid(s, "%v", err)
	}
	if err != nil {
		return Result{Outcome: Unverified, Signer: "", Label: s.Label, KeyID: s.KeyID, Err: err}
	}
	if err := httpsig.Verify(msg, s, key.Public); err != nil {
		return invalid(s, "%v", err)
	}
	until := created.Add(v.cfg.MaxAge + 2*skew)
	if e := expires.Add(skew); e.Before(until) {
		until = e
	}
	switch err := v.replay.add(signer, rkey, until.UnixNano(), now.UnixNano()); {
	case errors.Is(err, errReplayed):
		return invalid(s, "%v", err)
	case err != nil:
		return Result{Outcome: Unverified, Label: s.Label, KeyID: s.KeyID, Err: err}
	}
	return Result{Outcome: Verified, Signer: signer, KeyID: s.KeyID, Label: s.Label}
}

// agentComponent returns the Signature-Agent member key s covers ("" for
// the legacy whole-field form). A signature covering several members must
// cover the one keyed by its own label.
func agentComponent(s *httpsig.Signature) (string, bool) {
	var keys []string
	whole := false
	for _, c := range s.Components {
		if c.Name != "signature-agent" || c.Req {
			continue
		}
		if c.Key == "" && !c.SF && !c.BS {
			whole = true
			continue
		}
		if c.Key != "" {
			keys = append(keys, c.Key)
		}
	}
	switch {
	case whole && len(keys) == 0:
		return "", true
	case len(keys) == 1 && !whole:
		return keys[0], true
	}
	for _, k := range keys {
		if k == s.Label {
			return k, true
		}
	}
	return "", false
}

var (
	errUnknownKey  = errors.New("the signer's directory has no key with this keyid")
	errKeyNotValid = errors.New("the key is outside its nbf/exp validity")
)

// RefetchAfter is how old a cached directory must be before an unknown
// keyid makes the verifier fetch it again (a rotation it has not seen).
const RefetchAfter = time.Minute

// key finds keyid in signer's directory, fetching it when the cache has no
// fresh copy.
func (v *Verifier) key(ctx context.Context, signer, keyid string) (Key, error) {
	now := v.clock.Now()
	e, _ := v.dirs.Get(signer)
	if e != nil && e.keys != nil && now.Before(e.fresh) {
		if k, err := v.pick(e, keyid, now); err == nil || now.Sub(e.fetched) < RefetchAfter {
			return k, err
		}
	}
	if e != nil && !e.failedAt.IsZero() && now.Sub(e.failedAt) < v.cfg.NegativeTTL {
		if e.keys != nil && now.Before(e.staleUntil) {
			return v.pick(e, keyid, now)
		}
		return Key{}, fmt.Errorf("directory %s failed %s ago: %w", signer, now.Sub(e.failedAt).Round(time.Second), e.failure)
	}
	ne, err := v.resolve(ctx, signer)
	if err != nil {
		return Key{}, err
	}
	return v.pick(ne, keyid, now)
}

func (v *Verifier) pick(e *entry, keyid string, now time.Time) (Key, error) {
	i := keyIndex(e.keys, keyid)
	if i < 0 || !v.cfg.AllowUnprovenKeys && !e.keys[i].Proven {
		if i >= 0 {
			return Key{}, fmt.Errorf("%w: key %s has no possession proof on the directory", ErrDirectory, keyid)
		}
		return Key{}, errUnknownKey
	}
	k := e.keys[i]
	if !k.NotBefore.IsZero() && now.Before(k.NotBefore) || !k.Expires.IsZero() && !now.Before(k.Expires) {
		return Key{}, errKeyNotValid
	}
	return k, nil
}

// resolve fetches signer's directory once for all concurrent callers and
// updates the cache: a failure keeps the old keys (for StaleIfError) and
// is remembered for NegativeTTL.
func (v *Verifier) resolve(ctx context.Context, signer string) (*entry, error) {
	v.mu.Lock()
	if c, ok := v.inflight[signer]; ok {
		v.mu.Unlock()
		select {
		case <-c.done:
			return c.e, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &call{done: make(chan struct{})}
	v.inflight[signer] = c
	v.mu.Unlock()

	c.e, c.err = v.fetchEntry(ctx, signer)

	v.mu.Lock()
	delete(v.inflight, signer)
	v.mu.Unlock()
	close(c.done)
	return c.e, c.err
}

func (v *Verifier) fetchEntry(ctx context.Context, signer string) (*entry, error) {
	now := v.clock.Now()
	old, _ := v.dirs.Get(signer)
	fresh, err := v.download(ctx, signer, now)
	if err == nil {
		v.dirs.Add(signer, fresh)
		return fresh, nil
	}
	e := &entry{failedAt: now, failure: err}
	if old != nil && old.keys != nil {
		cp := *old
		cp.failedAt, cp.failure = now, err
		e = &cp
	}
	v.dirs.Add(signer, e)
	if e.keys != nil && now.Before(e.staleUntil) {
		return e, nil // a failed refresh is not evidence: keep the keys
	}
	return nil, err
}

func (v *Verifier) download(ctx context.Context, signer string, now time.Time) (*entry, error) {
	if !v.fetches.Allow("", now).Allowed {
		return nil, fmt.Errorf("%w: too many new directory fetches (limit %d per minute)", ErrDirectory, v.cfg.FetchesPerMinute)
	}
	select {
	case v.slots <- struct{}{}:
		defer func() { <-v.slots }()
	default:
		return nil, fmt.Errorf("%w: %d directory fetches already running", ErrDirectory, v.cfg.MaxParallelFetches)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.FetchTimeout)
	defer cancel()
	resp, err := v.fetch.Fetch(fctx, signer)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch %s: %w", ErrDirectory, signer, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(v.cfg.MaxDirectoryBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrDirectory, signer, err)
	}
	if err := checkResponse(resp, body, v.cfg.MaxDirectoryBytes); err != nil {
		return nil, err
	}
	keys, err := ParseDirectory(body, v.cfg.MaxKeys)
	if err != nil {
		return nil, err
	}
	proofUntil, err := verifyProofs(keys, resp, body, signer, now, v.cfg.ClockSkew)
	if err != nil {
		return nil, err
	}
	ttl := freshness(resp.Header, now, v.cfg.DefaultTTL, v.cfg.MinTTL, v.cfg.MaxTTL)
	e := &entry{keys: keys, fetched: now, fresh: now.Add(ttl)}
	if !proofUntil.IsZero() && proofUntil.Before(e.fresh) && !v.cfg.AllowUnprovenKeys {
		e.fresh = proofUntil
	}
	e.staleUntil = e.fresh.Add(v.cfg.StaleIfError)
	if e.keys == nil {
		e.keys = []Key{}
	}
	return e, nil
}
