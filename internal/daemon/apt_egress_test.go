package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// helloDeb builds, with dpkg-deb, the package agentcloud-hello 1.0
// (Architecture: all): /usr/bin/agentcloud-hello, a shell script that
// prints marker.
func helloDeb(t *testing.T, marker string) []byte {
	t.Helper()
	root := filepath.Join(t.TempDir(), "pkg")
	files := []struct {
		path, body string
		mode       os.FileMode
	}{
		{"DEBIAN/control", "Package: agentcloud-hello\nVersion: 1.0\nArchitecture: all\n" +
			"Maintainer: agentcloud tests <tests@agentcloud.invalid>\nDescription: prints a marker (agentcloud's apt test)\n", 0o644},
		{"usr/bin/agentcloud-hello", "#!/bin/sh\necho " + marker + "\n", 0o755},
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	// dpkg-deb wants the control dir 0755 whatever the umask made it.
	for _, d := range []string{root, filepath.Join(root, "DEBIAN"), filepath.Join(root, "usr"), filepath.Join(root, "usr/bin")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	deb := root + ".deb"
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", root, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v: %s", err, out)
	}
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aptRepo is a flat apt repository on loopback (Release, Packages and one
// .deb under /debian/): a stand-in for a package mirror, which this
// machine cannot reach. Its Release is unsigned, so sources name it
// [trusted=yes]. It records the Host and path of every request.
type aptRepo struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []string // "HOST PATH"
}

func newAptRepo(t *testing.T, deb []byte) *aptRepo {
	t.Helper()
	const file = "agentcloud-hello_1.0_all.deb"
	debSum := sha256.Sum256(deb)
	var ctl bytes.Buffer
	ctl.WriteString("Package: agentcloud-hello\nVersion: 1.0\nArchitecture: all\n" +
		"Maintainer: agentcloud tests <tests@agentcloud.invalid>\n")
	fmt.Fprintf(&ctl, "Filename: ./%s\nSize: %d\nSHA256: %s\n", file, len(deb), hex.EncodeToString(debSum[:]))
	ctl.WriteString("Description: prints a marker (agentcloud's apt test)\n")
	packages := ctl.Bytes()
	pkgSum := sha256.Sum256(packages)
	release := fmt.Sprintf("Origin: agentcloud-test\nLabel: agentcloud-test\nDate: %s\nSHA256:\n %s %d Packages\n",
		time.Now().UTC().Add(-time.Hour).Format(time.RFC1123), hex.EncodeToString(pkgSum[:]), len(packages))
	files := map[string][]byte{"Release": []byte(release), "Packages": packages, file: deb}
	repo := &aptRepo{}
	repo.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean(r.URL.Path) // apt asks for /debian/./Packages
		repo.mu.Lock()
		repo.hits = append(repo.hits, r.Host+" "+p)
		repo.mu.Unlock()
		dir, name := path.Split(p)
		if b, ok := files[name]; ok && dir == "/debian/" {
			w.Write(b)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(repo.srv.Close)
	return repo
}

func (r *aptRepo) port() string { return strings.Split(r.srv.Listener.Addr().String(), ":")[1] }

func (r *aptRepo) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.hits...)
}

// hostSuite is this host's Debian suite (VERSION_CODENAME), whose mirror
// the daemon's mmdebstrap uses.
func hostSuite(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/etc/os-release")
	if err != nil {
		testdeps.Missing(t, "no /etc/os-release: not a Debian host: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VERSION_CODENAME="); ok && v != "" {
			return strings.Trim(v, `"`)
		}
	}
	testdeps.Missing(t, "no VERSION_CODENAME in /etc/os-release: not a Debian host")
	return ""
}

// TestAptInstallThroughEgressClass: a Debian template's build step runs
// apt-get update and apt-get install (as root of the build sandbox's user
// namespace, where apt drops to _apt as it does on a host) against an apt
// repository its --egress names, through the platform's egress proxy (the
// build sandbox has no other way out), and a sandbox on the template runs
// the installed program. The build step first points apt at the same
// repository under a host name the egress list does not name: apt-get
// update fails with the proxy's 403, and the repository sees no request
// for that name. A running sandbox's user is uid 1000, not root: apt-get
// install there is refused (build mode, root of the user namespace, is
// only for template builds). Slow (mmdebstrap downloads from the host's
// apt mirror): skipped with -short.
func TestAptInstallThroughEgressClass(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Debian rootfs with mmdebstrap (slow); skipped with -short")
	}
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	for _, tool := range []string{"mmdebstrap", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			testdeps.Missing(t, "no %s (scripts/deps.sh installs it)", tool)
		}
	}
	suite := hostSuite(t)
	_, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := t.Context()
	const marker = "hello from the apt repository"
	repo := newAptRepo(t, helloDeb(t, marker))
	allowed, denied := "apt.test:"+repo.port(), "mirror.test:"+repo.port()
	// update reads only the test's source (the template's own sources.list
	// names the host's mirror, which the build may not reach).
	update := func(host string) string {
		return "echo 'deb [trusted=yes] http://" + host + "/debian ./' > /etc/apt/sources.list.d/test.list && " +
			"apt-get -o Dir::Etc::SourceList=/etc/apt/sources.list.d/test.list -o Dir::Etc::SourceParts=- update"
	}
	if _, err := admin.CreateTemplateFromDebian(ctx, "deb", suite, nil, client.Build{
		Run: []string{
			"if " + update(denied) + " > /tmp/denied 2>&1; then echo 'apt-get update passed the egress list'; cat /tmp/denied; exit 1; fi; " +
				"grep -q 'Forbidden' /tmp/denied || { cat /tmp/denied; exit 1; }",
			// apt fetches as _apt; it would warn "unsandboxed" had it not.
			"{ " + update(allowed) + " && DEBIAN_FRONTEND=noninteractive apt-get install -y agentcloud-hello; } > /tmp/ok 2>&1 || " +
				"{ cat /tmp/ok; exit 1; }; ! grep unsandboxed /tmp/ok && rm /etc/apt/sources.list.d/test.list",
		},
		Egress: []string{allowed},
	}); err != nil {
		t.Fatal(err)
	}
	hits := repo.seen()
	t.Logf("repository hits: %v", hits)
	for _, h := range hits {
		if !strings.HasPrefix(h, allowed+" ") {
			t.Fatalf("the repository was reached under a host the egress list does not name: %v", hits)
		}
	}
	if !slices.Contains(hits, allowed+" /debian/Packages") || !slices.Contains(hits, allowed+" /debian/agentcloud-hello_1.0_all.deb") {
		t.Fatalf("repository hits %v, want the Packages index and the .deb", hits)
	}
	sb, err := admin.CreateSandbox(ctx, api.CreateSandboxRequest{Template: "deb"})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.DeleteSandbox(context.WithoutCancel(ctx), sb.ID)
	var out bytes.Buffer
	code, err := admin.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "/bin/sh", Args: []string{"-c",
		"id -u && agentcloud-hello && dpkg-query -W agentcloud-hello && apt-get install -y agentcloud-hello"}}, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := "1000\n" + marker + "\nagentcloud-hello\t1.0\n"
	if code == 0 || !strings.HasPrefix(out.String(), want) || !strings.Contains(out.String(), "are you root?") {
		t.Fatalf("in a sandbox on the template: exit %d, output %q; want %q, then apt-get install refused to a non-root user", code, out.String(), want)
	}
}
