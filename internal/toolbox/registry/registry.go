// Package registry is the toolbox's registry of upstream tools: MCP servers
// (over Streamable HTTP, through the official go-sdk client) and OpenAPI
// operations, each registered under a name so its tools appear in the
// toolbox as "<registry name>.<tool name>". At registration every tool's
// definition (name, description, input schema) is pinned by the SHA-256 of
// its canonical JSON; at every refresh the upstream's definitions are
// compared with the pins, and a changed or new tool is quarantined (listed,
// not callable) until an administrator approves it. Definitions carrying
// hidden characters (zero-width, bidi controls, tag characters) are refused.
// Upstream credentials are named secrets the platform injects into the
// outbound request; the registry itself only ever holds a placeholder.
// Entries persist in the store's KV, so every node sees the same registry.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"golang.org/x/time/rate"
)

// Bucket is the KV bucket entries live in.
const Bucket = "tool_registry"

// Kinds of upstream.
const (
	KindMCP     = "mcp"
	KindOpenAPI = "openapi"
)

// Credential says which secret authenticates calls to an upstream and how
// it goes into the request: in Header, with Format's "{}" replaced by the
// secret (default "Authorization: Bearer {}"), or, when Query is set, as
// that query parameter.
type Credential struct {
	Secret string `json:"secret"`
	Header string `json:"header,omitempty"`
	Format string `json:"format,omitempty"`
	Query  string `json:"query,omitempty"`
}

// Placeholder is the value the registry sends: the platform's egress path
// replaces {{secret:NAME}} with the secret just before the request leaves,
// so the value never passes through the registry.
func (c *Credential) Placeholder() string {
	return strings.ReplaceAll(c.Format, "{}", "{{secret:"+c.Secret+"}}")
}

// Apply puts the credential's placeholder into req.
func (c *Credential) Apply(req *http.Request) {
	if c == nil {
		return
	}
	if c.Query != "" {
		q := req.URL.Query()
		q.Set(c.Query, c.Placeholder())
		req.URL.RawQuery = q.Encode()
		return
	}
	req.Header.Set(c.Header, c.Placeholder())
}

// Entry is one registered upstream.
type Entry struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// URL is the MCP endpoint, or where the OpenAPI document was fetched
	// from (empty when it was given inline).
	URL string `json:"url,omitempty"`
	// Document is the OpenAPI document given inline (refreshes re-parse it;
	// a document fetched from URL is fetched again instead).
	Document string `json:"document,omitempty"`
	// BaseURL overrides the OpenAPI document's server.
	BaseURL    string      `json:"baseUrl,omitempty"`
	Credential *Credential `json:"credential,omitempty"`
	// RatePerMinute caps calls to this upstream from each node, across all
	// callers and tools (0: no cap). It protects the upstream and its quota;
	// per-tool and per-agent limits belong to the toolbox.
	RatePerMinute int `json:"ratePerMinute,omitempty"`
	// AllowPrivate lets this upstream's requests reach private and loopback
	// addresses (an administrator's decision at registration).
	AllowPrivate bool     `json:"allowPrivate,omitempty"`
	Tools        []Pinned `json:"tools"`
	// Notes record what refreshes found (tools removed upstream), newest last.
	Notes        []string  `json:"notes,omitempty"`
	RefreshError string    `json:"refreshError,omitempty"`
	CreatedBy    string    `json:"createdBy,omitempty"`
	Created      time.Time `json:"created"`
	Approved     time.Time `json:"approved"`
	Refreshed    time.Time `json:"refreshed"`
}

// Hosts are the destinations requests for this upstream may go to, as
// exact host:port patterns (internal/egress/hostpattern): the MCP endpoint,
// the document's URL, the base URL and every operation's server, each on
// its own port only.
func (e *Entry) Hosts() []string {
	var hosts []string
	add := func(raw string) {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			return
		}
		if p, err := hostpattern.ForURL(u); err == nil && !slices.Contains(hosts, p) {
			hosts = append(hosts, p)
		}
	}
	add(e.URL)
	add(e.BaseURL)
	for _, t := range e.Tools {
		for _, d := range []*Definition{&t.Definition, t.Pending} {
			if d != nil && d.Op != nil {
				add(d.Op.Server)
			}
		}
	}
	sort.Strings(hosts)
	return hosts
}

