package modelgw_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/modelgw"
	"github.com/agentcloud/agentcloud/internal/modelgw/modelgwhttp"
	"github.com/agentcloud/agentcloud/internal/modelgw/openaitest"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// env is a gateway on a real store, with a real secrets manager filling in
// the API key on the way out, served by a real router on loopback.
type env struct {
	t       testing.TB
	gw      *modelgw.Gateway
	sec     *secrets.Manager
	srv     *httptest.Server
	hc      *http.Client
	reg     *prometheus.Registry // the gateway's metrics
	mu      sync.Mutex           // protects secretsSeen
	secrets []string             // secret names the Doer was asked for
}

// testAuth authenticates everyone as an admin; X-Agent and X-Session say
// who the call is for.
type testAuth struct{}

func (testAuth) Authenticate(*http.Request) (httpapi.Principal, error) {
	return httpapi.Principal{ID: "spiffe://test/admin/admin", Kind: "admin"}, nil
}

func newEnv(t testing.TB, mod func(*modelgw.Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	kv, err := st.KV(ctx, "models", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, secrets.KeySize)
	sec, err := secrets.NewManager(key, secrets.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sec: sec}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	e.reg = prometheus.NewRegistry()
	cfg := modelgw.Config{KV: kv, Metrics: e.reg, BackoffBase: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, RetryAfterMax: 3 * time.Second,
		Do: func(ctx context.Context, out modelgw.Outbound, req *http.Request) (*http.Response, error) {
			e.mu.Lock()
			e.secrets = append(e.secrets, out.Secret)
			e.mu.Unlock()
			dest, err := secrets.DestinationOf(req.URL)
			if err != nil {
				return nil, err
			}
			if _, err := sec.Substitute(ctx, dest, req.Header); err != nil {
				return nil, err
			}
			return tr.RoundTrip(req)
		}}
	if mod != nil {
		mod(&cfg)
	}
	e.gw, err = modelgw.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.Options{Auth: testAuth{}, Metrics: httpapi.NewMetrics(prometheus.NewRegistry()), MaxBodyBytes: 64 << 10})
	modelgwhttp.New(modelgwhttp.Config{Gateway: e.gw, Caller: func(r *http.Request) (modelgw.Caller, error) {
		return modelgw.Caller{Principal: "spiffe://test/admin/admin", Agent: r.Header.Get("X-Agent"), Session: r.Header.Get("X-Session"), User: "admin"}, nil
	}}).Routes(rt)
	e.srv = httptest.NewServer(rt)
	t.Cleanup(e.srv.Close)
	e.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(e.hc.CloseIdleConnections)
	return e
}

