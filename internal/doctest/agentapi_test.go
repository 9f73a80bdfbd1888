package doctest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// agentAPIDoc is the reference for agent authors.
const agentAPIDoc = "docs/AGENT-API.md"

func readAgentAPI(t *testing.T) (string, []example) {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repoRoot(t), agentAPIDoc))
	if err != nil {
		t.Fatal(err)
	}
	exs, err := parseExamples(agentAPIDoc, string(text))
	if err != nil {
		t.Fatal(err)
	}
	return string(text), exs
}

// TestAgentAPIDocClass: docs/AGENT-API.md names every manifest field and
// limit, every env binding the runtime reserves, and every error name the
// host throws into agent code; each example has its own agent name. It
// reads the names from the code (the Manifest struct's JSON tags, the
// string literals that begin with "XxxError: ", the toolbox's error codes),
// so a field or error added later without a line in the reference fails here.
func TestAgentAPIDocClass(t *testing.T) {
	text, exs := readAgentAPI(t)
	names := map[string]int{}
	for _, ex := range exs {
		if prev, dup := names[ex.manifest.Name]; dup {
			t.Errorf("%s:%d: agent name %q is used by the example at line %d too", agentAPIDoc, ex.line, ex.manifest.Name, prev)
		}
		names[ex.manifest.Name] = ex.line
	}
	if len(exs) == 0 {
		t.Fatal("no examples")
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[bundle.Manifest](), reflect.TypeFor[bundle.Limits]()} {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !strings.Contains(text, "`"+tag+"`") {
				t.Errorf("%s does not describe manifest field `%s` (%s.%s)", agentAPIDoc, tag, typ.Name(), f.Name)
			}
		}
	}
	for _, b := range []string{"state", "session", "tools", "ai", "sandbox", "secrets"} {
		if !bundle.ReservedEnv(b) {
			t.Errorf("env.%s is no longer reserved: update this test and %s", b, agentAPIDoc)
		}
		if !strings.Contains(text, "env."+b) {
			t.Errorf("%s does not describe env.%s", agentAPIDoc, b)
		}
	}
	for _, name := range hostErrorNames(t) {
		if !strings.Contains(text, "`"+name+"`") {
			t.Errorf("%s does not list the error name `%s` that the host throws into agent code", agentAPIDoc, name)
		}
	}
}

// hostErrorNames are the JavaScript error names the Go side throws into
// agent code: string literals starting "XxxError: ", Name: "XxxError" and
// HostErrorf("XxxError", ...) (isolate.HostError) in non-test Go files
// under internal/, and the names of the toolbox's error codes
// ("rate_limited" → RateLimitedError).
func hostErrorNames(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	lit := regexp.MustCompile(`"([A-Z][A-Za-z]*Error): |Name:\s*"([A-Z][A-Za-z]*Error)"|HostErrorf\(\s*"([A-Z][A-Za-z]*Error)"`)
	code := regexp.MustCompile(`\bCode[A-Za-z]*\s+Code = "([a-z_]+)"`)
	var out []string
	add := func(n string) {
		if n != "" && n != "SomeError" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.Contains(p, "test"+string(filepath.Separator)) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			add(m[1] + m[2] + m[3])
		}
		if strings.HasSuffix(p, filepath.Join("toolbox", "errors.go")) {
			for _, m := range code.FindAllStringSubmatch(string(b), -1) {
				var sb strings.Builder
				for _, part := range strings.Split(m[1], "_") {
					sb.WriteString(strings.ToUpper(part[:1]) + part[1:])
				}
				add(sb.String() + "Error")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 5 {
		t.Fatalf("found only %v: the way host errors are written changed; update hostErrorNames", out)
	}
	slices.Sort(out)
	return out
}

// TestAgentAPIExamples deploys every example of docs/AGENT-API.md to a
// real node and makes its calls, comparing each answer with the
// transcript. The node has what the examples use: the secret API_KEY for
// api.example.com, a model provider "main" serving the models "default"
// and "text-embed", api.example.com as a trusted host, and the stand-in
// upstreams of the README test on loopback. Examples that
// use env.sandbox are skipped where the process sandbox tier is missing.
func TestAgentAPIExamples(t *testing.T) {
	_, exs := readAgentAPI(t)
	up := startUpstreams(t)
	cfg := config.Default()
	cfg.Data, cfg.Listen, cfg.SandboxPoolProcess = t.TempDir(), "127.0.0.1:0", 0
	cfg.EgressLoopbackHosts, cfg.EgressUpstreamCAFile = up.loopbackHosts(), up.caFile
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	tok, err := os.ReadFile(filepath.Join(cfg.Data, daemon.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New("http://"+d.Addr(), strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx, "API_KEY", api.SecretRequest{Value: apiKey, AllowHosts: []string{apiHost}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx, "LLM_KEY", api.SecretRequest{Value: llmKey, AllowHosts: []string{apiHost}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddModelProvider(ctx, api.ModelProvider{Name: "main", BaseURL: "https://" + apiHost + "/v1", Secret: "LLM_KEY", Models: []string{"default=gpt-x", "text-embed"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetTrustedHosts(ctx, []string{apiHost}); err != nil {
		t.Fatal(err)
	}
	noSandbox := process.Available()
	for _, ex := range exs {
		t.Run(ex.manifest.Name, func(t *testing.T) {
			if noSandbox != nil && strings.Contains(string(ex.files[ex.manifest.Entry]), "env.sandbox") {
				t.Skipf("uses env.sandbox, and the process sandbox tier is missing: %v", noSandbox)
			}
			runExample(t, c, ex)
		})
	}
}

// runExample deploys one example and makes its calls in order, on the
// session "doc".
func runExample(t *testing.T, c *client.Client, ex example) {
	ctx := context.Background()
	b, err := bundle.FromFiles(ex.files)
	if err != nil {
		t.Fatalf("%s:%d: %v", agentAPIDoc, ex.line, err)
	}
	tgz, err := b.TarGz()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deploy(ctx, tgz); err != nil {
		t.Fatalf("%s:%d: deploy %s: %v", agentAPIDoc, ex.line, ex.manifest.Name, err)
	}
	for _, s := range ex.steps {
		deadline := time.Now().Add(20 * time.Second) // a hang, not a speed check
		for {
			status, body := callExample(t, c, ex.manifest.Name, s)
			ok := status == s.status && matches(s.want, body)
			if ok {
				break
			}
			if !s.poll || time.Now().After(deadline) {
				t.Fatalf("%s:%d: %s %s answered\n%d\n%s\nwant\n%d\n%s", agentAPIDoc, s.line, s.method, s.path, status, body, s.status, s.want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func callExample(t *testing.T, c *client.Client, agent string, s step) (int, string) {
	t.Helper()
	var body io.Reader
	if s.body != "" {
		body = strings.NewReader(s.body)
	}
	resp, err := c.Call(context.Background(), agent, "doc", s.method, s.path, body, s.header)
	if err != nil {
		t.Fatalf("%s:%d: %v", agentAPIDoc, s.line, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