// Upstream is what the Doer learns about the request it sends.
type Upstream struct {
	Name string
	// Hosts are exact host:port patterns (Entry.Hosts).
	Hosts      []string
	Credential *Credential
	// AllowPrivate is the entry's grant to reach private addresses.
	AllowPrivate bool
}

// Doer sends one outbound request for an upstream. The daemon's sends it
// through the egress proxy under the registry's identity, limited to
// up.Hosts, and fills in the credential placeholder.
type Doer func(ctx context.Context, up Upstream, req *http.Request) (*http.Response, error)

// Config configures a Registry.
type Config struct {
	KV store.KV
	// Doer sends upstream requests (default: http.DefaultClient, which
	// substitutes nothing; only for tests without credentials).
	Doer Doer
	// TTL is how long listed definitions are trusted before the next list
	// or call refreshes them from the upstream (default 30s).
	TTL time.Duration
	// MaxResultBytes bounds an OpenAPI response body (default 1 MiB).
	MaxResultBytes int64
	Logger         *slog.Logger
	Now            func() time.Time
}

// Registry holds the registered upstreams.
type Registry struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex // protects state
	state map[string]*upstream
}

// upstream is the node-local state of one entry.
type upstream struct {
	refresh sync.Mutex // one refresh at a time

	mu      sync.Mutex // protects the fields below
	entry   Entry
	rev     uint64
	checked time.Time
	conn    *mcpConn
	limiter *rate.Limiter // nil: no cap
}

// allow takes one call from the upstream's rate budget.
func (u *upstream) allow() error {
	u.mu.Lock()
	per := u.entry.RatePerMinute
	if per <= 0 {
		u.limiter = nil
		u.mu.Unlock()
		return nil
	}
	if u.limiter == nil || u.limiter.Burst() != per {
		u.limiter = rate.NewLimiter(rate.Limit(float64(per)/60), per)
	}
	l, name := u.limiter, u.entry.Name
	u.mu.Unlock()
	if !l.Allow() {
		return api.Errorf(api.KindRateLimited, "upstream %s allows %d calls a minute; retry later", name, per)
	}
	return nil
}

