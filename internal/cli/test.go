package cli

import (
	"fmt"
	"io"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newTestCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "test DIR|BUNDLE.tar.gz",
		Short: "Run a bundle's tests as the deploy pipeline would, without deploying it",
		Long: `Test uploads the bundle and runs its tests/*.test.js in fresh isolates against a
fresh session of it (and the manifest's test command in a sandbox), exactly as
the deploy pipeline's test stage does, without making it current. It prints
each test and exits non-zero when one fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, tgz, err := loadBundle(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			rep, err := c.TestBundle(cmd.Context(), tgz)
			if err != nil {
				return fmt.Errorf("test %s: %w", args[0], err)
			}
			total, failed := 0, 0
			if err := g.print(rep, func(w io.Writer) {
				for _, f := range rep.Files {
					if f.Error != "" {
						fmt.Fprintf(w, "FAIL %s did not load: %s\n", f.File, firstLine(f.Error))
					}
					for _, tc := range f.Tests {
						fmt.Fprintf(w, "%-4s %s › %s (%d ms)\n", map[string]string{api.TestPassed: "ok", api.TestFailed: "FAIL", api.TestSkipped: "skip"}[tc.Result], f.File, tc.Name, tc.DurationMs)
						if tc.Error != "" {
							fmt.Fprintf(w, "     %s\n", firstLine(tc.Error))
						}
					}
				}
				if rep.Command != nil {
					fmt.Fprintf(w, "test command %q exited %d\n", rep.Command.Command, rep.Command.ExitCode)
				}
			}); err != nil {
				return err
			}
			for _, f := range rep.Files {
				if f.Error != "" {
					failed++
				}
				for _, tc := range f.Tests {
					total++
					if tc.Result == api.TestFailed {
						failed++
					}
				}
			}
			if !rep.Passed || failed > 0 {
				return fmt.Errorf("test %s: %d of %d tests failed", args[0], failed, total)
			}
			if g.output != "json" {
				fmt.Fprintf(g.stdout, "%d tests passed\n", total)
			}
			return nil
		},
	}
}
