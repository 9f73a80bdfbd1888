package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/bundle/jsbuild"
	"github.com/spf13/cobra"
)

func newTypesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "types [DIR]",
		Short: "Write TypeScript declarations for an agent's env from its manifest",
		Long: `Types reads DIR/agent.json (DIR defaults to the current directory) and writes
DIR/` + jsbuild.TypesFile + `: global declarations of Env (env.session, env.state,
env.tools, env.ai, env.sandbox and each manifest env value), AgentHandler (fetch,
alarm, webSocketMessage, webSocketClose) and its ctx, AgentContext, what the runtime
adds to the webworker lib (WebSocketPair, the server WebSocket's accept and
attachments, Response's webSocket, scheduler), and the manifest's tools and secrets
as ToolName and SecretName unions. Run it again after changing the manifest. It
needs no daemon.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			b, err := bundle.LoadSourceDir(dir)
			if err != nil {
				return err
			}
			out := filepath.Join(dir, jsbuild.TypesFile)
			if err := os.WriteFile(out, jsbuild.Types(b.Manifest), 0o644); err != nil {
				return fmt.Errorf("types: %w", err)
			}
			fmt.Fprintf(g.stdout, "wrote %s\n", out)
			return nil
		},
	}
}
