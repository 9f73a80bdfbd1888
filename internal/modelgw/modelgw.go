// Package modelgw is the model gateway: an OpenAI-compatible front for
// chat completions and embeddings that sends each request to the providers
// configured for its model, in order, with retries that honour Retry-After
// and fallback on connection errors, timeouts, 429 and 5xx. It caches
// identical temperature-0 answers, enforces per-agent and per-session token
// budgets by reserving an upper bound under compare-and-set before the call
// and settling to the reported usage after, and records usage and cost per
// caller. Providers, budgets and usage live in one store KV bucket.
//
// The package holds no secrets and opens no sockets of its own: the API key
// travels as a {{secret:NAME}} placeholder in the Authorization header and
// Config.Do (the daemon's egress proxy) substitutes it on the way out.
// Authorization is Config.Authorize (the daemon's Cedar engine). Its HTTP
// API lives in modelgwhttp; this package does not serve HTTP (ServeChat
// only writes a stream to the writer it is given). env.ai, the session
// service agent code calls, is Env (env.go).
package modelgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
	"github.com/agentcloud/agentcloud/internal/store"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// InvokeAction is the Cedar action of completions and embeddings.
const InvokeAction = "model.invoke"

// Caller is who a model call is made for: the session of an agent, an
// agent, or a user of the API (Agent empty). Budgets apply to agents and
// sessions; usage is recorded under Agent+Session, or under User.
type Caller struct {
	// Principal is the caller's SPIFFE ID (for authorization and audit).
	Principal string
	Agent     string
	Session   string
	// User is set when the caller is not an agent (a user or admin ID).
	User string
}

// Outbound describes one request to a provider, for Config.Do.
type Outbound struct {
	Caller   Caller
	Provider string
	// Host is the provider's host (lowercased, no port).
	Host string
	// Dest is the exact host:port pattern of the provider's base URL
	// (internal/egress/hostpattern): the one destination the call may reach.
	Dest string
	// Secret is the name of the secret the Authorization header refers to.
	Secret string
	// AllowPrivate is the provider's grant to reach a private or loopback
	// address (api.ModelProvider.AllowPrivate).
	AllowPrivate bool
}

// Doer sends one request to a provider. It must fill in the
// {{secret:NAME}} placeholder of req's headers (only for out.Secret and
// out.Host) and refuse anything else. A refusal by the platform itself
// (policy, egress rules) must be an *api.Problem: the gateway returns it
// as it is, without retrying or falling back.
type Doer func(ctx context.Context, out Outbound, req *http.Request) (*http.Response, error)

