package modelgwhttp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/modelgw"
	"github.com/agentcloud/agentcloud/internal/modelgw/modelgwhttp"
	"github.com/agentcloud/agentcloud/internal/modelgw/openaitest"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// maxBody is the router's request body limit in these tests.
const maxBody = 64 << 10

// headerAuth authenticates the admin, or the user named in X-User.
type headerAuth struct{}

func (headerAuth) Authenticate(r *http.Request) (httpapi.Principal, error) {
	if u := r.Header.Get("X-User"); u != "" {
		return httpapi.Principal{ID: "user:" + u, Kind: "user"}, nil
	}
	return httpapi.Principal{ID: "admin", Kind: "admin"}, nil
}

// allowInvoke lets every principal invoke models (the routes' action);
// administration stays the admin's (routes without an action).
type allowInvoke struct{}

func (allowInvoke) Authorize(_ context.Context, p httpapi.Principal, action string, _ httpapi.Resource) error {
	if action == modelgw.InvokeAction || p.Kind == "admin" {
		return nil
	}
	return api.Errorf(api.KindForbidden, "%s may not %s", p.ID, action)
}

type env struct {
	gw  *modelgw.Gateway
	srv *httptest.Server
	llm *openaitest.Server
}

// newEnv serves a gateway on a real store through the real router, with
// one fake provider ("llm", model "default" and "emb") on loopback whose
// key a real secrets manager fills in.
func newEnv(t testing.TB) *env {
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
	sec, err := secrets.NewManager(make([]byte, secrets.KeySize), secrets.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	gw, err := modelgw.New(modelgw.Config{KV: kv, Retries: -1,
		Do: func(ctx context.Context, out modelgw.Outbound, req *http.Request) (*http.Response, error) {
			dest, err := secrets.DestinationOf(req.URL)
			if err != nil {
				return nil, err
			}
			if _, err := sec.Substitute(ctx, dest, req.Header); err != nil {
				return nil, err
			}
			return tr.RoundTrip(req)
		}})
	if err != nil {
		t.Fatal(err)
	}
	llm := openaitest.New(t, "llm")
	u, _ := url.Parse(llm.BaseURL())
	if err := sec.Set(ctx, secrets.Secret{Name: "KEY", AllowHosts: []string{"127.0.0.1:" + u.Port()}, AllowHTTP: true}, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.PutProvider(ctx, api.ModelProvider{Name: "llm", BaseURL: llm.BaseURL(), Secret: "KEY", Models: []string{"default", "emb"}}); err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.Options{Auth: headerAuth{}, Authz: allowInvoke{},
		Metrics: httpapi.NewMetrics(prometheus.NewRegistry()), MaxBodyBytes: maxBody})
	modelgwhttp.New(modelgwhttp.Config{Gateway: gw, Caller: func(r *http.Request) (modelgw.Caller, error) {
		if r.Header.Get("X-Nobody") != "" {
			return modelgw.Caller{}, api.Errorf(api.KindUnauthenticated, "no principal")
		}
		p, _ := httpapi.PrincipalFrom(r.Context())
		return modelgw.Caller{Principal: p.ID, User: p.ID, Agent: r.Header.Get("X-Agent"), Session: r.Header.Get("X-Session")}, nil
	}}).Routes(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return &env{gw: gw, srv: srv, llm: llm}
}

func (e *env) do(t testing.TB, method, path, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const chatBody = `{"model":"default","messages":[{"role":"user","content":"hi"}]}`

// TestModelRoutesProblemClass sends malformed and hostile requests to every
// gateway route: wrong content types, bodies over the router's limit,
// broken JSON, unknown query parameters, a caller the CallerFunc refuses,
// a user on administrators' routes. Each is a 4xx problem+json with the
// stable kind, never a 5xx, and none reaches the provider.
func TestModelRoutesProblemClass(t *testing.T) {
	e := newEnv(t)
	big := `{"model":"default","messages":[{"role":"user","content":"` + strings.Repeat("x", maxBody) + `"}]}`
	text := map[string]string{"Content-Type": "text/plain"}
	type tc struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		kind                     api.Kind
	}
	var cases []tc
	for _, r := range []struct{ method, path, good string }{
		{"POST", "/v1/chat/completions", chatBody},
		{"POST", "/v1/embeddings", `{"model":"emb","input":"x"}`},
		{"POST", "/v1/model-providers", `{"name":"p","base_url":"http://p.example","models":["m"]}`},
		{"PUT", "/v1/model-budgets", `{"agent":"bot","tokens":10}`},
	} {
		cases = append(cases,
			tc{r.path + " text/plain", r.method, r.path, r.good, text, 415, api.KindUnsupportedMedia},
			tc{r.path + " bad media type", r.method, r.path, r.good, map[string]string{"Content-Type": "application/json; ;;"}, 415, api.KindUnsupportedMedia},
			tc{r.path + " too large", r.method, r.path, big, nil, 413, api.KindTooLarge},
			tc{r.path + " malformed", r.method, r.path, `{"model":`, nil, 400, api.KindInvalidJSON},
			tc{r.path + " not an object", r.method, r.path, `[1]`, nil, 400, api.KindInvalidJSON},
		)
	}
	cases = append(cases,
		tc{"chat refused caller", "POST", "/v1/chat/completions", chatBody, map[string]string{"X-Nobody": "1"}, 401, api.KindUnauthenticated},
		tc{"embed refused caller", "POST", "/v1/embeddings", `{"model":"emb","input":"x"}`, map[string]string{"X-Nobody": "1"}, 401, api.KindUnauthenticated},
		tc{"chat unknown model", "POST", "/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, nil, 404, api.KindNotFound},
		tc{"usage unknown query", "GET", "/v1/usage?agent=a&sort=x", "", nil, 400, api.KindInvalidQuery},
		tc{"budgets unknown query", "GET", "/v1/model-budgets?user=u", "", nil, 400, api.KindInvalidQuery},
		tc{"delete missing provider", "DELETE", "/v1/model-providers/nope", "", nil, 404, api.KindNotFound},
		tc{"delete bad provider id", "DELETE", "/v1/model-providers/Bad%20Name", "", nil, 400, api.KindInvalidID},
		tc{"user adds provider", "POST", "/v1/model-providers", `{"name":"p","base_url":"http://p.example","models":["m"]}`, map[string]string{"X-User": "eve"}, 403, api.KindForbidden},
		tc{"user lists providers", "GET", "/v1/model-providers", "", map[string]string{"X-User": "eve"}, 403, api.KindForbidden},
		tc{"user sets budget", "PUT", "/v1/model-budgets", `{"agent":"bot","tokens":1}`, map[string]string{"X-User": "eve"}, 403, api.KindForbidden},
		tc{"user reads usage", "GET", "/v1/usage", "", map[string]string{"X-User": "eve"}, 403, api.KindForbidden},
		tc{"user deletes provider", "DELETE", "/v1/model-providers/llm", "", map[string]string{"X-User": "eve"}, 403, api.KindForbidden},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.do(t, c.method, c.path, c.body, c.hdr)
			var p api.Problem
			if err := json.Unmarshal([]byte(body), &p); err != nil || resp.Header.Get("Content-Type") != api.ProblemContentType {
				t.Fatalf("not a problem: %d %s", resp.StatusCode, body)
			}
			if resp.StatusCode != c.status || p.Type != c.kind.TypeURI() {
				t.Fatalf("%d %s (%s), want %d %s", resp.StatusCode, p.Type, p.Detail, c.status, c.kind)
			}
		})
	}
	if n := len(e.llm.Requests()); n != 0 {
		t.Fatalf("refused requests reached the provider %d times", n)
	}
}

// TestModelRoutesAnswer: the routes answer what the gateway answers, with
// the provider and cache headers; a stream arrives as server-sent events;
// administration records who added a provider and lists fresh.
func TestModelRoutesAnswer(t *testing.T) {
	e := newEnv(t)
	cached := `{"model":"default","temperature":0,"messages":[{"role":"user","content":"hi"}]}`
	for i, want := range []string{"miss", "hit"} {
		resp, body := e.do(t, "POST", "/v1/chat/completions", cached, map[string]string{"X-User": "u"})
		if resp.StatusCode != 200 || resp.Header.Get("X-Agentcloud-Provider") != "llm" || resp.Header.Get("X-Agentcloud-Cache") != want ||
			resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, "hello from llm") {
			t.Fatalf("call %d: %d %v %s", i, resp.StatusCode, resp.Header, body)
		}
	}
	if resp, body := e.do(t, "POST", "/v1/embeddings", `{"model":"emb","input":"x"}`, map[string]string{"Content-Type": "application/vnd.api+json"}); resp.StatusCode != 200 || !strings.Contains(body, "embedding") {
		t.Fatalf("embeddings: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || !strings.HasPrefix(first, "data:") {
		t.Fatalf("stream: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), first)
	}
	// A provider written behind the node's cache shows in the API's list.
	if _, err := e.gw.PutProvider(context.Background(), api.ModelProvider{Name: "other", BaseURL: "http://other.example", Models: []string{"m"}}); err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(t, "POST", "/v1/model-providers", `{"name":"p2","base_url":"http://p2.example","models":["m"]}`, nil)
	var p api.ModelProvider
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &p) != nil || p.By != "admin" {
		t.Fatalf("add provider: %d %s", resp.StatusCode, body)
	}
	_, body = e.do(t, "GET", "/v1/model-providers", "", nil)
	var list api.ModelProviderList
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Providers) != 3 {
		t.Fatalf("providers: %s", body)
	}
}

// FuzzModelRoutes posts arbitrary bodies to the completion and embedding
// routes: the answer is never a 5xx other than the provider being down.
func FuzzModelRoutes(f *testing.F) {
	for _, s := range []string{chatBody, `{"model":"emb","input":["a",[1]]}`, `{}`, `null`, `{"model":"default","stream":"x"}`,
		`{"model":"default","messages":[{"role":"user","content":"x"}],"max_tokens":1e30}`, "\x00", `{"model":"default","model":"emb"}`} {
		f.Add(s, true)
		f.Add(s, false)
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body string, chat bool) {
		path := "/v1/embeddings"
		if chat {
			path = "/v1/chat/completions"
		}
		resp, out := e.do(t, "POST", path, body, nil)
		if resp.StatusCode >= 500 && resp.StatusCode != 502 && resp.StatusCode != 503 {
			t.Fatalf("%q: %d %s", body, resp.StatusCode, out)
		}
	})
}
