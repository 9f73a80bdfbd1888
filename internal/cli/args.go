package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Commands that run a program take it after their own arguments:
//
//	agentcloud run [flags] [--] CMD [ARGS...]
//	agentcloud sandbox exec [flags] ID [flags] [--] CMD [ARGS...]
//
// The command's flags may stand before and right after its leading
// arguments (ID). The program starts at `--` (which is dropped) or at the
// first word after the leading arguments that is not a flag; from there on
// every word, flags and further `--` included, belongs to the program. So
// the README's `sandbox exec ID -- bash -c '...'`, `run -- python3 -c '...'`
// and the docker-like `sandbox exec ID sh -c '...'` all mean what they say.
//
// Such a command sets Flags().SetInterspersed(false) and Args:
// cobra.ArbitraryArgs, then calls splitDash once in RunE (it may parse
// flags, so twice would repeat --env values).

// dashCommandFlags prepares cmd for splitDash.
func dashCommandFlags(cmd *cobra.Command) {
	cmd.Flags().SetInterspersed(false)
	cmd.Args = cobra.ArbitraryArgs
}

// splitDash splits the positional arguments cobra left (args) into the
// leading arguments, one per name, and the program with its arguments,
// parsing any of cmd's flags that stand between the two.
func splitDash(cmd *cobra.Command, args []string, names ...string) (lead, program []string, err error) {
	n := len(names)
	usage := cmd.CommandPath()
	for _, name := range names {
		usage += " " + name
	}
	usage += " [flags] -- CMD [ARGS...]"
	if cmd.Flags().ArgsLenAtDash() >= 0 && cmd.Flags().ArgsLenAtDash() < n {
		// `--` came before the leading arguments.
		return nil, nil, fmt.Errorf("missing %s before --: write %s", names[cmd.Flags().ArgsLenAtDash()], usage)
	}
	if len(args) < n {
		return nil, nil, fmt.Errorf("missing %s: write %s", names[len(args)], usage)
	}
	lead, rest := args[:n], args[n:]
	if cmd.Flags().ArgsLenAtDash() < 0 && len(rest) > 0 && strings.HasPrefix(rest[0], "-") && rest[0] != "-" {
		// Flags after the leading arguments: parse them with the same
		// flag values, up to `--` or the first word that is not a flag.
		fs := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.SetInterspersed(false)
		fs.AddFlagSet(cmd.Flags())
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, pflag.ErrHelp) {
				return nil, nil, err
			}
			return nil, nil, fmt.Errorf("%w\nhint: write %s (the program's own flags go after --)", err, usage)
		}
		rest = fs.Args()
	}
	if len(rest) == 0 {
		return nil, nil, fmt.Errorf("missing CMD: write %s", usage)
	}
	return lead, rest, nil
}
