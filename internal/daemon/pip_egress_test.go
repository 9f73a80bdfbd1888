package daemon_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// wheel builds a pure-Python wheel of package name, version 1.0, whose
// module sets VALUE = value.
func wheel(t *testing.T, name, value string) []byte {
	t.Helper()
	dist := name + "-1.0.dist-info/"
	files := []struct{ path, body string }{
		{name + "/__init__.py", "VALUE = " + fmt.Sprintf("%q", value) + "\n"},
		{dist + "METADATA", "Metadata-Version: 2.1\nName: " + name + "\nVersion: 1.0\n"},
		{dist + "WHEEL", "Wheel-Version: 1.0\nGenerator: agentcloud-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		w, err := zw.Create(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(f.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.path, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.body))
	}
	record.WriteString(dist + "RECORD,,\n")
	w, err := zw.Create(dist + "RECORD")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(record.String())); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pipIndex is a package index on loopback, in the simple repository form
// pip reads: a stand-in for a public index, which this machine cannot
// reach. It records the paths asked for.
type pipIndex struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []string
}

func newPipIndex(t *testing.T, name string, whl []byte) *pipIndex {
	file := name + "-1.0-py3-none-any.whl"
	sum := sha256.Sum256(whl)
	ix := &pipIndex{}
	ix.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ix.mu.Lock()
		ix.hits = append(ix.hits, r.URL.Path)
		ix.mu.Unlock()
		switch r.URL.Path {
		case "/simple/" + name + "/":
			fmt.Fprintf(w, `<!DOCTYPE html><html><body><a href="/files/%s#sha256=%s">%s</a></body></html>`, file, hex.EncodeToString(sum[:]), file)
		case "/files/" + file:
			w.Write(whl)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ix.srv.Close)
	return ix
}

func (ix *pipIndex) port() string { return strings.Split(ix.srv.Listener.Addr().String(), ":")[1] }

func (ix *pipIndex) seen() []string {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return append([]string(nil), ix.hits...)
}

// TestPipInstallThroughEgressClass: pip in a running sandbox installs a
// package from an index its egress list names, through the platform's
// egress proxy (the sandbox has no other way out), and the package
// imports; a sandbox whose list does not name the index gets nothing,
// and the index sees no request from it.
func TestPipInstallThroughEgressClass(t *testing.T) {
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	if err := exec.Command("/usr/bin/python3", "-m", "pip", "--version").Run(); err != nil {
		testdeps.Missing(t, "pip is not installed for /usr/bin/python3 (apt-get install python3-pip): %v", err)
	}
	_, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := t.Context()
	ix := newPipIndex(t, "agentpkg", wheel(t, "agentpkg", "from the index"))
	host := "pypi.test:" + ix.port()
	install := "python3 -m pip install --disable-pip-version-check --no-cache-dir --target /workspace/lib" +
		" --index-url http://" + host + "/simple/ --trusted-host pypi.test agentpkg" +
		" && PYTHONPATH=/workspace/lib python3 -c 'import agentpkg; print(agentpkg.VALUE)'"
	run := func(egress []string) (int, string) {
		t.Helper()
		sb, err := admin.CreateSandbox(ctx, api.CreateSandboxRequest{Egress: egress, TimeoutS: 300})
		if err != nil {
			t.Fatal(err)
		}
		defer admin.DeleteSandbox(ctx, sb.ID)
		var out bytes.Buffer
		code, err := admin.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "/bin/sh", Args: []string{"-c", install}}, &out, &out)
		if err != nil {
			t.Fatal(err)
		}
		return code, out.String()
	}

	if code, out := run([]string{"evil.test"}); code == 0 || strings.Contains(out, "from the index") {
		t.Fatalf("pip without the index in the egress list: %d %q", code, out)
	}
	if hits := ix.seen(); len(hits) != 0 {
		t.Fatalf("the index was reached without being allowed: %v", hits)
	}
	if code, out := run([]string{host}); code != 0 || !strings.HasSuffix(out, "from the index\n") {
		t.Fatalf("pip install through egress: %d %q", code, out)
	}
	t.Logf("index hits: %v", ix.seen())
	if hits := ix.seen(); len(hits) < 2 {
		t.Fatalf("index hits %v, want the page and the wheel", hits)
	}
}
