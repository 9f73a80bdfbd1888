package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// sandboxFlags are the create options shared by `sandbox create` and `run`.
type sandboxFlags struct {
	tier, template string
	timeout        time.Duration
	cpus           float64
	memoryMB, pids int
	diskMB         int
	env, labels    []string
	egress         []string
	secrets        []string
	volumes        []string
}

func (f *sandboxFlags) register(fs *pflag.FlagSet, defaultTimeout time.Duration) {
	fs.StringVar(&f.tier, "tier", api.SandboxTierProcess, "isolation tier: process or gvisor")
	fs.StringVar(&f.template, "template", api.SandboxTemplateHost, "sandbox template")
	fs.DurationVar(&f.timeout, "timeout", defaultTimeout, "sandbox lifetime (0 = server default)")
	fs.Float64Var(&f.cpus, "cpus", 0, "CPU limit in cores (0 = server default)")
	fs.IntVar(&f.memoryMB, "memory-mb", 0, "memory limit in MiB (0 = server default)")
	fs.IntVar(&f.pids, "pids", 0, "process limit (0 = server default)")
	fs.IntVar(&f.diskMB, "disk-mb", 0, "size of /workspace and /tmp in MiB (0 = server default)")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	fs.StringArrayVar(&f.labels, "label", nil, "metadata KEY=VALUE (repeatable)")
	fs.StringArrayVar(&f.egress, "egress", nil, "host the sandbox may reach through the egress proxy, e.g. api.example.com or *.example.com (ports 80 and 443), or api.example.com:8443 (that port only); repeatable")
	fs.StringArrayVar(&f.secrets, "secret", nil, "secret the proxy may fill in for {{secret:NAME}} headers to its allowed hosts (repeatable)")
	fs.StringArrayVar(&f.volumes, "volume", nil, "mount one of your volumes: NAME:PATH[:ro], PATH below /workspace or /mnt (repeatable)")
}

func (f *sandboxFlags) request() (api.CreateSandboxRequest, error) {
	env, err := keyValues("--env", f.env)
	if err != nil {
		return api.CreateSandboxRequest{}, err
	}
	labels, err := keyValues("--label", f.labels)
	if err != nil {
		return api.CreateSandboxRequest{}, err
	}
	if f.timeout < 0 {
		return api.CreateSandboxRequest{}, fmt.Errorf("invalid --timeout %s: must not be negative", f.timeout)
	}
	vols, err := volumeFlags(f.volumes)
	if err != nil {
		return api.CreateSandboxRequest{}, err
	}
	return api.CreateSandboxRequest{
		Tier: f.tier, Template: f.template, TimeoutS: f.timeout.Seconds(),
		Limits: api.SandboxLimits{CPUs: f.cpus, MemoryMB: f.memoryMB, Pids: f.pids, DiskMB: f.diskMB},
		Env:    env, Metadata: labels, Egress: f.egress, Secrets: f.secrets, Volumes: vols,
	}, nil
}

// keyValues parses KEY=VALUE flags.
func keyValues(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid %s %q: write it as KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

func newSandboxCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "sandbox", Aliases: []string{"sandboxes", "sb"},
		Short: "Create sandboxes, run commands and copy files in them"}
	cmd.AddCommand(newSandboxCreateCmd(g), newSandboxListCmd(g), newSandboxExecCmd(g), newSandboxCpCmd(g),
		newSandboxLsCmd(g), newSandboxRmCmd(g), newSandboxPortForwardCmd(g), newSandboxShellCmd(g),
		sandboxOpCmd(g, "show", "Show one sandbox", (*client.Client).Sandbox),
		sandboxOpCmd(g, "pause", "Freeze every process of a sandbox", (*client.Client).PauseSandbox),
		sandboxOpCmd(g, "resume", "Thaw a paused sandbox", (*client.Client).ResumeSandbox),
		sandboxOpCmd(g, "start", "Run a stopped sandbox (after a daemon restart) again with its files", (*client.Client).StartSandbox),
		newSandboxForkCmd(g))
	cmd.AddCommand(newSnapshotCmds(g)...)
	return cmd
}

func newSandboxCreateCmd(g *globals) *cobra.Command {
	var f sandboxFlags
	cmd := &cobra.Command{
		Use: "create", Short: "Create a sandbox and print its id", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.request()
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			sb, err := c.CreateSandbox(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.print(sb, func(w io.Writer) { fmt.Fprintln(w, sb.ID) })
		},
	}
	f.register(cmd.Flags(), 0)
	return cmd
}

func newSandboxListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List live sandboxes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			sbs, err := c.Sandboxes(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(sbs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SANDBOX\tTIER\tTEMPLATE\tSTATE\tCREATED\tEXPIRES")
				for _, s := range sbs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Tier, s.Template, sandboxState(s),
						s.Created.Local().Format(time.DateTime), s.Expires.Local().Format(time.DateTime))
				}
				tw.Flush()
			})
		},
	}
}

func sandboxState(s api.Sandbox) string {
	switch {
	case s.State != "": // running, paused or failed
		return s.State
	case s.Paused:
		return "paused"
	}
	return "running"
}

func printSandbox(w io.Writer, s *api.Sandbox) {
	fmt.Fprintf(w, "sandbox:  %s\ntier:     %s\ntemplate: %s\nstate:    %s\ncreated:  %s\nexpires:  %s\nlimits:   %g cpus, %d MiB memory, %d pids, %d MiB disk\n",
		s.ID, s.Tier, s.Template, sandboxState(*s), s.Created.Local().Format(time.DateTime),
		s.Expires.Local().Format(time.DateTime), s.Limits.CPUs, s.Limits.MemoryMB, s.Limits.Pids, s.Limits.DiskMB)
	if s.Failure != "" {
		fmt.Fprintf(w, "failure:  %s\n", s.Failure)
	}
}

func sandboxOpCmd(g *globals, use, short string, op func(*client.Client, context.Context, string) (*api.Sandbox, error)) *cobra.Command {
	return &cobra.Command{
		Use: use + " ID", Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			sb, err := op(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(sb, func(w io.Writer) { printSandbox(w, sb) })
		},
	}
}

func newSandboxForkCmd(g *globals) *cobra.Command {
	var (
		count  int
		paused bool
	)
	cmd := &cobra.Command{
		Use: "fork ID", Short: "Make copies of a sandbox, each with a copy of its /workspace", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 1 || count > 100 {
				return fmt.Errorf("--count %d: must be 1 to 100", count)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			forks, err := c.ForkSandboxWith(cmd.Context(), args[0], api.ForkSandboxRequest{Count: count, Paused: paused})
			if err != nil {
				return err
			}
			return g.print(api.SandboxList{Sandboxes: forks}, func(w io.Writer) {
				for _, sb := range forks {
					fmt.Fprintln(w, sb.ID)
				}
			})
		},
	}
	cmd.Flags().IntVar(&count, "count", 1, "how many copies (1 to 100)")
	cmd.Flags().BoolVar(&paused, "paused", false, "make the copies without running them: paused with the source's memory on the gvisor tier (sandbox resume runs it), stopped with its files otherwise (sandbox start)")
	return cmd
}

func newSandboxRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "rm ID...", Aliases: []string{"delete"}, Short: "Delete sandboxes", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var errs []error
			for _, id := range args {
				if err := c.DeleteSandbox(cmd.Context(), id); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", id, err))
					continue
				}
				fmt.Fprintf(g.stderr, "deleted %s\n", id)
			}
			return errors.Join(errs...)
		},
	}
}

// execFlags are the per-command options of `sandbox exec` and `run`.
type execFlags struct {
	cwd   string
	stdin bool
}

func (f *execFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.cwd, "cwd", "", "working directory inside the sandbox (default /workspace)")
	fs.BoolVarP(&f.stdin, "interactive", "i", false, "send this program's standard input to the command")
}

func (f *execFlags) request(args []string, env []string, stdin io.Reader) (api.ExecRequest, error) {
	e, err := keyValues("--env", env)
	if err != nil {
		return api.ExecRequest{}, err
	}
	req := api.ExecRequest{Cmd: args[0], Args: args[1:], Env: e, Cwd: f.cwd}
	if f.stdin {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return req, fmt.Errorf("read standard input for -i: %w", err)
		}
		req.Stdin = string(b)
	}
	return req, nil
}

