package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/spf13/cobra"
)

// loadBundle reads DIR or a .tar.gz file and validates its manifest locally,
// so manifest errors are reported before anything is uploaded.
func loadBundle(path string) (*bundle.Bundle, []byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	var b *bundle.Bundle
	if st.IsDir() {
		b, err = bundle.LoadDir(path)
	} else {
		var data []byte
		if data, err = os.ReadFile(path); err == nil {
			b, err = bundle.LoadTarGz(bytes.NewReader(data))
		}
	}
	if err != nil {
		return nil, nil, err // bundle errors name the path and the field
	}
	tgz, err := b.TarGz()
	if err != nil {
		return nil, nil, fmt.Errorf("pack bundle %s: %w", path, err)
	}
	return b, tgz, nil
}

func newDeployCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "deploy DIR|BUNDLE.tar.gz",
		Short: "Upload an agent bundle as a new immutable version and make it current",
		Long: `Deploy reads a directory (or tar.gz) holding agent.json and the agent's files,
validates the manifest, uploads it as a content-addressed version and points
the agent at it. Sessions pick up the new version on their next request.`,
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
			v, err := c.Deploy(cmd.Context(), tgz)
			if err != nil {
				return fmt.Errorf("deploy %s: %w", args[0], err)
			}
			return g.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "deployed %s version %s (%d files, %d bytes)\n", v.Agent, strings.TrimPrefix(v.Digest, "sha256:")[:12], v.Files, v.Size)
				fmt.Fprintf(w, "call it: agentcloud call %s/SESSION /\n", v.Agent)
			})
		},
	}
}
