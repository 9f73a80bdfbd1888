package cli

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/spf13/cobra"
)

// dashCommands lists every command written `... -- CMD [ARGS...]` with the
// positional arguments it takes before the program.
var dashCommands = map[string][]string{
	"agentcloud run":          nil,
	"agentcloud sandbox exec": {"ID"},
}

// parse runs cobra's own steps (find the command, parse its flags) and then
// the command's Args validator and splitDash, without running it.
func parse(t *testing.T, args []string) (path string, lead, program []string, err error) {
	t.Helper()
	root := newRoot(&globals{stdout: io.Discard, stderr: io.Discard})
	c, rest, err := root.Find(args)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	if err := c.ParseFlags(rest); err != nil {
		return c.CommandPath(), nil, nil, c.FlagErrorFunc()(c, err)
	}
	pos := c.Flags().Args()
	if err := c.ValidateArgs(pos); err != nil {
		return c.CommandPath(), nil, nil, err
	}
	lead, program, err = splitDash(c, pos, dashCommands[c.CommandPath()]...)
	return c.CommandPath(), lead, program, err
}

// TestDashCommandClass: every command that runs a program takes it after
// `--` or at the first non-flag word after its leading arguments, with the
// command's own flags before or after those, and passes the program's words
// (flags, a literal --) through untouched.
func TestDashCommandClass(t *testing.T) {
	// Every command whose usage says `-- CMD` is in the table.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if strings.Contains(c.Use, "-- CMD") {
			if _, ok := dashCommands[c.CommandPath()]; !ok {
				t.Errorf("%q takes -- CMD but is not in dashCommands", c.CommandPath())
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRoot(&globals{stdout: io.Discard, stderr: io.Discard}))

	for prefix, lead := range map[string][]string{
		"run":          nil,
		"sandbox exec": {"sb-1"},
	} {
		pre := strings.Fields(prefix)
		with := func(words ...string) []string { return append(append([]string{}, pre...), words...) }
		in := func(words ...string) []string { return with(append(append([]string{}, lead...), words...)...) }
		ok := []struct {
			args    []string
			program []string
		}{
			{in("--", "bash", "-c", "echo hi > /workspace/a.txt"), []string{"bash", "-c", "echo hi > /workspace/a.txt"}},
			{in("bash", "-c", "echo hi"), []string{"bash", "-c", "echo hi"}},
			{with(append(append([]string{"--cwd", "/tmp"}, lead...), "--", "ls", "-la")...), []string{"ls", "-la"}},
			{in("--cwd", "/tmp", "--", "ls", "--", "-x"), []string{"ls", "--", "-x"}},
			{in("--cwd=/tmp", "-i", "ls", "-la"), []string{"ls", "-la"}},
			{in("--", "--"), []string{"--"}},
			{in("--", "-e"), []string{"-e"}},
			{in("python3", "script.py", "--", "x"), []string{"python3", "script.py", "--", "x"}},
			{append([]string{"--data", "/d"}, in("--", "-e")...), []string{"-e"}},
		}
		for _, c := range ok {
			_, gotLead, program, err := parse(t, c.args)
			if err != nil {
				t.Errorf("%q: %v", c.args, err)
				continue
			}
			if !reflect.DeepEqual(program, c.program) || strings.Join(gotLead, " ") != strings.Join(lead, " ") {
				t.Errorf("%q: lead %q program %q, want %q %q", c.args, gotLead, program, lead, c.program)
			}
		}
		bad := []struct {
			args []string
			want string
		}{
			{in("--"), "missing CMD"},
			{in(), "missing"},
			{in("--cwd", "/tmp"), "missing CMD"},
			{in("--bogus", "--", "ls"), "unknown flag: --bogus"},
		}
		if len(lead) > 0 {
			bad = append(bad,
				struct {
					args []string
					want string
				}{with("--", "sb-1", "ls"), "missing ID before --"},
				struct {
					args []string
					want string
				}{with(), "missing ID"},
			)
		}
		for _, c := range bad {
			_, _, _, err := parse(t, c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%q: error %v, want one containing %q", c.args, err, c.want)
			}
		}
	}
}

// TestDashCommandAgainstDaemon runs the README's forms against a real daemon:
// the program gets exactly the words after --.
func TestDashCommandAgainstDaemon(t *testing.T) {
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable (needs root and user namespaces): %v", err)
	}
	cfg := config.Default()
	cfg.Data, cfg.Listen, cfg.SandboxPoolProcess = t.TempDir(), "127.0.0.1:0", 0
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	data := d.DataDir()
	code, out, errs := runCLI(t, "--data", data, "sandbox", "create")
	if code != 0 {
		t.Fatalf("sandbox create: %d %s", code, errs)
	}
	id := strings.TrimSpace(out)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sandbox", "exec", id, "--", "sh", "-c", `echo "$0|$*"`, "a", "-b", "--"}, "a|-b --\n"},
		{[]string{"sandbox", "exec", id, "--cwd", "/tmp", "--", "pwd"}, "/tmp\n"},
		{[]string{"sandbox", "exec", "--cwd", "/tmp", id, "--", "pwd"}, "/tmp\n"},
		{[]string{"sandbox", "exec", id, "echo", "plain"}, "plain\n"},
		{[]string{"run", "--", "sh", "-c", `echo "$*"`, "x", "-n", "--"}, "-n --\n"},
		{[]string{"run", "echo", "plain"}, "plain\n"},
		{[]string{"sandbox", "exec", id, "sh", "-c", "echo $0", "docker-like"}, "docker-like\n"},
		{[]string{"sandbox", "exec", id, "-e", "A=1", "--", "sh", "-c", `echo "$A"`}, "1\n"},
		{[]string{"sandbox", "exec", id, "-e", "A=2", "sh", "-c", `echo "$A"`}, "2\n"},
		{[]string{"run", "-e", "A=3", "--", "sh", "-c", `echo "$A"`}, "3\n"},
	} {
		code, out, errs := runCLI(t, append([]string{"--data", data}, c.args...)...)
		if code != 0 || out != c.want {
			t.Errorf("%q: exit %d, stdout %q (want %q), stderr %s", c.args, code, out, c.want, errs)
		}
	}
	if code, _, errs := runCLI(t, "--data", data, "sandbox", "exec", id, "--"); code != 1 || !strings.Contains(errs, "missing CMD") {
		t.Errorf("no command: %d %s", code, errs)
	}
}