// streamExec runs req and copies its output as it comes. A non-zero exit
// status becomes exitCode, so the CLI exits with it.
func (g *globals) streamExec(ctx context.Context, c *client.Client, id string, req api.ExecRequest) error {
	code, err := c.Exec(ctx, id, req, g.stdout, g.stderr)
	if err != nil {
		if code > 0 { // a limit was hit; the status still counts
			fmt.Fprintf(g.stderr, "agentcloud: %s\n", describe(err))
			return exitCode(code)
		}
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

func newSandboxExecCmd(g *globals) *cobra.Command {
	var f execFlags
	var env []string
	var timeout time.Duration
	var background bool
	var outFile string
	cmd := &cobra.Command{
		Use:   "exec ID [flags] -- CMD [ARGS...]",
		Short: "Run a command in a sandbox, streaming its output; exits with its status",
		Long: `exec runs CMD in sandbox ID with its output streamed as it is produced and
exits with CMD's status. Flags of exec go before or right after ID; the
command starts at -- or at the first word that is not a flag.

  agentcloud sandbox exec sb-1234 -- bash -c 'echo hi > /workspace/a.txt'
  agentcloud sandbox exec sb-1234 --timeout 10s -- python3 /workspace/main.py`,
		RunE: func(cmd *cobra.Command, args []string) error {
			lead, program, err := splitDash(cmd, args, "ID")
			if err != nil {
				return err
			}
			id := lead[0]
			req, err := f.request(program, env, os.Stdin)
			if err != nil {
				return err
			}
			if timeout < 0 {
				return fmt.Errorf("invalid --timeout %s: must not be negative", timeout)
			}
			req.TimeoutS = timeout.Seconds()
			c, err := g.client()
			if err != nil {
				return err
			}
			if background {
				req.OutputFile = outFile
				pid, err := c.StartProcess(cmd.Context(), id, req)
				if err != nil {
					return err
				}
				return g.print(api.ExecStarted{PID: pid}, func(w io.Writer) { fmt.Fprintln(w, pid) })
			}
			if outFile != "" {
				return fmt.Errorf("--output-file needs --background: foreground output is printed")
			}
			return g.streamExec(cmd.Context(), c, id, req)
		},
	}
	f.register(cmd.Flags())
	dashCommandFlags(cmd)
	cmd.Flags().StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "kill the command after this long (0 = no limit)")
	cmd.Flags().BoolVarP(&background, "background", "d", false, "start the command in the background and print its pid")
	cmd.Flags().StringVar(&outFile, "output-file", "", "with --background: file under /workspace or /tmp for its output")
	return cmd
}

// splitRemote parses ID:/path; ok is false for a local path.
func splitRemote(s string) (id, path string, ok bool) {
	id, path, ok = strings.Cut(s, ":")
	if !ok || id == "" || strings.ContainsAny(id, `/\`) || filepath.VolumeName(s) != "" {
		return "", "", false
	}
	return id, path, true
}

func newSandboxCpCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy a file between this machine and a sandbox (ID:/workspace/x)",
		Long: `cp copies one file into or out of a sandbox:

  agentcloud sandbox cp ./main.py sb-1234:/workspace/main.py
  agentcloud sandbox cp sb-1234:/workspace/out.csv ./out.csv

A local path of - is standard input or output. A destination ending in /
keeps the source's file name.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst := args[0], args[1]
			sid, spath, sRemote := splitRemote(src)
			did, dpath, dRemote := splitRemote(dst)
			if sRemote == dRemote {
				return fmt.Errorf("cp %s %s: exactly one of SRC and DST must be a sandbox path written ID:/path", src, dst)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if dRemote {
				var r io.Reader = os.Stdin
				var mode uint32
				if src != "-" {
					f, err := os.Open(src)
					if err != nil {
						return fmt.Errorf("cp: %w", err)
					}
					defer f.Close()
					if fi, err := f.Stat(); err == nil {
						mode = uint32(fi.Mode().Perm())
					}
					r = f
					if strings.HasSuffix(dpath, "/") {
						dpath += filepath.Base(src)
					}
				}
				fi, err := c.WriteFile(ctx, did, dpath, r, mode)
				if err != nil {
					return err
				}
				return g.print(fi, func(w io.Writer) { fmt.Fprintf(g.stderr, "copied %d bytes to %s:%s\n", fi.Size, did, fi.Path) })
			}
			rc, err := c.ReadFile(ctx, sid, spath)
			if err != nil {
				return err
			}
			defer rc.Close()
			if dst == "-" {
				_, err := io.Copy(g.stdout, rc)
				return err
			}
			if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
				dst = filepath.Join(dst, filepath.Base(spath))
			}
			f, err := os.Create(dst)
			if err != nil {
				return fmt.Errorf("cp: %w", err)
			}
			n, err := io.Copy(f, rc)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("cp %s: %w", dst, err)
			}
			fmt.Fprintf(g.stderr, "copied %d bytes to %s\n", n, dst)
			return nil
		},
	}
}

func newSandboxLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "ls ID[:/path]", Short: "List files in a sandbox (default /workspace)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, p, _ := strings.Cut(args[0], ":")
			c, err := g.client()
			if err != nil {
				return err
			}
			files, err := c.ListFiles(cmd.Context(), id, p)
			if err != nil {
				return err
			}
			return g.print(files, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				for _, f := range files {
					name := f.Name
					if f.IsDir {
						name += "/"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", f.Mode, f.Size, f.ModTime.Local().Format(time.DateTime), name)
				}
				tw.Flush()
			})
		},
	}
}
