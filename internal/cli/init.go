package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/bundle/jsbuild"
	"github.com/spf13/cobra"
)

func newInitCmd(g *globals) *cobra.Command {
	var lang string
	cmd := &cobra.Command{
		Use:   "init NAME",
		Short: "Create a new agent directory: manifest, entry and a test",
		Long: `Init creates the directory NAME holding a new agent of that name: agent.json, the
entry (src/index.ts with --lang ts, the default, or src/index.js), a test in
tests/ that the deploy pipeline runs (tests/index.test.ts or .js), and for TypeScript a package.json,
tsconfig.json and the env declarations of 'agentcloud types'. The agent
deploys as it is ('agentcloud deploy NAME'), and its test passes
('agentcloud test NAME'). NAME must not exist yet.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			files, err := scaffold(filepath.Base(filepath.Clean(dir)), lang)
			if err != nil {
				return err
			}
			if _, err := os.Lstat(dir); err == nil {
				return fmt.Errorf("init: %s already exists; choose another NAME or remove it", dir)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("init: %w", err)
			}
			for name, content := range files {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return fmt.Errorf("init: %w", err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					return fmt.Errorf("init: %w", err)
				}
			}
			fmt.Fprintf(g.stdout, "created %s: agentcloud test %s, then agentcloud deploy %s\n", dir, dir, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&lang, "lang", "ts", "entry language: ts (TypeScript) or js")
	return cmd
}

// scaffold returns the files of a new agent, checked as a bundle.
func scaffold(name, lang string) (map[string]string, error) {
	ext := map[string]string{"ts": ".ts", "js": ".js"}[lang]
	if ext == "" {
		return nil, fmt.Errorf("init: invalid --lang %q: want ts or js", lang)
	}
	manifest := fmt.Sprintf("{\n  \"name\": %q,\n  \"entry\": \"src/index%s\"\n}\n", name, ext)
	m, err := bundle.Parse(fmt.Appendf(nil, `{"name": %q, "entry": "src/index.js"}`, name)) // checks NAME
	if err != nil {
		return nil, fmt.Errorf("init: NAME %q is not an agent name: %w", name, err)
	}
	files := map[string]string{
		bundle.ManifestName:   manifest,
		"tests/index.test.js": scaffoldTest,
		".gitignore":          "node_modules/\n" + jsbuild.OutDir + "/\n",
		"src/index" + ext:     scaffoldJS,
		"README.md":           "# " + name + "\n\nAn agentcloud agent. `agentcloud test .` runs tests/ against it; `agentcloud deploy .` deploys it.\n",
	}
	if lang == "ts" {
		files["src/index.ts"] = scaffoldTS
		files["package.json"] = fmt.Sprintf("{\n  \"name\": %q,\n  \"private\": true,\n  \"type\": \"module\"\n}\n", name)
		files["tsconfig.json"] = scaffoldTSConfig
		m.Entry = "src/index.ts"
		files[jsbuild.TypesFile] = string(jsbuild.Types(m))
		delete(files, "tests/index.test.js")
		files["tests/index.test.ts"] = scaffoldTestTS
	}
	return files, nil
}

const scaffoldTS = `// The agent: one session per id, with durable state (docs/AGENT-API.md).
export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const visits = ((await env.state.get<number>("visits")) ?? 0) + 1;
    await env.state.put("visits", visits);
    return Response.json({ message: ` + "`hello from ${env.session.agent}`" + `, path: url.pathname, visits });
  },
} satisfies AgentHandler;
`

const scaffoldJS = `// The agent: one session per id, with durable state (docs/AGENT-API.md).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const visits = ((await env.state.get("visits")) ?? 0) + 1;
    await env.state.put("visits", visits);
    return Response.json({ message: ` + "`hello from ${env.session.agent}`" + `, path: url.pathname, visits });
  },
};
`

const scaffoldTest = `// Runs in the deploy pipeline's test stage (and 'agentcloud test'): fetches to
// http://session/ reach a fresh session of the agent.
test("answers hello", async () => {
  const res = await fetch("http://session/greet");
  expect(res.status).toBe(200);
  const body = await res.json();
  expect(body.message).toMatch(/^hello from /);
  expect(body.path).toBe("/greet");
});

test("counts visits in durable state", async () => {
  const first = await (await fetch("http://session/")).json();
  const second = await (await fetch("http://session/")).json();
  expect(second.visits).toBe(first.visits + 1);
});
`

// scaffoldTestTS is scaffoldTest in TypeScript (deploy bundles it into
// tests/index.test.js).
var scaffoldTestTS = strings.Replace(scaffoldTest, "const body = await res.json();",
	"const body: { message: string; path: string; visits: number } = await res.json();", 1)

const scaffoldTSConfig = `{
  "compilerOptions": {
    "target": "es2022",
    "module": "esnext",
    "moduleResolution": "bundler",
    "lib": ["es2022", "webworker"],
    "strict": true,
    "noEmit": true
  },
  "include": ["src", "` + jsbuild.TypesFile + `"]
}
`
