package doctest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/testdeps"
)

var update = flag.Bool("update", false, "rewrite testdata/openapi.json from the daemon's /openapi.json")

// openAPIDoc starts a daemon and returns its /openapi.json, indented, with
// the build version replaced by "dev", and an admin client.
func openAPIDoc(t *testing.T) ([]byte, *client.Client) {
	t.Helper()
	url, token := startDaemon(t)
	c, err := client.New(url, token)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := c.Do(context.Background(), "GET", "/openapi.json", nil, &doc); err != nil {
		t.Fatal(err)
	}
	doc["info"].(map[string]any)["version"] = "dev"
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n'), c
}

// TestOpenAPIGolden holds /openapi.json to testdata/openapi.json, so every
// change on the wire shows in review. go test ./internal/doctest -run
// TestOpenAPIGolden -update rewrites it.
func TestOpenAPIGolden(t *testing.T) {
	got, _ := openAPIDoc(t)
	golden := filepath.Join("testdata", "openapi.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("/openapi.json differs from %s from line %d:\n got: %s\nwant: %s\nIf the change is intended, run go test ./internal/doctest -run TestOpenAPIGolden -update and review the diff.", golden, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("/openapi.json has %d lines, %s %d; run with -update if intended", len(gl), golden, len(wl))
	}
}

// TestOpenAPILint runs Redocly CLI's recommended rules over the daemon's
// real /openapi.json: zero errors and zero warnings. Redocly is pinned by
// testdata/redocly/package-lock.json and installed by scripts/deps.sh; it
// runs without network (its own network namespace when root, telemetry
// and update checks off).
func TestOpenAPILint(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testdeps.Missing(t, "node is not installed (scripts/deps.sh installs it): cannot run the Redocly linter")
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "redocly"))
	cli := filepath.Join(dir, "node_modules", "@redocly", "cli", "bin", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("Redocly CLI is not installed: run scripts/deps.sh (npm ci in %s): %v", dir, err)
	}
	doc, _ := openAPIDoc(t)
	file := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, cli, "lint", "--config", filepath.Join(dir, "redocly.yaml"), "--format", "json", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_UPDATE_NOTIFIER=1")
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res struct {
		Totals struct {
			Errors   int `json:"errors"`
			Warnings int `json:"warnings"`
		} `json:"totals"`
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string `json:"severity"`
			Message  string `json:"message"`
			Location []struct {
				Pointer string `json:"pointer"`
			} `json:"location"`
		} `json:"problems"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("redocly lint: %v (%v)\nstdout: %s\nstderr: %s", runErr, err, stdout.String(), stderr.String())
	}
	for _, p := range res.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer
		}
		t.Errorf("%s %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
	}
	if res.Totals.Errors+res.Totals.Warnings != 0 || runErr != nil {
		t.Fatalf("redocly lint: %d errors, %d warnings (%v)", res.Totals.Errors, res.Totals.Warnings, runErr)
	}
}

// anyWildcard is a path wildcard such as {sandbox}.
var anyWildcard = regexp.MustCompile(`\{[a-z_]+\}`)

// TestQueryParamsDeclaredClass runs over the daemon's real route table (as
// /openapi.json lists it): every operation refuses a query parameter it
// does not declare and a declared integer that is not one, with a 400
// invalid-query-parameter problem naming it, before any handler runs.
func TestQueryParamsDeclaredClass(t *testing.T) {
	b, c := openAPIDoc(t)
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name   string `json:"name"`
				In     string `json:"in"`
				Schema struct {
					Type string `json:"type"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, item := range doc.Paths {
		switch {
		case strings.HasPrefix(path, "/agents/"):
			continue // a session's own URL: its query belongs to the agent
		case strings.HasPrefix(path, "/public/{agent}/{session}"):
			continue // a public session's own URL, likewise
		case strings.Contains(path, "/ports/{port}/") || strings.HasPrefix(path, "/v1/public/sandbox-ports/"):
			continue // a sandbox port's URL: its query belongs to the program listening there
		case strings.HasPrefix(path, "/e2b/"):
			continue // E2B's API: its parameters and error format are E2B's (TestE2BMalformedRequestClass)
		}
		// Numbers and hashes get their own forms; every other wildcard
		// (a new one too) an identifier every id rule accepts.
		concrete := strings.NewReplacer("{pid}", "1", "{entry}", "1", "{hash}", "ab").Replace(path)
		concrete = anyWildcard.ReplaceAllString(concrete, "x1")
		for method, op := range item {
			try := func(query, field string) {
				resp, err := c.Raw(context.Background(), strings.ToUpper(method), concrete+"?"+query, nil, "")
				if err != nil {
					var p *api.Problem
					if !errors.As(err, &p) || p.Kind() != api.KindInvalidQuery || p.Field != field {
						t.Errorf("%s %s?%s: %v, want %s on %s", method, concrete, query, err, api.KindInvalidQuery, field)
					}
					return
				}
				resp.Body.Close()
				t.Errorf("%s %s?%s: %d, want 400 %s", method, concrete, query, resp.StatusCode, api.KindInvalidQuery)
			}
			try("no_such_parameter=1", "no_such_parameter")
			n++
			for _, p := range op.Parameters {
				if p.In == "query" && p.Schema.Type == "integer" {
					try(url.Values{p.Name: {"not-a-number"}}.Encode(), p.Name)
				}
			}
		}
	}
	if n < 40 {
		t.Fatalf("only %d operations tried", n)
	}
}
