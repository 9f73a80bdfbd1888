//go:build linux

package image

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/testdeps"
)

func TestParseSources(t *testing.T) {
	text := `# comment
deb http://one.invalid/debian stable main
deb [signed-by=/k.gpg arch=amd64] http://two.invalid/debian testing main

Types: deb deb-src
URIs: http://three.invalid/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb-src
URIs: http://four.invalid/debian
Suites: trixie
`
	got := parseSources(text)
	want := []aptSource{{"http://one.invalid/debian", []string{"stable"}}, {"http://two.invalid/debian", []string{"testing"}},
		{"http://three.invalid/debian", []string{"bookworm", "bookworm-updates"}}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].uri != want[i].uri || strings.Join(got[i].suites, ",") != strings.Join(want[i].suites, ",") {
			t.Fatalf("%d: got %v want %v", i, got[i], want[i])
		}
	}
}

func FuzzParseSources(f *testing.F) {
	f.Add("deb http://x.invalid/d stable main\n")
	f.Add("deb [a=b] http://x.invalid/d stable main\n")
	f.Add("Types: deb\nURIs: http://x.invalid\nSuites: s\n\n")
	f.Add("deb [broken\n")
	f.Fuzz(func(t *testing.T, s string) { _ = parseSources(s) })
}

// Bad --from-debian requests are refused before anything runs.
func TestDebianRequestClass(t *testing.T) {
	s := openStore(t, Limits{})
	for _, c := range []struct {
		suite string
		pkgs  []string
	}{
		{"", nil}, {"Bookworm", nil}, {"bookworm;rm", nil}, {"../x", nil}, {strings.Repeat("a", 40), nil},
		{"bookworm", []string{"-evil"}}, {"bookworm", []string{"a b"}}, {"bookworm", []string{"--option=x"}},
		{"bookworm", make([]string, maxPackages+1)},
	} {
		if _, err := s.FromDebian(t.Context(), "deb", c.suite, c.pkgs); !errors.Is(err, ErrInvalid) {
			t.Errorf("suite %q packages %q: %v", c.suite, c.pkgs, err)
		}
	}
}

// A template from a Debian rootfs with python3-pip: inside a sandbox, pip
// installs a wheel built there (no index: --no-index --find-links) into
// the user's site, and python imports it. Slow (mmdebstrap downloads from
// the host's apt mirror): skipped with -short.
func TestDebianTemplatePip(t *testing.T) {
	t.Parallel() // waits on the package mirror and dpkg; its own store
	if testing.Short() {
		t.Skip("builds a Debian rootfs with mmdebstrap (slow); skipped with -short")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		testdeps.Missing(t, "no mmdebstrap (scripts/deps.sh installs it)")
	}
	suite := ""
	for _, src := range debSources(t) {
		if len(src.suites) > 0 && !strings.Contains(src.suites[0], "-") {
			suite = src.suites[0]
			break
		}
	}
	if suite == "" {
		testdeps.Missing(t, "no Debian suite in this host's apt sources")
	}
	s := openStore(t, Limits{})
	tpl, err := s.FromDebian(t.Context(), "deb", suite, []string{"python3-pip"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("debian %s + python3-pip: %d MiB", suite, tpl.Bytes>>20)
	wheel := `import base64, hashlib, os, sys, zipfile
d = sys.argv[1] if len(sys.argv) > 1 else "/workspace/wheels"
os.makedirs(d, exist_ok=True)
files = {"hello.py": b"X = 42\n",
 "hello-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: hello\nVersion: 1.0\n",
 "hello-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
rec = "".join("%s,sha256=%s,%d\n" % (n, base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode(), len(b)) for n, b in files.items())
rec += "hello-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(d + "/hello-1.0-py3-none-any.whl", "w") as z:
    for n, b in files.items(): z.writestr(n, b)
    z.writestr("hello-1.0.dist-info/RECORD", rec)
`
	quoted := "'" + strings.ReplaceAll(wheel, "'", `'"'"'`) + "'"
	// A build step installs the wheel system-wide as root of the build
	// sandbox (into /usr/local): the template then has it for everyone.
	m := newManager(t, s)
	if _, err := s.RunSteps(t.Context(), "deb", []string{
		"python3 -c " + quoted + " /tmp/wheels",
		"python3 -m pip install --no-cache-dir --break-system-packages --no-index --find-links /tmp/wheels hello",
	}, BuildOptions{Sandboxes: m}); err != nil {
		t.Fatal(err)
	}
	sb, err := m.Create(t.Context(), "", sandbox.Spec{Template: "deb"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Delete(context.WithoutCancel(t.Context()), sb.ID())
	if out := sh(t, sb, "id -u; python3 -c 'import hello; print(\"built\", hello.X)'"); out != "1000\nbuilt 42\n" {
		t.Fatalf("wheel installed by a build step: %q", out)
	}
	out := sh(t, sb, "grep -q "+suite+" /etc/os-release && python3 -c '"+strings.ReplaceAll(wheel, "'", `'"'"'`)+"' && "+
		"python3 -m pip install --user --break-system-packages --no-index --find-links /workspace/wheels --force-reinstall hello 2>&1 && "+
		"python3 -c 'import hello, sys; print(\"answer\", hello.X, \".local\" in hello.__file__)'")
	if !strings.Contains(out, "answer 42 True") {
		t.Fatalf("pip in the Debian template: %s", out)
	}
}

func debSources(t *testing.T) []aptSource {
	t.Helper()
	var out []aptSource
	for _, f := range []string{"/etc/apt/sources.list", "/etc/apt/sources.list.d/debian.sources"} {
		if b, err := os.ReadFile(f); err == nil {
			out = append(out, parseSources(string(b))...)
		}
	}
	return out
}
