package sandboxhttp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
)

func TestSandboxLifecycle(t *testing.T) {
	s := startServer(t)
	c := s.client
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sb, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{
		Limits: api.SandboxLimits{MemoryMB: 256}, TimeoutS: 120,
		Env: map[string]string{"GREETING": "hello"}, Metadata: map[string]string{"owner": "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Tier != "process" || sb.Template != "host" || sb.Limits.MemoryMB != 256 || sb.Limits.Pids == 0 ||
		sb.Metadata["owner"] != "test" || sb.Expires.Sub(sb.Created) < 119*time.Second {
		t.Fatalf("created %+v", sb)
	}
	list, err := c.Sandboxes(ctx)
	if err != nil || len(list) != 1 || list[0].ID != sb.ID {
		t.Fatalf("list %+v %v", list, err)
	}

	t.Run("exec", func(t *testing.T) {
		var out, errb bytes.Buffer
		code, err := c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "sh", Args: []string{"-c", `echo "$GREETING $X"; cat; echo oops >&2; exit 3`},
			Env: map[string]string{"X": "world"}, Stdin: "from stdin\n"}, &out, &errb)
		if err != nil || code != 3 || out.String() != "hello world\nfrom stdin\n" || errb.String() != "oops\n" {
			t.Fatalf("code %d err %v stdout %q stderr %q", code, err, out.String(), errb.String())
		}
	})

	t.Run("exec streams output as it is produced", func(t *testing.T) {
		// The command prints, then waits for a file that the test writes
		// only after it has seen the first line.
		st, err := c.ExecStream(ctx, sb.ID, api.ExecRequest{Cmd: "sh", Args: []string{"-c",
			`echo first; while [ ! -e /workspace/go ]; do sleep 0.02; done; echo second`}, TimeoutS: 30})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ev, err := st.Next()
		if err != nil || ev.Type != api.ExecEventStdout || ev.Data != "first\n" {
			t.Fatalf("first event %+v %v", ev, err)
		}
		if _, err := c.WriteFile(ctx, sb.ID, "/workspace/go", strings.NewReader(""), 0); err != nil {
			t.Fatal(err)
		}
		var types []string
		for {
			ev, err := st.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			types = append(types, ev.Type)
			if ev.Type == api.ExecEventExit && *ev.ExitCode != 0 {
				t.Fatalf("exit %d", *ev.ExitCode)
			}
		}
		if !slices.Equal(types, []string{"stdout", "exit"}) {
			t.Fatalf("events %v", types)
		}
	})

	t.Run("exec SSE", func(t *testing.T) {
		body := `{"cmd":"echo","args":["sse"]}`
		req, _ := http.NewRequest("POST", s.URL+"/v1/sandboxes/"+sb.ID+"/exec", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		want := "event: stdout\ndata: {\"type\":\"stdout\",\"data\":\"sse\\n\"}\n\nevent: exit\ndata: {\"type\":\"exit\",\"exit_code\":0}\n\n"
		if resp.Header.Get("Content-Type") != "text/event-stream" || string(b) != want {
			t.Fatalf("%s\n%q", resp.Header.Get("Content-Type"), b)
		}
	})

	t.Run("exec timeout", func(t *testing.T) {
		_, err := c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "sleep", Args: []string{"30"}, TimeoutS: 0.2}, nil, nil)
		if !api.IsKind(err, api.KindTimeout) {
			t.Fatalf("want timeout problem, got %v", err)
		}
	})

	t.Run("files", func(t *testing.T) {
		if _, err := c.Mkdir(ctx, sb.ID, "/workspace/dir/sub"); err != nil {
			t.Fatal(err)
		}
		fi, err := c.WriteFile(ctx, sb.ID, "dir/sub/a.py", strings.NewReader("print(6*7)\n"), 0o755)
		if err != nil || fi.Size != 11 || fi.Mode != "-rwxr-xr-x" || fi.Path != "/workspace/dir/sub/a.py" {
			t.Fatalf("write %+v %v", fi, err)
		}
		var out bytes.Buffer
		if code, err := c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "python3", Args: []string{"a.py"}, Cwd: "/workspace/dir/sub"}, &out, &out); err != nil || code != 0 || out.String() != "42\n" {
			t.Fatalf("python: %d %v %q", code, err, out.String())
		}
		if _, err := c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "sh", Args: []string{"-c", "echo made > /tmp/out.txt"}}, nil, nil); err != nil {
			t.Fatal(err)
		}
		rc, err := c.ReadFile(ctx, sb.ID, "/tmp/out.txt")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "made\n" {
			t.Fatalf("read %q", b)
		}
		files, err := c.ListFiles(ctx, sb.ID, "/workspace/dir")
		if err != nil || len(files) != 1 || files[0].Name != "sub" || !files[0].IsDir {
			t.Fatalf("list %+v %v", files, err)
		}
		if err := c.RemoveFile(ctx, sb.ID, "/workspace/dir"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.StatFile(ctx, sb.ID, "/workspace/dir"); !api.IsKind(err, api.KindNotFound) {
			t.Fatalf("stat removed dir: %v", err)
		}
	})

	t.Run("background, processes, signal", func(t *testing.T) {
		pid, err := c.StartProcess(ctx, sb.ID, api.ExecRequest{Cmd: "sleep", Args: []string{"300"}})
		if err != nil || pid <= 1 {
			t.Fatalf("start: %d %v", pid, err)
		}
		ps, err := c.Processes(ctx, sb.ID)
		if err != nil || !slices.ContainsFunc(ps, func(p api.SandboxProcess) bool { return p.PID == pid }) {
			t.Fatalf("processes %+v %v", ps, err)
		}
		if err := c.Signal(ctx, sb.ID, pid, "KILL"); err != nil {
			t.Fatal(err)
		}
		for {
			ps, err := c.Processes(ctx, sb.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(ps, func(p api.SandboxProcess) bool { return p.PID == pid && p.State != "Z" }) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("pause and resume", func(t *testing.T) {
		p, err := c.PauseSandbox(ctx, sb.ID)
		if err != nil || !p.Paused {
			t.Fatalf("pause %+v %v", p, err)
		}
		if _, err := c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "true"}, nil, nil); !api.IsKind(err, api.KindConflict) {
			t.Fatalf("exec while paused: want conflict, got %v", err)
		}
		r, err := c.ResumeSandbox(ctx, sb.ID)
		if err != nil || r.Paused {
			t.Fatalf("resume %+v %v", r, err)
		}
		if code, err := c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "true"}, nil, nil); err != nil || code != 0 {
			t.Fatalf("exec after resume: %d %v", code, err)
		}
	})

	t.Run("extend", func(t *testing.T) {
		e, err := c.ExtendSandbox(ctx, sb.ID, 3600)
		if err != nil || time.Until(e.Expires) < 3500*time.Second {
			t.Fatalf("extend %+v %v", e, err)
		}
	})

	if err := c.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sandbox(ctx, sb.ID); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}

