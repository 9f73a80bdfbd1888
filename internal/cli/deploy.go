package cli

import (
	"bytes"
	"fmt"
	"os"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/bundle/jsbuild"
	"github.com/spf13/cobra"
)

// loadBundle reads DIR or a .tar.gz file and validates its manifest locally,
// so manifest errors are reported before anything is uploaded. A directory
// with a TypeScript entry or a package.json is built first (esbuild, see
// internal/bundle/jsbuild): the upload holds the bundled module and its
// source map.
func loadBundle(path string) (*bundle.Bundle, []byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	var b *bundle.Bundle
	if st.IsDir() {
		var res *jsbuild.Result
		if res, err = jsbuild.BuildDir(path); err == nil {
			b = res.Bundle
		}
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
		Short: "Upload an agent bundle and send it through the deploy pipeline",
		Long: `Deploy reads a directory (or tar.gz) holding agent.json and the agent's files,
validates the manifest, bundles a TypeScript entry or npm dependencies (a
package.json) into one module with esbuild, and uploads it as a content-addressed version, whose
pipeline run then validates, builds, tests (tests/*.test.js, the manifest's
test command), asks the policy gate, waits for a review when policy asks for
one, signs, records in the ledger and rolls it out. Each stage is shown as it
runs (-o json: each event as a JSON document, then the run). Deploy exits non-zero
with the failing stage's reason; a run that waits for review is not a failure
(agentcloud pipeline approve RUN).`,
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
			return g.deployProgress(cmd.Context(), c, args[0], tgz)
		},
	}
}