// New returns a Registry over cfg.KV.
func New(cfg Config) (*Registry, error) {
	if cfg.KV == nil {
		return nil, errors.New("registry: no KV")
	}
	if cfg.Doer == nil {
		cfg.Doer = func(_ context.Context, _ Upstream, req *http.Request) (*http.Response, error) {
			return http.DefaultClient.Do(req)
		}
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.MaxResultBytes <= 0 {
		cfg.MaxResultBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Registry{cfg: cfg, log: cfg.Logger, state: map[string]*upstream{}}, nil
}

// AddRequest registers an upstream: exactly one of MCPURL, OpenAPIURL and
// OpenAPIDocument.
type AddRequest struct {
	Name            string
	MCPURL          string
	OpenAPIURL      string
	OpenAPIDocument string
	BaseURL         string
	Credential      *Credential
	RatePerMinute   int
	// AllowPrivate lets the upstream be on a private or loopback address.
	AllowPrivate bool
	By           string // who registers it
}

var (
	nameRE       = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	secretNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	queryNameRE  = regexp.MustCompile(`^[A-Za-z0-9_.~-]{1,64}$`)
	headerNameRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

// ValidName checks a registry name: lowercase letters, digits, '_' and
// '-', starting with a letter, at most 63 (no '.': it separates the
// registry name from the tool name).
func ValidName(n string) error {
	if !nameRE.MatchString(n) {
		return api.FieldErrorf(api.KindValidation, "name", "registry name %q: want 1-63 of a-z, 0-9, '_', '-', starting with a letter", n)
	}
	if n == toolbox.BuiltinProvider {
		return api.FieldErrorf(api.KindValidation, "name", "registry name %q is reserved for the built-in tools; choose another", n)
	}
	return nil
}

func (r *Registry) checkCredential(c *Credential) error {
	if c == nil {
		return nil
	}
	if c.Secret == "" {
		return api.FieldErrorf(api.KindValidation, "credential.secret", "credential needs the name of a secret (agentcloud secret set NAME first)")
	}
	if !secretNameRE.MatchString(c.Secret) {
		return api.FieldErrorf(api.KindValidation, "credential.secret", "secret name %q: want 1-128 of A-Z a-z 0-9 _ . -", c.Secret)
	}
	if c.Query != "" {
		if c.Header != "" {
			return api.FieldErrorf(api.KindValidation, "credential.query", "give either a header or a query parameter for the secret, not both")
		}
		if !queryNameRE.MatchString(c.Query) {
			return api.FieldErrorf(api.KindValidation, "credential.query", "query parameter name %q: want 1-64 of A-Z a-z 0-9 _ . ~ -", c.Query)
		}
		if c.Format == "" {
			c.Format = "{}"
		}
	}
	if c.Header == "" && c.Query == "" {
		c.Header = "Authorization"
	}
	if c.Format == "" {
		c.Format = "Bearer {}"
	}
	if c.Query == "" && !headerNameRE.MatchString(c.Header) {
		return api.FieldErrorf(api.KindValidation, "credential.header", "header name %q is not a valid HTTP header name", c.Header)
	}
	if strings.Count(c.Format, "{}") != 1 || strings.ContainsAny(c.Format, "\r\n\x00") || strings.Contains(c.Format, "{{") {
		return api.FieldErrorf(api.KindValidation, "credential.format", `format %q must contain "{}" exactly once (where the secret goes), e.g. "Bearer {}"`, c.Format)
	}
	return nil
}

// Add registers an upstream: it connects, lists the tools, refuses
// definitions with hidden characters and pins the rest.
func (r *Registry) Add(ctx context.Context, in AddRequest) (Entry, error) {
	if err := ValidName(in.Name); err != nil {
		return Entry{}, err
	}
	n := 0
	for _, s := range []string{in.MCPURL, in.OpenAPIURL, in.OpenAPIDocument} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return Entry{}, api.FieldErrorf(api.KindValidation, "mcp_url", "give exactly one of mcp_url, openapi_url and openapi_document")
	}
	if err := r.checkCredential(in.Credential); err != nil {
		return Entry{}, err
	}
	now := r.cfg.Now().UTC()
	if in.RatePerMinute < 0 || in.RatePerMinute > 1_000_000 {
		return Entry{}, api.FieldErrorf(api.KindValidation, "rate_per_minute", "rate_per_minute %d: want 0 (no cap) to 1000000", in.RatePerMinute)
	}
	e := Entry{Name: in.Name, Credential: in.Credential, BaseURL: in.BaseURL, RatePerMinute: in.RatePerMinute,
		AllowPrivate: in.AllowPrivate, CreatedBy: in.By, Created: now, Approved: now, Refreshed: now}
	switch {
	case in.MCPURL != "":
		e.Kind, e.URL = KindMCP, in.MCPURL
		if err := checkURL("mcp_url", in.MCPURL); err != nil {
			return Entry{}, err
		}
	case in.OpenAPIURL != "":
		e.Kind, e.URL = KindOpenAPI, in.OpenAPIURL
		if err := checkURL("openapi_url", in.OpenAPIURL); err != nil {
			return Entry{}, err
		}
	default:
		e.Kind, e.Document = KindOpenAPI, in.OpenAPIDocument
	}
	if in.BaseURL != "" {
		if err := checkURL("base_url", in.BaseURL); err != nil {
			return Entry{}, err
		}
	}
	if _, err := r.cfg.KV.Get(ctx, store.Key(in.Name)); err == nil {
		return Entry{}, api.FieldErrorf(api.KindConflict, "name", "an upstream named %q is already registered; remove it first", in.Name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return Entry{}, err
	}
	u := &upstream{entry: e}
	defs, err := r.fetch(ctx, u)
	if err != nil {
		u.close()
		return Entry{}, err
	}
	pins, err := pinAll(defs)
	if err != nil {
		u.close()
		return Entry{}, api.FieldErrorf(api.KindValidation, "tools", "registration refused: %v", err)
	}
	e.Tools = pins
	u.entry = e
	b, err := marshalEntry(e)
	if err != nil {
		u.close()
		return Entry{}, err
	}
	rev, err := r.cfg.KV.Create(ctx, store.Key(e.Name), b)
	if err != nil {
		u.close()
		if errors.Is(err, store.ErrExists) {
			return Entry{}, api.FieldErrorf(api.KindConflict, "name", "an upstream named %q is already registered; remove it first", in.Name)
		}
		return Entry{}, fmt.Errorf("save upstream %s: %w", e.Name, err)
	}
	u.rev, u.checked = rev, r.cfg.Now()
	r.mu.Lock()
	if old := r.state[e.Name]; old != nil {
		old.close()
	}
	r.state[e.Name] = u
	r.mu.Unlock()
	r.log.Info("tool upstream registered", "name", e.Name, "kind", e.Kind, "tools", len(e.Tools), "by", in.By)
	return e, nil
}

// MaxEntryBytes bounds a stored entry (one KV value, under the store's
// message size limit): an inline document plus every pinned definition.
const MaxEntryBytes = 960 << 10

func marshalEntry(e Entry) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEntryBytes {
		hint := "register fewer tools"
		if e.Document != "" {
			hint = "serve the document from a URL (openapi_url) instead of sending it inline, or trim it"
		}
		return nil, api.Errorf(api.KindTooLarge, "upstream %s: its registry entry would be %d bytes, over the %d-byte limit; %s",
			e.Name, len(b), MaxEntryBytes, hint)
	}
	return b, nil
}

func checkURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return api.FieldErrorf(api.KindValidation, field, "%q is not an http(s) URL", raw)
	}
	if u.User != nil {
		return api.FieldErrorf(api.KindValidation, field, "%q carries user info; use a credential (a secret) instead", raw)
	}
	if _, err := hostpattern.ForURL(u); err != nil {
		return api.FieldErrorf(api.KindValidation, field, "%q: the host cannot be an egress destination: %v", raw, err)
	}
	return nil
}

