//go:build linux

package gvisor

import (
	"bytes"
	"context"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// probeScript runs as another host user and prints one line for every
// access that worked: listing a directory, reading or appending to a file,
// creating a file in a directory, connecting to a socket.
const probeScript = `
for p in "$@"; do
  if [ -d "$p" ]; then
    ls -A "$p" >/dev/null 2>&1 && echo "LIST $p"
    (: > "$p/.probe") 2>/dev/null && echo "CREATE $p"
  elif [ -S "$p" ]; then
    python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$p" 2>/dev/null && echo "CONNECT $p"
  else
    cat "$p" >/dev/null 2>&1 && echo "READ $p"
    (: >> "$p") 2>/dev/null && echo "WRITE $p"
  fi
done
true`

// TestHostDirsPrivateClass: no other host user can list, read, write or
// connect to anything the gVisor tier keeps on the host for its sandboxes
// (bundles and specs, the /workspace and /tmp mounts and the files in them,
// egress sockets, runsc state), and what a sandbox runs, with its
// arguments and environment, is not on any host command line.
func TestHostDirsPrivateClass(t *testing.T) {
	tier := newTestTier(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const envCanary, argCanary = "env-canary-6b1f0e", "arg-canary-93d2aa"
	var sbs []sandbox.Sandbox
	for range 2 {
		sb, err := sandbox.Create(ctx, tier, sandbox.NewID(), sandbox.Spec{Env: map[string]string{"API_TOKEN": envCanary}})
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		sbs = append(sbs, sb)
		if err := sb.WriteFile(ctx, "/workspace/from-host.txt", strings.NewReader("secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c",
			"mkdir -p /workspace/d && echo s > /workspace/d/inside.txt && echo t > /tmp/t.txt && chmod 666 /workspace/d/inside.txt && chmod 777 /workspace/d"}}, nil, nil); err != nil || code != 0 {
			t.Fatalf("write files inside: %d %v", code, err)
		}
		if _, err := sb.Start(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "sleep 60", argCanary}}); err != nil {
			t.Fatal(err)
		}
		// An egress socket where the daemon would serve the proxy.
		if es, err := sb.(sandbox.EgressSocketer).EgressSocket(); err == nil {
			ln, err := listenUnixSocket(es)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
		}
	}
	var paths []string
	_ = filepath.WalkDir(filepath.Dir(tier.stateDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			paths = append(paths, p)
		}
		return nil
	})
	if len(paths) < 20 {
		t.Fatalf("walked only %d paths: %v", len(paths), paths)
	}
	for _, want := range []string{"from-host.txt", "inside.txt", "t.txt", "config.json", "proxy.sock"} {
		if !hasBase(paths, want) {
			t.Fatalf("no %s among the tier's host paths", want)
		}
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", probeScript, "probe"}, paths...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe as uid 65534: %v %s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("another host user reached the sandboxes' host files:\n%s", s)
	}
	// The sandbox user's own host uid is no way in either.
	cmd = exec.Command("/bin/sh", append([]string{"-c", probeScript, "probe"}, paths...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: sandbox.SandboxUID, Gid: sandbox.SandboxGID}}
	cmd.Dir = "/"
	if out, _ := cmd.CombinedOutput(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("host uid %d reached the sandboxes' host files:\n%s", sandbox.SandboxUID, out)
	}

	// Command lines: runsc, its sandbox and gofer processes, and whatever
	// else runs on the host carry neither the environment nor the arguments.
	ents, _ := os.ReadDir("/proc")
	seen := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		if bytes.Contains(b, []byte("runsc")) {
			seen++
		}
		if bytes.Contains(b, []byte(envCanary)) || bytes.Contains(b, []byte(argCanary)) {
			t.Errorf("host process %s shows a sandbox's environment or arguments: %q", e.Name(), bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	if seen == 0 {
		t.Fatal("no runsc process seen on the host")
	}
	// The sandboxes still work.
	for _, sb := range sbs {
		var b bytes.Buffer
		if code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "cat /workspace/from-host.txt; echo $API_TOKEN"}}, &b, &b); err != nil || code != 0 || b.String() != "secret"+envCanary+"\n" {
			t.Fatalf("sandbox after the probe: %d %v %q", code, err, b.String())
		}
	}
}

// listenUnixSocket listens as the daemon does for a sandbox's egress:
// mode 0666, so that the gofer may connect on the sandbox's behalf.
func listenUnixSocket(path string) (net.Listener, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	return ln, os.Chmod(path, 0o666)
}

func hasBase(paths []string, base string) bool {
	for _, p := range paths {
		if filepath.Base(p) == base {
			return true
		}
	}
	return false
}