// Config configures a Gateway. Zero durations and sizes take the defaults noted.
type Config struct {
	KV store.KV // required: providers, budgets, usage
	Do Doer     // required: the way out
	// Authorize decides whether c may use model; nil allows.
	Authorize func(ctx context.Context, c Caller, model string) error
	// AuthorizeProvider, if set, decides per provider whether c's request
	// may go to p (the prompt leaves for p): a refused provider is skipped
	// before anything is sent; when every provider serving the model is
	// refused, the call fails with the first refusal, final.
	AuthorizeProvider func(ctx context.Context, c Caller, p api.ModelProvider) error
	// Answered, if set, runs when p's answer (fresh or cached) is about to
	// reach c; an error withholds the answer.
	Answered func(ctx context.Context, c Caller, p api.ModelProvider) error
	// CheckSecret, if set, vets a provider's secret when it is added: it
	// must exist and allow the base URL's scheme, host and port. Its error
	// is shown to the administrator.
	CheckSecret func(ctx context.Context, name string, base *url.URL) error

	Retries       int           // per provider after the first attempt (default 2; -1 for none)
	BackoffBase   time.Duration // default 200ms, doubled per retry, with jitter
	BackoffMax    time.Duration // default 5s
	RetryAfterMax time.Duration // a longer Retry-After moves on to the next provider (default 10s)

	CacheEntries int           // default 1024; -1 disables the cache
	CacheTTL     time.Duration // default 10m

	// DefaultMaxTokens is the completion reservation (and the max_tokens
	// sent) for a request without one when a budget applies (default 1024).
	DefaultMaxTokens int64
	// ImageTokens is reserved per image part of a prompt (default 2000).
	ImageTokens int64
	// MaxResponseBytes bounds a provider answer (default 32 MiB).
	MaxResponseBytes int64
	// ProviderTTL is how long the provider list is cached (default 2s;
	// writes on this node refresh it at once).
	ProviderTTL time.Duration

	// Metrics registers the gateway's collectors (nil: not exported).
	Metrics prometheus.Registerer

	Logger *slog.Logger
	Now    func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Retries == 0 {
		c.Retries = 2
	} else if c.Retries < 0 {
		c.Retries = 0
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 200 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Second
	}
	if c.RetryAfterMax <= 0 {
		c.RetryAfterMax = 10 * time.Second
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = 1024
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = 10 * time.Minute
	}
	if c.DefaultMaxTokens <= 0 {
		c.DefaultMaxTokens = 1024
	}
	if c.ImageTokens <= 0 {
		c.ImageTokens = 2000
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 32 << 20
	}
	if c.ProviderTTL <= 0 {
		c.ProviderTTL = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// DefaultTimeout is a provider's per-attempt timeout when none is set.
const DefaultTimeout = 30 * time.Second

// Gateway is the model gateway of one node.
type Gateway struct {
	cfg   Config
	kv    store.KV
	cache *cache
	locks keyLocks
	known *lru.Cache[string, known] // recently written KV keys
	m     *metrics

	pmu      sync.Mutex // protects provs and provsAt
	provs    []api.ModelProvider
	provsAt  time.Time
	provsSet bool
}

// New returns a Gateway over cfg.KV.
func New(cfg Config) (*Gateway, error) {
	if cfg.KV == nil || cfg.Do == nil {
		return nil, errors.New("modelgw: KV and Do are required")
	}
	cfg = cfg.withDefaults()
	g := &Gateway{cfg: cfg, kv: cfg.KV}
	var err error
	if g.known, err = lru.New[string, known](16384); err != nil {
		return nil, err
	}
	if g.m, err = newMetrics(cfg.Metrics); err != nil {
		return nil, fmt.Errorf("modelgw metrics: %w", err)
	}
	if cfg.CacheEntries > 0 {
		c, err := newCache(cfg.CacheEntries, cfg.CacheTTL, cfg.Now)
		if err != nil {
			return nil, err
		}
		g.cache = c
	}
	return g, nil
}

var providerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// modelNameRE accepts what providers use: letters, digits and . _ - / @ + :
// (no spaces or control characters), up to 256 bytes.
var (
	modelNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/@+:-]{0,255}$`)
	secretNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
)

// ValidateProvider checks p and fills defaults; errors name the field.
func ValidateProvider(p *api.ModelProvider) error {
	if !providerNameRE.MatchString(p.Name) {
		return api.FieldErrorf(api.KindValidation, "name", "provider name %q: use 1-63 lowercase letters, digits, - or _ (starting with a letter or digit)", p.Name)
	}
	u, err := url.Parse(p.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return api.FieldErrorf(api.KindValidation, "base_url", "base URL %q: want http(s)://host[:port]/path, without credentials, query or fragment", p.BaseURL)
	}
	if _, err := hostpattern.ForURL(u); err != nil {
		return api.FieldErrorf(api.KindValidation, "base_url", "base URL %q: the host cannot be an egress destination (use a host name or an IPv4 address): %v", p.BaseURL, err)
	}
	p.BaseURL = strings.TrimRight(p.BaseURL, "/")
	if p.Secret != "" && !secretNameRE.MatchString(p.Secret) {
		return api.FieldErrorf(api.KindValidation, "secret", "secret name %q is not valid (letters, digits, _ . -)", p.Secret)
	}
	if len(p.Models) == 0 {
		return api.FieldErrorf(api.KindValidation, "models", "list at least one model: name, or alias=upstream-name")
	}
	seen := map[string]bool{}
	for _, m := range p.Models {
		pub, up, _ := strings.Cut(m, "=")
		if up == "" {
			up = pub
		}
		if !modelNameRE.MatchString(pub) || !modelNameRE.MatchString(up) {
			return api.FieldErrorf(api.KindValidation, "models", "model %q: want name or alias=upstream-name (letters, digits, . _ / @ + : -)", m)
		}
		if seen[pub] {
			return api.FieldErrorf(api.KindValidation, "models", "model %q is listed twice", pub)
		}
		seen[pub] = true
	}
	if p.Timeout != "" {
		d, err := time.ParseDuration(p.Timeout)
		if err != nil || d <= 0 || d > 10*time.Minute {
			return api.FieldErrorf(api.KindValidation, "timeout", "timeout %q: want a Go duration between 1ms and 10m, like 30s", p.Timeout)
		}
	}
	for m, pr := range p.Prices {
		if !seen[m] && !slices.ContainsFunc(p.Models, func(s string) bool { _, up, _ := strings.Cut(s, "="); return up == m }) {
			return api.FieldErrorf(api.KindValidation, "prices", "price for %q, which this provider does not list in models", m)
		}
		if pr.Input < 0 || pr.Output < 0 || pr.Input > 1e6 || pr.Output > 1e6 {
			return api.FieldErrorf(api.KindValidation, "prices", "price for %q must be between 0 and 1e6 USD per million tokens", m)
		}
	}
	return nil
}

func providerKey(name string) string { return store.Key("provider", name) }

// PutProvider creates or replaces a provider.
func (g *Gateway) PutProvider(ctx context.Context, p api.ModelProvider) (api.ModelProvider, error) {
	if err := ValidateProvider(&p); err != nil {
		return p, err
	}
	if p.Secret != "" && g.cfg.CheckSecret != nil {
		u, _ := url.Parse(p.BaseURL)
		if err := g.cfg.CheckSecret(ctx, p.Secret, u); err != nil {
			return p, err
		}
	}
	p.Created = g.cfg.Now().UTC()
	b, err := json.Marshal(p)
	if err != nil {
		return p, fmt.Errorf("encode provider: %w", err)
	}
	if _, err := g.kv.Put(ctx, providerKey(p.Name), b); err != nil {
		return p, fmt.Errorf("store provider %s: %w", p.Name, err)
	}
	g.invalidate()
	return p, nil
}

// DeleteProvider removes a provider (not-found when absent).
func (g *Gateway) DeleteProvider(ctx context.Context, name string) error {
	if _, err := g.kv.Get(ctx, providerKey(name)); errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.KindNotFound, "model provider %q not found; see agentcloud models list", name)
	} else if err != nil {
		return err
	}
	if err := g.kv.Delete(ctx, providerKey(name)); err != nil {
		return fmt.Errorf("delete provider %s: %w", name, err)
	}
	g.invalidate()
	return nil
}

func (g *Gateway) invalidate() {
	g.pmu.Lock()
	g.provsSet = false
	g.pmu.Unlock()
}

// ListProviders lists the providers as stored now, bypassing the node's
// short-lived copy (the API shows what other nodes wrote, too).
func (g *Gateway) ListProviders(ctx context.Context) ([]api.ModelProvider, error) {
	g.invalidate()
	return g.Providers(ctx)
}

// Providers lists the providers sorted by priority, then name.
func (g *Gateway) Providers(ctx context.Context) ([]api.ModelProvider, error) {
	now := g.cfg.Now()
	g.pmu.Lock()
	if g.provsSet && now.Sub(g.provsAt) < g.cfg.ProviderTTL {
		ps := g.provs
		g.pmu.Unlock()
		return ps, nil
	}
	g.pmu.Unlock()
	keys, err := g.kv.Keys(ctx, "provider")
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", err)
	}
	ps := make([]api.ModelProvider, 0, len(keys))
	for _, k := range keys {
		e, err := g.kv.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read provider: %w", err)
		}
		var p api.ModelProvider
		if err := json.Unmarshal(e.Value, &p); err != nil {
			g.cfg.Logger.Warn("skip unreadable model provider", "key", k, "err", err)
			continue
		}
		ps = append(ps, p)
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Priority != ps[j].Priority {
			return ps[i].Priority < ps[j].Priority
		}
		return ps[i].Name < ps[j].Name
	})
	g.pmu.Lock()
	g.provs, g.provsAt, g.provsSet = ps, now, true
	g.pmu.Unlock()
	return ps, nil
}

// route is one provider able to serve a requested model.
type route struct {
	provider api.ModelProvider
	upstream string // the model name sent upstream
	price    *api.ModelPrice
	timeout  time.Duration
	host     string
	dest     string // exact host:port pattern
}

// resolve lists the routes for model in fallback order: "provider:model"
// pins one provider (when a provider has that name; model names such as
// "llama3:8b" may hold a colon too); otherwise every provider listing
// model (as a name or an alias), by priority.
func (g *Gateway) resolve(ctx context.Context, model string) ([]route, error) {
	ps, err := g.Providers(ctx)
	if err != nil {
		return nil, err
	}
	pin, rest, pinned := strings.Cut(model, ":")
	pinned = pinned && slices.ContainsFunc(ps, func(p api.ModelProvider) bool { return p.Name == pin })
	var out []route
	for _, p := range ps {
		name := model
		if pinned {
			if p.Name != pin {
				continue
			}
			name = rest
		}
		for _, m := range p.Models {
			pub, up, _ := strings.Cut(m, "=")
			if up == "" {
				up = pub
			}
			if pub != name && !(pinned && up == name) {
				continue
			}
			r := route{provider: p, upstream: up, timeout: DefaultTimeout}
			if d, err := time.ParseDuration(p.Timeout); err == nil && d > 0 {
				r.timeout = d
			}
			if pr, ok := p.Prices[pub]; ok {
				r.price = &pr
			} else if pr, ok := p.Prices[up]; ok {
				r.price = &pr
			}
			if u, err := url.Parse(p.BaseURL); err == nil {
				r.host = strings.ToLower(u.Hostname())
				r.dest, _ = hostpattern.ForURL(u)
			}
			out = append(out, r)
			break
		}
	}
	if len(out) == 0 {
		return nil, api.FieldErrorf(api.KindNotFound, "model", "model %q is not served by any configured provider; see agentcloud models list", model)
	}
	return out, nil
}

// cost is the price of a call in USD.
func (r route) cost(prompt, completion int64) float64 {
	if r.price == nil {
		return 0
	}
	return (float64(prompt)*r.price.Input + float64(completion)*r.price.Output) / 1e6
}

// keyLocks serialises read-modify-write of one KV key on this node, so
// compare-and-set conflicts happen only between nodes. Keys share a fixed
// set of stripes, so the locks do not grow with the number of sessions.
type keyLocks struct{ stripes [256]sync.Mutex }

func (l *keyLocks) lock(key string) func() {
	h := fnv.New32a()
	h.Write([]byte(key))
	mu := &l.stripes[h.Sum32()%uint32(len(l.stripes))]
	mu.Lock()
	return mu.Unlock
}

// known is the last value and revision this node wrote or read for a key,
// so an update can go straight to compare-and-set (one round trip); a
// conflict means another node wrote, and the key is read again.
type known struct {
	rev uint64
	val []byte
}

// update applies fn to the JSON value at key under compare-and-set,
// retrying on conflicts. A missing key is passed as nil; an error from fn
// (such as errSkip) writes nothing.
func (g *Gateway) update(ctx context.Context, key string, fn func(old []byte) ([]byte, error)) error {
	defer g.locks.lock(key)()
	for range 100 {
		var cur known
		if v, ok := g.known.Get(key); ok {
			cur = v
		} else {
			e, err := g.kv.Get(ctx, key)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return err
			default:
				cur = known{rev: e.Revision, val: e.Value}
			}
		}
		nv, err := fn(cur.val)
		if err != nil {
			return err
		}
		var rev uint64
		if cur.rev == 0 {
			rev, err = g.kv.Create(ctx, key, nv)
		} else {
			rev, err = g.kv.Update(ctx, key, nv, cur.rev)
		}
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
			g.known.Remove(key)
			continue
		}
		if err != nil {
			g.known.Remove(key)
			return err
		}
		g.known.Add(key, known{rev: rev, val: nv})
		return nil
	}
	return fmt.Errorf("update %s: too many concurrent writers", key)
}

var errSkip = errors.New("skip")