// fetch lists what the upstream serves now.
func (r *Registry) fetch(ctx context.Context, u *upstream) ([]Definition, error) {
	u.mu.Lock()
	e := u.entry
	u.mu.Unlock()
	switch e.Kind {
	case KindMCP:
		return r.mcpList(ctx, u)
	case KindOpenAPI:
		data, docURL, field := []byte(e.Document), "", "openapi_document"
		if e.URL != "" {
			b, err := r.fetchDocument(ctx, &e)
			if err != nil {
				return nil, err
			}
			data, docURL, field = b, e.URL, "openapi_url"
		}
		defs, err := ParseOpenAPI(ctx, docSource(&e), data, docURL, e.BaseURL)
		if err != nil {
			return nil, documentProblem(field, err)
		}
		return defs, nil
	}
	return nil, fmt.Errorf("upstream %s: unknown kind %q", e.Name, e.Kind)
}

func docSource(e *Entry) string {
	if e.URL != "" {
		return e.URL
	}
	return "openapi_document"
}

// fetchDocument GETs an OpenAPI document through the Doer.
func (r *Registry) fetchDocument(ctx context.Context, e *Entry) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL, nil)
	if err != nil {
		return nil, api.FieldErrorf(api.KindValidation, "openapi_url", "%q: %v", e.URL, err)
	}
	req.Header.Set("Accept", "application/json, application/yaml, text/yaml, */*")
	resp, err := r.cfg.Doer(ctx, r.upstreamOf(e), req)
	if p, ok := forbidden(err); ok {
		return nil, api.Errorf(api.KindForbidden, "fetching the OpenAPI document at %s refused: %s", e.URL, p.Detail)
	}
	if err != nil {
		return nil, api.FieldErrorf(api.KindBadRequest, "openapi_url", "could not fetch the OpenAPI document at %s: %v", e.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, api.FieldErrorf(api.KindBadRequest, "openapi_url", "fetching the OpenAPI document at %s: upstream answered %s", e.URL, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxDocumentBytes+1))
	if err != nil {
		return nil, api.FieldErrorf(api.KindBadRequest, "openapi_url", "reading the OpenAPI document at %s: %v", e.URL, err)
	}
	return b, nil
}

func (r *Registry) upstreamOf(e *Entry) Upstream {
	return Upstream{Name: e.Name, Hosts: e.Hosts(), Credential: e.Credential, AllowPrivate: e.AllowPrivate}
}
