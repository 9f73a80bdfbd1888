package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agentcloud/agentcloud/client"
)

func newSandboxShellCmd(g *globals) *cobra.Command {
	var opt client.TerminalOptions
	cmd := &cobra.Command{
		Use:   "shell ID [-- PROGRAM [ARGS...]]",
		Short: "Open an interactive terminal in a sandbox (bash unless PROGRAM is given)",
		Long: `Open a terminal in the sandbox: PROGRAM (default bash) runs on a pseudo-terminal made
inside it, joined to this one over a WebSocket. When standard input is a terminal it is
put in raw mode, so keys such as Ctrl-C and Tab go to the program, and the window size
follows this terminal's. Otherwise standard input is sent as typed input and, at its end,
Ctrl-D. Exits with the program's exit status. Both tiers; a gVisor sandbox's terminal is
made by its exec agent (none without python3).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				opt.Cmd, opt.Args = args[1], args[2:]
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			return g.shell(cmd.Context(), c, args[0], opt, cmd.InOrStdin())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.Cwd, "cwd", "", "working directory inside the sandbox (default /workspace)")
	f.StringVar(&opt.Term, "term", "", "the TERM variable inside (default: this terminal's $TERM, or xterm-256color)")
	return cmd
}

// shell joins stdin and stdout to a terminal in sandbox id.
func (g *globals) shell(ctx context.Context, c *client.Client, id string, opt client.TerminalOptions, stdin io.Reader) error {
	in, _ := stdin.(*os.File)
	raw := in != nil && term.IsTerminal(int(in.Fd()))
	if raw {
		if w, h, err := term.GetSize(int(in.Fd())); err == nil {
			opt.Rows, opt.Cols = h, w
		}
		if opt.Term == "" {
			opt.Term = os.Getenv("TERM")
		}
	}
	t, err := c.OpenTerminal(ctx, id, opt)
	if err != nil {
		return err
	}
	defer t.Close()
	if raw {
		old, err := term.MakeRaw(int(in.Fd()))
		if err != nil {
			return fmt.Errorf("raw terminal mode: %w", err)
		}
		defer func() { _ = term.Restore(int(in.Fd()), old) }()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, h, err := term.GetSize(int(in.Fd())); err == nil {
					_ = t.Resize(h, w)
				}
			}
		}()
	}
	go func() {
		_, _ = io.Copy(t, stdin)
		if !raw {
			_, _ = t.Write([]byte{4}) // Ctrl-D: end of input for the program
		}
	}()
	code, err := t.Copy(g.stdout)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}
