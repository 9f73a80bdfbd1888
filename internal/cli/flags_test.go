package cli

import (
	"io"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestFlagShadowingClass walks the whole command tree: no command may define
// a flag whose name or shorthand equals a flag that an ancestor makes
// persistent. cobra silently lets the child's flag win for a name (so
// `agentcloud --data DIR call ...` once set the request body), and panics at
// run time for a shorthand.
func TestFlagShadowingClass(t *testing.T) {
	root := newRoot(&globals{stdout: io.Discard, stderr: io.Discard})
	root.InitDefaultHelpFlag()
	var walk func(c *cobra.Command, inherited map[string]string, shorts map[string]string)
	walk = func(c *cobra.Command, inherited, shorts map[string]string) {
		own := func(fs *pflag.FlagSet) {
			fs.VisitAll(func(f *pflag.Flag) {
				if owner, ok := inherited[f.Name]; ok {
					t.Errorf("%q defines --%s, which shadows the persistent flag of %q", c.CommandPath(), f.Name, owner)
				}
				if f.Shorthand != "" {
					if owner, ok := shorts[f.Shorthand]; ok {
						t.Errorf("%q defines -%s (--%s), which collides with the persistent shorthand of %q", c.CommandPath(), f.Shorthand, f.Name, owner)
					}
				}
			})
		}
		if c != root {
			own(c.LocalNonPersistentFlags())
			own(c.PersistentFlags())
		}
		inh, sh := map[string]string{}, map[string]string{}
		for k, v := range inherited {
			inh[k] = v
		}
		for k, v := range shorts {
			sh[k] = v
		}
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) {
			inh[f.Name] = c.CommandPath()
			if f.Shorthand != "" {
				sh[f.Shorthand] = c.CommandPath()
			}
		})
		for _, sub := range c.Commands() {
			walk(sub, inh, sh)
		}
	}
	walk(root, map[string]string{"help": "cobra"}, map[string]string{"h": "cobra"})
}

// TestGlobalDataBeforeSubcommandClass: a global flag given before any
// subcommand keeps its meaning whatever the subcommand defines.
func TestGlobalDataBeforeSubcommandClass(t *testing.T) {
	for _, args := range [][]string{
		{"--data", "/x", "call", "a/b"},
		{"--data", "/x", "status"},
		{"--data", "/x", "sandbox", "exec", "sb", "--", "true"},
		{"--data", "/x", "tools", "call", "ping"},
		{"--data=/x", "run", "--", "true"},
	} {
		g := &globals{stdout: io.Discard, stderr: io.Discard}
		root := newRoot(g)
		c, _, err := root.Find(args)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if err := c.ParseFlags(args); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if g.data != "/x" {
			t.Errorf("%v: global --data = %q, want /x", args, g.data)
		}
	}
}