// counter is the value of the counter name with exactly labels (0 when
// it was never counted).
func (e *env) counter(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// provider registers a fake provider with its own API key secret.
func (e *env) provider(srv *openaitest.Server, prio int, timeout string, models ...string) {
	e.t.Helper()
	ctx := context.Background()
	name := srv.Name
	if err := e.sec.Set(ctx, loopbackSecret("KEY_"+name, srv.BaseURL()), []byte("key-"+name)); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.gw.PutProvider(ctx, api.ModelProvider{Name: name, BaseURL: srv.BaseURL(), Secret: "KEY_" + name,
		Models: models, Priority: prio, Timeout: timeout}); err != nil {
		e.t.Fatal(err)
	}
}

// loopbackSecret allows a secret to the fake provider at base: plain http
// to 127.0.0.1 on its port.
func loopbackSecret(name, base string) secrets.Secret {
	u, _ := url.Parse(base)
	return secrets.Secret{Name: name, AllowHosts: []string{"127.0.0.1:" + u.Port()}, AllowHTTP: true}
}

// post sends a request through the HTTP API.
func (e *env) post(path, body string, hdr map[string]string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func problemOf(t testing.TB, resp *http.Response) api.Problem {
	t.Helper()
	body := readAll(t, resp)
	if ct := resp.Header.Get("Content-Type"); ct != api.ProblemContentType {
		t.Fatalf("status %d content type %q, want problem+json: %s", resp.StatusCode, ct, body)
	}
	var p api.Problem
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

const chatBody = `{"model":"default","messages":[{"role":"user","content":"hi"}]}`

func content(t testing.TB, body []byte) string {
	t.Helper()
	var v api.ChatCompletion
	if err := json.Unmarshal(body, &v); err != nil || len(v.Choices) == 0 {
		t.Fatalf("not a chat completion: %v %s", err, body)
	}
	s, _ := v.Choices[0].Message.Content.(string)
	return s
}

func TestFallbackOrderAndKeyInjection(t *testing.T) {
	e := newEnv(t, nil)
	a, b, c := openaitest.New(t, "a"), openaitest.New(t, "b"), openaitest.New(t, "c")
	e.provider(c, 3, "", "default=model-c")
	e.provider(a, 1, "", "default=gpt-x")
	e.provider(b, 2, "", "default=model-y")
	a.Fail(openaitest.Failure{Status: 500}, openaitest.Failure{Status: 502}, openaitest.Failure{Status: 503})
	resp := e.post("/v1/chat/completions", chatBody, nil)
	body := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("X-Agentcloud-Provider") != "b" || content(t, []byte(body)) != "hello from b" {
		t.Fatalf("status %d provider %q: %s", resp.StatusCode, resp.Header.Get("X-Agentcloud-Provider"), body)
	}
	if n := len(a.Requests()); n != 3 {
		t.Fatalf("provider a saw %d requests, want 3 (1 + 2 retries)", n)
	}
	br := b.Requests()
	if len(br) != 1 || br[0].Authorization != "Bearer key-b" || br[0].Body["model"] != "model-y" {
		t.Fatalf("provider b got %+v", br)
	}
	if len(c.Requests()) != 0 {
		t.Fatal("provider c was called although b answered")
	}
	for _, m := range []struct {
		provider, result string
		want             float64
	}{{"a", "500", 1}, {"a", "503", 1}, {"b", "ok", 1}, {"c", "ok", 0}} {
		if got := e.counter(t, "agentcloud_model_provider_attempts_total", map[string]string{"provider": m.provider, "result": m.result}); got != m.want {
			t.Errorf("attempts{%s,%s} = %v, want %v", m.provider, m.result, got, m.want)
		}
	}
	// A model name may hold a colon without naming a provider.
	e.provider(openaitest.New(t, "d"), 4, "", "llama3:8b")
	resp = e.post("/v1/chat/completions", `{"model":"llama3:8b","messages":[{"role":"user","content":"x"}]}`, nil)
	if body := readAll(t, resp); resp.StatusCode != 200 || content(t, []byte(body)) != "hello from d" {
		t.Fatalf("colon model: %d %s", resp.StatusCode, body)
	}
	// "provider:model" pins one provider.
	resp = e.post("/v1/chat/completions", `{"model":"c:model-c","messages":[{"role":"user","content":"x"}]}`, nil)
	if body := readAll(t, resp); resp.StatusCode != 200 || content(t, []byte(body)) != "hello from c" {
		t.Fatalf("pinned: %d %s", resp.StatusCode, body)
	}
	// Every provider down: 503 naming each failure.
	for _, s := range []*openaitest.Server{a, b, c} {
		s.Fail(openaitest.Failure{Status: 500}, openaitest.Failure{Status: 500}, openaitest.Failure{Status: 500})
	}
	p := problemOf(t, e.post("/v1/chat/completions", chatBody, nil))
	if p.Status != 503 || !strings.Contains(p.Detail, "a: HTTP 500") || !strings.Contains(p.Detail, "c: HTTP 500") {
		t.Fatalf("all down: %+v", p)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, nil)
	a, b := openaitest.New(t, "a"), openaitest.New(t, "b")
	e.provider(a, 1, "", "default")
	e.provider(b, 2, "", "default")
	for i := range 2 {
		ra := "1"
		if i == 1 {
			ra = time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
		}
		before := len(a.Requests())
		a.Fail(openaitest.Failure{Status: 429, RetryAfter: ra})
		res, err := e.gw.Chat(context.Background(), modelgw.Caller{User: "u"}, []byte(chatBody))
		if err != nil || res.Provider != "a" {
			t.Fatalf("Retry-After %q: %+v %v", ra, res, err)
		}
		reqs := a.Requests()[before:]
		if len(reqs) != 2 {
			t.Fatalf("Retry-After %q: %d requests to a", ra, len(reqs))
		}
		// The retry came no earlier than the provider asked (HTTP dates
		// have one-second resolution).
		if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
			t.Fatalf("Retry-After %q: retried after %v", ra, gap)
		}
	}
	// A Retry-After beyond RetryAfterMax moves on to the next provider at once.
	before := len(a.Requests())
	a.Fail(openaitest.Failure{Status: 429, RetryAfter: "3600"})
	res, err := e.gw.Chat(context.Background(), modelgw.Caller{User: "u"}, []byte(chatBody))
	if err != nil || res.Provider != "b" || len(a.Requests())-before != 1 {
		t.Fatalf("long Retry-After: %+v %v, a saw %d", res, err, len(a.Requests())-before)
	}
}

func TestTimeoutFallsBack(t *testing.T) {
	e := newEnv(t, func(c *modelgw.Config) { c.Retries = -1 })
	slow, fast := openaitest.New(t, "slow"), openaitest.New(t, "fast")
	e.provider(slow, 1, "100ms", "default")
	e.provider(fast, 2, "", "default")
	slow.Fail(openaitest.Failure{Delay: 5 * time.Second})
	res, err := e.gw.Chat(context.Background(), modelgw.Caller{User: "u"}, []byte(chatBody))
	if err != nil || res.Provider != "fast" {
		t.Fatalf("%+v %v", res, err)
	}
	// Only timeouts: 504.
	slow.Fail(openaitest.Failure{Delay: 5 * time.Second})
	if err := e.gw.DeleteProvider(context.Background(), "fast"); err != nil {
		t.Fatal(err)
	}
	_, err = e.gw.Chat(context.Background(), modelgw.Caller{User: "u"}, []byte(chatBody))
	if !api.IsKind(err, api.KindTimeout) || !strings.Contains(err.Error(), "within 100ms") {
		t.Fatalf("want timeout, got %v", err)
	}
}

func TestCallerErrorNotRetried(t *testing.T) {
	e := newEnv(t, nil)
	a, b := openaitest.New(t, "a"), openaitest.New(t, "b")
	e.provider(a, 1, "", "default")
	e.provider(b, 2, "", "default")
	a.Fail(openaitest.Failure{Status: 400, Message: "max_tokens is too large"})
	p := problemOf(t, e.post("/v1/chat/completions", chatBody, nil))
	if p.Status != 400 || p.Kind() != api.KindBadRequest || !strings.Contains(p.Detail, "max_tokens is too large") {
		t.Fatalf("%+v", p)
	}
	if len(a.Requests()) != 1 || len(b.Requests()) != 0 {
		t.Fatalf("a saw %d, b saw %d; want 1 and 0", len(a.Requests()), len(b.Requests()))
	}
	// 401 is the platform's key: next provider.
	a.Fail(openaitest.Failure{Status: 401})
	res, err := e.gw.Chat(context.Background(), modelgw.Caller{User: "u"}, []byte(chatBody))
	if err != nil || res.Provider != "b" {
		t.Fatalf("401: %+v %v", res, err)
	}
}

func TestCacheTemperatureZero(t *testing.T) {
	e := newEnv(t, nil)
	a := openaitest.New(t, "a")
	e.provider(a, 1, "", "default")
	req := `{"model":"default","temperature":0,"messages":[{"role":"user","content":"same"}]}`
	same := `{"messages":[{"content":"same","role":"user"}],"temperature":0.0,"model":"default"}`
	r1 := e.post("/v1/chat/completions", req, nil)
	b1 := readAll(t, r1)
	r2 := e.post("/v1/chat/completions", same, nil)
	b2 := readAll(t, r2)
	if r1.Header.Get("X-Agentcloud-Cache") != "miss" || r2.Header.Get("X-Agentcloud-Cache") != "hit" || b1 != b2 {
		t.Fatalf("cache headers %q %q", r1.Header.Get("X-Agentcloud-Cache"), r2.Header.Get("X-Agentcloud-Cache"))
	}
	if n := len(a.Requests()); n != 1 {
		t.Fatalf("provider saw %d requests, want 1", n)
	}
	// Sampling on, or a different prompt: not from the cache.
	for _, body := range []string{
		`{"model":"default","temperature":0.7,"messages":[{"role":"user","content":"same"}]}`,
		`{"model":"default","messages":[{"role":"user","content":"same"}]}`,
		`{"model":"default","temperature":0,"messages":[{"role":"user","content":"other"}]}`,
	} {
		if r := e.post("/v1/chat/completions", body, nil); r.Header.Get("X-Agentcloud-Cache") != "miss" {
			t.Fatalf("%s: cache %q", body, r.Header.Get("X-Agentcloud-Cache"))
		} else {
			readAll(t, r)
		}
	}
	if n := len(a.Requests()); n != 4 {
		t.Fatalf("provider saw %d requests, want 4", n)
	}
	// Another tenant's identical request is not answered from this cache.
	if res, err := e.gw.Chat(context.Background(), modelgw.Caller{User: "user:other"}, []byte(req)); err != nil || res.CacheHit {
		t.Fatalf("other tenant: %+v %v", res, err)
	}
	rep, err := e.gw.Usage(context.Background(), modelgw.UsageFilter{User: "admin"})
	if err != nil || rep.Total.Requests != 5 || rep.Total.CacheHits != 1 {
		t.Fatalf("usage %+v %v", rep, err)
	}
}

func TestUsageAndCost(t *testing.T) {
	e := newEnv(t, nil)
	a := openaitest.New(t, "a")
	a.SetReply("ok", 1000, 500)
	ctx := context.Background()
	if err := e.sec.Set(ctx, loopbackSecret("K", a.BaseURL()), []byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gw.PutProvider(ctx, api.ModelProvider{Name: "a", BaseURL: a.BaseURL(), Secret: "K",
		Models: []string{"default=gpt-x", "emb"}, Prices: map[string]api.ModelPrice{"gpt-x": {Input: 2, Output: 8}}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"s1", "s1", "s2"} {
		if _, err := e.gw.Chat(ctx, modelgw.Caller{Agent: "bot", Session: s}, []byte(chatBody)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.gw.Embed(ctx, modelgw.Caller{Agent: "bot", Session: "s2"}, []byte(`{"model":"emb","input":["a","b"]}`)); err != nil {
		t.Fatal(err)
	}
	rep, err := e.gw.Usage(ctx, modelgw.UsageFilter{Agent: "bot", Session: "s1"})
	if err != nil || len(rep.Records) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	u := rep.Records[0]
	want := 2 * (1000*2.0 + 500*8.0) / 1e6
	if u.Requests != 2 || u.PromptTokens != 2000 || u.CompletionTokens != 1000 || fmt.Sprintf("%.6f", u.CostUSD) != fmt.Sprintf("%.6f", want) || u.ByProvider["a"].Requests != 2 {
		t.Fatalf("session usage %+v, want cost %v", u, want)
	}
	rep, err = e.gw.Usage(ctx, modelgw.UsageFilter{Agent: "bot"})
	if err != nil || len(rep.Records) != 2 || rep.Total.Requests != 4 || rep.Total.PromptTokens != 4000 || rep.Total.CompletionTokens != 1500 {
		t.Fatalf("agent usage %+v %v", rep, err)
	}
}

// TestBudgetUnderConcurrency fires many requests at once at small agent and
// session budgets: refusals are budget-exceeded problems, and the tokens
// the provider reports for the calls that went through never add up to
// more than either budget.
func TestBudgetUnderConcurrency(t *testing.T) {
	e := newEnv(t, nil)
	a := openaitest.New(t, "a")
	e.provider(a, 1, "", "default")
	ctx := context.Background()
	body := `{"model":"default","max_tokens":40,"messages":[{"role":"user","content":"count to ten"}]}`
	a.SetReply("1 2 3", int64(len(body))-10, 100) // near the prompt bound; completion capped at 40
	const agentBudget, sessionBudget = 2000, 900
	if _, err := e.gw.SetBudget(ctx, api.ModelBudgetRequest{Agent: "bot", Tokens: agentBudget}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gw.SetBudget(ctx, api.ModelBudgetRequest{Agent: "bot", Session: "s1", Tokens: sessionBudget}); err != nil {
		t.Fatal(err)
	}
	const n = 60
	var wg sync.WaitGroup
	var mu sync.Mutex
	spent := map[string]int64{}
	var ok, refused int
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess := []string{"s1", "s2", "s3"}[i%3]
			res, err := e.gw.Chat(ctx, modelgw.Caller{Agent: "bot", Session: sess}, []byte(body))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if !api.IsKind(err, api.KindBudgetExceeded) {
					t.Errorf("want budget-exceeded, got %v", err)
				}
				refused++
				return
			}
			ok++
			var v struct{ Usage api.TokenUsage }
			if err := json.Unmarshal(res.Body, &v); err != nil {
				t.Errorf("answer %s: %v", res.Body, err)
				return
			}
			u := v.Usage
			spent[sess] += u.TotalTokens
			spent[""] += u.TotalTokens
		}()
	}
	wg.Wait()
	if ok == 0 || refused == 0 {
		t.Fatalf("ok %d refused %d: the budget should admit some and refuse others", ok, refused)
	}
	if spent[""] > agentBudget || spent["s1"] > sessionBudget {
		t.Fatalf("overspent: agent %d of %d, session s1 %d of %d", spent[""], agentBudget, spent["s1"], sessionBudget)
	}
	bs, err := e.gw.Budgets(ctx, "bot")
	if err != nil || len(bs) != 2 {
		t.Fatalf("%+v %v", bs, err)
	}
	for _, b := range bs {
		want := spent[b.Session]
		if b.Reserved != 0 || b.Used != want || b.Used > b.Tokens {
			t.Fatalf("budget %+v: want used %d, nothing reserved", b, want)
		}
	}
	// Every successful call sent max_tokens (the bound of its reservation).
	for _, r := range a.Requests() {
		if r.Body["max_tokens"] != float64(40) {
			t.Fatalf("upstream max_tokens %v", r.Body["max_tokens"])
		}
	}
	// Without max_tokens the default bound is sent when a budget applies.
	if _, err := e.gw.SetBudget(ctx, api.ModelBudgetRequest{Agent: "bot", Tokens: 1 << 20, Reset: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gw.SetBudget(ctx, api.ModelBudgetRequest{Agent: "bot", Session: "s1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gw.Chat(ctx, modelgw.Caller{Agent: "bot", Session: "s1"}, []byte(chatBody)); err != nil {
		t.Fatal(err)
	}
	reqs := a.Requests()
	if got := reqs[len(reqs)-1].Body["max_tokens"]; got != float64(1024) {
		t.Fatalf("default max_tokens %v", got)
	}
}

func TestStreamingPassThrough(t *testing.T) {
	e := newEnv(t, nil)
	a := openaitest.New(t, "a")
	a.SetReply("abcdefghi", 7, 3)
	e.provider(a, 1, "", "default")
	release := a.HoldStream()
	defer release()
	resp := e.post("/v1/chat/completions", `{"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"X-Agent": "bot", "X-Session": "s1"})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || !strings.Contains(first, `"content":"abc"`) {
		t.Fatalf("first event %q %v", first, err)
	}
	// The first chunk arrived while the provider still holds the rest.
	release()
	rest, err := io.ReadAll(br)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	all := first + string(rest)
	if !strings.Contains(all, `"content":"ghi"`) || !strings.Contains(all, `"usage":{"completion_tokens":3,"prompt_tokens":7,"total_tokens":10}`) || !strings.HasSuffix(all, "data: [DONE]\n\n") {
		t.Fatalf("stream: %s", all)
	}
	if opts, _ := a.Requests()[0].Body["stream_options"].(map[string]any); opts["include_usage"] != true {
		t.Fatalf("include_usage not asked for: %v", a.Requests()[0].Body)
	}
	rep, err := e.gw.Usage(context.Background(), modelgw.UsageFilter{Agent: "bot", Session: "s1"})
	if err != nil || rep.Total.PromptTokens != 7 || rep.Total.CompletionTokens != 3 {
		t.Fatalf("usage %+v %v", rep, err)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, nil)
	a := openaitest.New(t, "a")
	e.provider(a, 1, "", "default", "emb")
	cases := []struct {
		name, path, body string
		status           int
		kind             api.Kind
		field            string
	}{
		{"malformed", "/v1/chat/completions", `{"model":`, 400, api.KindInvalidJSON, ""},
		{"not object", "/v1/chat/completions", `[1,2]`, 400, api.KindInvalidJSON, ""},
		{"empty", "/v1/chat/completions", ``, 400, api.KindInvalidJSON, ""},
		{"no model", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 422, api.KindValidation, "model"},
		{"model type", "/v1/chat/completions", `{"model":3,"messages":[]}`, 400, api.KindInvalidJSON, "model"},
		{"unknown model", "/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, api.KindNotFound, "model"},
		{"no messages", "/v1/chat/completions", `{"model":"default"}`, 422, api.KindValidation, "messages"},
		{"empty messages", "/v1/chat/completions", `{"model":"default","messages":[]}`, 422, api.KindValidation, "messages"},
		{"no role", "/v1/chat/completions", `{"model":"default","messages":[{"content":"x"}]}`, 422, api.KindValidation, "messages"},
		{"temperature", "/v1/chat/completions", `{"model":"default","temperature":9,"messages":[{"role":"user","content":"x"}]}`, 422, api.KindValidation, "temperature"},
		{"max_tokens", "/v1/chat/completions", `{"model":"default","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}`, 422, api.KindValidation, "max_tokens"},
		{"stream type", "/v1/chat/completions", `{"model":"default","stream":"yes","messages":[{"role":"user","content":"x"}]}`, 400, api.KindInvalidJSON, "stream"},
		{"too large", "/v1/chat/completions", `{"model":"default","messages":[{"role":"user","content":"` + strings.Repeat("x", 70<<10) + `"}]}`, 413, api.KindTooLarge, ""},
		{"embed no input", "/v1/embeddings", `{"model":"emb"}`, 422, api.KindValidation, "input"},
		{"embed bad input", "/v1/embeddings", `{"model":"emb","input":{"a":1}}`, 400, api.KindInvalidJSON, "input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := problemOf(t, e.post(tc.path, tc.body, nil))
			if p.Status != tc.status || p.Kind() != tc.kind || p.Field != tc.field {
				t.Fatalf("got %d %s field %q (%s), want %d %s field %q", p.Status, p.Kind(), p.Field, p.Detail, tc.status, tc.kind, tc.field)
			}
		})
	}
	if len(a.Requests()) != 0 {
		t.Fatalf("bad input reached the provider %d times", len(a.Requests()))
	}
	// Bad provider configuration names the field.
	for _, p := range []api.ModelProvider{
		{Name: "Bad Name", BaseURL: "http://x", Models: []string{"m"}},
		{Name: "p", BaseURL: "ftp://x", Models: []string{"m"}},
		{Name: "p", BaseURL: "http://u:pw@x", Models: []string{"m"}},
		{Name: "p", BaseURL: "http://x"},
		{Name: "p", BaseURL: "http://x", Models: []string{"a b"}},
		{Name: "p", BaseURL: "http://x", Models: []string{"m"}, Timeout: "soon"},
		{Name: "p", BaseURL: "http://x", Models: []string{"m"}, Prices: map[string]api.ModelPrice{"other": {}}},
	} {
		if _, err := e.gw.PutProvider(context.Background(), p); !api.IsKind(err, api.KindValidation) {
			t.Errorf("%+v: want validation-failed, got %v", p, err)
		}
	}
}

func TestEmbeddings(t *testing.T) {
	e := newEnv(t, nil)
	a := openaitest.New(t, "a")
	e.provider(a, 1, "", "emb=text-embedding-x")
	resp := e.post("/v1/embeddings", `{"model":"emb","input":"hello"}`, nil)
	body := readAll(t, resp)
	var v api.EmbeddingResponse
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &v) != nil || len(v.Data) != 1 || len(v.Data[0].Embedding) != 3 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if r := a.Requests(); len(r) != 1 || r[0].Path != "/v1/embeddings" || r[0].Body["model"] != "text-embedding-x" {
		t.Fatalf("%+v", r)
	}
}

func TestSecretHostEnforced(t *testing.T) {
	e := newEnv(t, func(c *modelgw.Config) { c.Retries = -1 })
	a := openaitest.New(t, "a")
	ctx := context.Background()
	// The key may only go to another host: the call fails without sending it.
	if err := e.sec.Set(ctx, secrets.Secret{Name: "K", AllowHosts: []string{"api.elsewhere.test"}}, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gw.PutProvider(ctx, api.ModelProvider{Name: "a", BaseURL: a.BaseURL(), Secret: "K", Models: []string{"default"}}); err != nil {
		t.Fatal(err)
	}
	_, err := e.gw.Chat(ctx, modelgw.Caller{User: "u"}, []byte(chatBody))
	if !api.IsKind(err, api.KindUnavailable) || !errors.Is(err, err) || len(a.Requests()) != 0 {
		t.Fatalf("want unavailable without reaching the provider, got %v (%d requests)", err, len(a.Requests()))
	}
}

// TestPlatformRefusalIsFinalClass: when the platform itself refuses a
// provider request (the Doer returns an *api.Problem: a policy or egress
// denial), the gateway neither retries nor falls back; the caller gets that
// problem at once, on chat, streamed chat and embeddings alike. A transport
// error still retries and falls back (the control).
func TestPlatformRefusalIsFinalClass(t *testing.T) {
	var mu sync.Mutex
	tries := map[string]int{}
	refuse := map[string]bool{"a": true}
	e := newEnv(t, func(c *modelgw.Config) {
		next := c.Do
		c.Do = func(ctx context.Context, out modelgw.Outbound, req *http.Request) (*http.Response, error) {
			mu.Lock()
			tries[out.Provider]++
			r := refuse[out.Provider]
			mu.Unlock()
			if r {
				return nil, api.Errorf(api.KindForbidden, "egress denied by policy for provider %s", out.Provider)
			}
			return next(ctx, out, req)
		}
	})
	a, b := openaitest.New(t, "a"), openaitest.New(t, "b")
	e.provider(a, 1, "", "default", "emb")
	e.provider(b, 2, "", "default", "emb")
	reset := func() {
		mu.Lock()
		clear(tries)
		mu.Unlock()
	}
	check := func(what string, p api.Problem) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if p.Status != 403 || p.Kind() != api.KindForbidden || !strings.Contains(p.Detail, "denied by policy") {
			t.Errorf("%s: %+v", what, p)
		}
		if tries["a"] != 1 || tries["b"] != 0 {
			t.Errorf("%s: a tried %d times, b %d; want 1 and 0", what, tries["a"], tries["b"])
		}
	}
	check("chat", problemOf(t, e.post("/v1/chat/completions", chatBody, nil)))
	reset()
	check("stream", problemOf(t, e.post("/v1/chat/completions", `{"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)))
	reset()
	check("embeddings", problemOf(t, e.post("/v1/embeddings", `{"model":"emb","input":"x"}`, nil)))
	reset()
	_, err := e.gw.Chat(context.Background(), modelgw.Caller{User: "u"}, []byte(chatBody))
	check("Chat from code", *api.AsProblem(err))
	if len(b.Requests()) != 0 {
		t.Fatalf("b was reached %d times", len(b.Requests()))
	}
	// Control: a plain transport error is retried, then falls back.
	reset()
	mu.Lock()
	refuse["a"] = false
	mu.Unlock()
	a.Server.Close()
	if res, err := e.gw.Chat(context.Background(), modelgw.Caller{User: "u"}, []byte(chatBody)); err != nil || res.Provider != "b" {
		t.Fatalf("transport error: %+v %v", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if tries["a"] != 3 || tries["b"] != 1 {
		t.Fatalf("transport error: a tried %d, b %d; want 3 and 1", tries["a"], tries["b"])
	}
}

// TestProviderPolicyClass: AuthorizeProvider skips a refused provider
// before anything is sent (a model served by several goes to those
// allowed) and, when every provider is refused, fails with the first
// refusal; Answered sees the provider of every answer, fresh, cached or
// streamed, and its error withholds the answer.
func TestProviderPolicyClass(t *testing.T) {
	var mu sync.Mutex
	var answered []string
	refuse := map[string]bool{"a": true}
	var answerErr error
	e := newEnv(t, func(c *modelgw.Config) {
		c.AuthorizeProvider = func(_ context.Context, _ modelgw.Caller, p api.ModelProvider) error {
			mu.Lock()
			defer mu.Unlock()
			if refuse[p.Name] {
				return api.Errorf(api.KindForbidden, "provider %s refused by policy", p.Name)
			}
			return nil
		}
		c.Answered = func(_ context.Context, _ modelgw.Caller, p api.ModelProvider) error {
			mu.Lock()
			defer mu.Unlock()
			answered = append(answered, p.Name)
			return answerErr
		}
	})
	a, b := openaitest.New(t, "a"), openaitest.New(t, "b")
	e.provider(a, 1, "", "default", "only-a")
	e.provider(b, 2, "", "default")
	cached := `{"model":"default","temperature":0,"messages":[{"role":"user","content":"hi"}]}`
	for i := range 2 {
		res, err := e.gw.Chat(context.Background(), modelgw.Caller{User: "u"}, []byte(cached))
		if err != nil || res.Provider != "b" || res.CacheHit != (i == 1) {
			t.Fatalf("call %d: %+v %v", i, res, err)
		}
	}
	resp := e.post("/v1/chat/completions", `{"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if body := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") {
		t.Fatalf("stream: %d %s", resp.StatusCode, body)
	}
	_, err := e.gw.Chat(context.Background(), modelgw.Caller{User: "u"}, []byte(`{"model":"only-a","messages":[{"role":"user","content":"hi"}]}`))
	if !api.IsKind(err, api.KindForbidden) || !strings.Contains(err.Error(), "provider a refused") {
		t.Fatalf("every provider refused: %v", err)
	}
	if len(a.Requests()) != 0 {
		t.Fatalf("a refused provider received %d requests", len(a.Requests()))
	}
	mu.Lock()
	if strings.Join(answered, ",") != "b,b,b" {
		t.Errorf("answered %v, want b three times (fresh, cached, streamed)", answered)
	}
	answerErr = errors.New("labels unavailable")
	mu.Unlock()
	if _, err := e.gw.Chat(context.Background(), modelgw.Caller{User: "u"}, []byte(chatBody)); err == nil {
		t.Fatal("an Answered error did not withhold the answer")
	}
	resp = e.post("/v1/chat/completions", `{"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if body := readAll(t, resp); resp.StatusCode == 200 {
		t.Fatalf("stream delivered despite Answered's error: %s", body)
	}
}