// badInput is one request that must be answered with a 4xx problem.
type badInput struct {
	name, method, path, body string
	kind                     api.Kind
}

func TestBadInput(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	sb, err := s.client.CreateSandbox(ctx, api.CreateSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	id := "/v1/sandboxes/" + sb.ID
	cases := []badInput{
		{"unknown tier", "POST", "/v1/sandboxes", `{"tier":"vm"}`, api.KindValidation},
		{"tier not enabled", "POST", "/v1/sandboxes", `{"tier":"gvisor"}`, api.KindValidation},
		{"unknown template", "POST", "/v1/sandboxes", `{"template":"ubuntu"}`, api.KindValidation},
		{"negative memory", "POST", "/v1/sandboxes", `{"limits":{"memory_mb":-1}}`, api.KindValidation},
		{"tiny memory", "POST", "/v1/sandboxes", `{"limits":{"memory_mb":1}}`, api.KindValidation},
		{"too many cpus", "POST", "/v1/sandboxes", `{"limits":{"cpus":1000}}`, api.KindValidation},
		{"negative timeout", "POST", "/v1/sandboxes", `{"timeout_s":-5}`, api.KindValidation},
		{"bad env", "POST", "/v1/sandboxes", `{"env":{"A=B":"c"}}`, api.KindValidation},
		{"bad json", "POST", "/v1/sandboxes", `{"tier":`, api.KindInvalidJSON},
		{"unknown field", "POST", "/v1/sandboxes", `{"tear":"process"}`, api.KindInvalidJSON},
		{"wrong type", "POST", "/v1/sandboxes", `{"limits":{"pids":"many"}}`, api.KindInvalidJSON},
		{"unknown sandbox", "GET", "/v1/sandboxes/sb-nope", "", api.KindNotFound},
		{"delete unknown", "DELETE", "/v1/sandboxes/sb-nope", "", api.KindNotFound},
		{"exec unknown sandbox", "POST", "/v1/sandboxes/sb-nope/exec", `{"cmd":"true"}`, api.KindNotFound},
		{"files unknown sandbox", "GET", "/v1/sandboxes/sb-nope/files/list", "", api.KindNotFound},
		{"exec no cmd", "POST", id + "/exec", `{}`, api.KindValidation},
		{"exec missing command", "POST", id + "/exec", `{"cmd":"no-such-command"}`, api.KindValidation},
		{"exec relative cwd", "POST", id + "/exec", `{"cmd":"true","cwd":"tmp"}`, api.KindValidation},
		{"exec background stdin", "POST", id + "/exec", `{"cmd":"cat","stdin":"x","background":true}`, api.KindValidation},
		{"exec output file outside", "POST", id + "/exec", `{"cmd":"true","background":true,"output_file":"/etc/x"}`, api.KindValidation},
		{"exec bad json", "POST", id + "/exec", `[1]`, api.KindInvalidJSON},
		{"extend zero", "POST", id + "/extend", `{"timeout_s":0}`, api.KindValidation},
		{"signal bad name", "POST", id + "/processes/2/signal", `{"signal":"BOOM"}`, api.KindValidation},
		{"signal bad pid", "POST", id + "/processes/x/signal", `{"signal":"TERM"}`, api.KindInvalidID},
		{"signal init", "POST", id + "/processes/1/signal", `{"signal":"KILL"}`, api.KindForbidden},
		{"signal no such pid", "POST", id + "/processes/4000/signal", `{"signal":"TERM"}`, api.KindNotFound},
		{"file outside writable paths", "PUT", id + "/files?path=/etc/passwd", "x", api.KindForbidden},
		{"file escape with dots", "GET", id + "/files?path=/workspace/../etc/shadow", "", api.KindForbidden},
		{"file missing path", "GET", id + "/files", "", api.KindInvalidQuery},
		{"file not found", "GET", id + "/files?path=nope.txt", "", api.KindNotFound},
		{"download a directory", "GET", id + "/files?path=/workspace", "", api.KindBadRequest},
		{"upload onto a directory", "PUT", id + "/files?path=/tmp", "x", api.KindConflict},
		{"bad mode", "PUT", id + "/files?path=a&mode=999", "x", api.KindBadRequest},
		{"upload too large", "PUT", id + "/files?path=big", strings.Repeat("x", 2<<20), api.KindTooLarge},
		{"stat outside", "GET", id + "/files/stat?path=/proc/1", "", api.KindForbidden},
		{"mkdir outside", "POST", id + "/files/mkdir?path=/usr/x", "", api.KindForbidden},
		{"remove root", "DELETE", id + "/files?path=/workspace", "", api.KindForbidden},
		{"resume running", "POST", id + "/resume", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if tc.kind == "" { // must simply not be a 5xx
				if resp.StatusCode >= 500 {
					t.Fatalf("status %d: %s", resp.StatusCode, b)
				}
				return
			}
			var p api.Problem
			if err := json.Unmarshal(b, &p); err != nil || resp.Header.Get("Content-Type") != api.ProblemContentType {
				t.Fatalf("status %d, not problem+json: %s", resp.StatusCode, b)
			}
			if p.Kind() != tc.kind || resp.StatusCode != tc.kind.Status() || p.Detail == "" {
				t.Fatalf("want %s (%d), got %d %s", tc.kind, tc.kind.Status(), resp.StatusCode, b)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	rt := httpapi.NewRouter(httpapi.Options{Auth: tokenAuth{}})
	sandboxhttp.New(sandboxhttp.Config{Unavailable: errors.New("not root")}).Routes(rt)
	s := serve(t, rt, func() {})
	_, err := s.client.CreateSandbox(context.Background(), api.CreateSandboxRequest{})
	if !api.IsKind(err, api.KindUnavailable) || !strings.Contains(err.Error(), "not root") {
		t.Fatalf("want unavailable naming the reason, got %v", err)
	}
	doc := rt.OpenAPI("t", "v")
	if err := httpapi.CheckOpenAPI(rt, doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range rt.Routes() {
		if r.Tag != "sandboxes" || r.Action == "" && !(r.Public && strings.HasPrefix(r.Path, sandboxhttp.PublicPortPrefix)) {
			t.Errorf("%s %s: tag %q action %q", r.Method, r.Path, r.Tag, r.Action)
		}
	}
}

// TestStreamKeepsUTF8 checks that a multi-byte character split across
// writes reaches the client whole.
func TestStreamKeepsUTF8(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	sb, err := s.client.CreateSandbox(ctx, api.CreateSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// "é" is \303\251; the two bytes are written separately.
	resp, err := s.client.Raw(ctx, "POST", "/v1/sandboxes/"+sb.ID+"/exec",
		strings.NewReader(`{"cmd":"sh","args":["-c","printf '\\303'; sleep 0.1; printf '\\251\\n'"]}`), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev api.ExecEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		got.WriteString(ev.Data)
	}
	if got.String() != "é\n" {
		t.Fatalf("got %q", got.String())
	}
}

func FuzzDecodeExecRequest(f *testing.F) {
	for _, s := range []string{`{"cmd":"true"}`, `{}`, `{"cmd":"sh","args":["-c","x"],"env":{"A":"b"},"timeout_s":1.5}`,
		`{"cmd":"cat","stdin":"x","background":true}`, `{"cmd":"x","output_file":"/etc/x","background":true}`,
		`{"cmd":"x","timeout_s":-1}`, `{"cmd":"x","cwd":"rel"}`, `{"cmd":"a\u0000b"}`, `[1]`, `{"cmd":1}`, `{"cmd":"x"} {}`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r, _ := http.NewRequest("POST", "/", strings.NewReader(body))
		req, err := sandboxhttp.DecodeExecRequest(r, time.Hour)
		if err == nil {
			if req.Cmd == "" || strings.ContainsRune(req.Cmd, 0) || req.TimeoutS < 0 || req.TimeoutS > 3600 {
				t.Fatalf("accepted invalid request %+v", req)
			}
			return
		}
		var p *api.Problem
		if !errors.As(err, &p) || p.Status < 400 || p.Status >= 500 {
			t.Fatalf("want a 4xx problem, got %v", err)
		}
		_ = fmt.Sprint(p)
	})
}
