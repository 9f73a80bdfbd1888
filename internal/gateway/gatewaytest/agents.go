package gatewaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/identity"
)

// AgentProcessEnv carries the flooding agents' spec (JSON) to a process
// started for FloodConfig.AgentProcess.
const AgentProcessEnv = "AGENTCLOUD_FLOOD_AGENTS"

func agentName(i int) string { return fmt.Sprintf("batch-%02d/run", i) }

// agentSpec is what the flooding agents do: Agents identities (their
// JWT-SVIDs minted from the CA in Dir) each GET URL PerAgent times a
// second, open loop, for Duration.
type agentSpec struct {
	URL      string        `json:"url"`
	Dir      string        `json:"dir"`
	Agents   int           `json:"agents"`
	PerAgent float64       `json:"per_agent"`
	Duration time.Duration `json:"duration"`
}

// agentRun is a flood under way, in this process or another.
type agentRun struct {
	wait func() ([]int, error) // each agent's requests answered 200 in time
}

// startAgents starts the flood: in a process of its own when argv is set,
// else in this one with client. runCtx ends the flood; reqCtx abandons
// the requests still out.
func startAgents(runCtx, reqCtx context.Context, argv []string, spec agentSpec, ids *Identities, client *http.Client) (*agentRun, error) {
	if len(argv) == 0 {
		ok := make([]int, spec.Agents)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			floodAgents(runCtx, reqCtx, spec, ids, client, ok)
		}()
		return &agentRun{wait: func() ([]int, error) { wg.Wait(); return ok, nil }}, nil
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), AgentProcessEnv+"="+string(js))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the agents' process: %w", err)
	}
	return &agentRun{wait: func() ([]int, error) {
		// The process stops by itself after spec.Duration; a grace period
		// covers a slow start on a loaded machine.
		timer := time.AfterFunc(spec.Duration+30*time.Second, func() { _ = cmd.Process.Kill() })
		defer timer.Stop()
		if err := cmd.Wait(); err != nil {
			return nil, fmt.Errorf("the agents' process: %w: %.500s", err, errOut.String())
		}
		var ok []int
		if err := json.Unmarshal(out.Bytes(), &ok); err != nil || len(ok) != spec.Agents {
			return nil, fmt.Errorf("the agents' process answered %.200q: %v", out.String(), err)
		}
		return ok, nil
	}}, nil
}

// RunAgentProcess floods as the agents when this process was started for
// FloodConfig.AgentProcess (AgentProcessEnv is set): it runs the flood,
// writes each agent's successful requests to stdout as a JSON array and
// returns true, and the caller should then exit. Otherwise it returns
// false at once.
func RunAgentProcess() (bool, error) {
	js := os.Getenv(AgentProcessEnv)
	if js == "" {
		return false, nil
	}
	var spec agentSpec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		return true, fmt.Errorf("%s: %w", AgentProcessEnv, err)
	}
	if spec.Agents < 1 || spec.Agents > 10000 || !(spec.PerAgent > 0) || spec.Duration <= 0 || spec.Duration > time.Hour || spec.URL == "" || spec.Dir == "" {
		return true, errors.New(AgentProcessEnv + ": want url, dir, 1 to 10000 agents, a positive per_agent rate and a duration up to an hour")
	}
	ids, err := NewIdentities(spec.Dir)
	if err != nil {
		return true, err
	}
	// Requests still out when the flood ends are abandoned.
	runCtx, cancel := context.WithTimeout(context.Background(), spec.Duration)
	defer cancel()
	transport := &http.Transport{MaxIdleConns: 2048, MaxIdleConnsPerHost: 2048, IdleConnTimeout: 30 * time.Second}
	ok := make([]int, spec.Agents)
	floodAgents(runCtx, runCtx, spec, ids, &http.Client{Transport: transport, Timeout: 30 * time.Second}, ok)
	transport.CloseIdleConnections()
	return true, json.NewEncoder(os.Stdout).Encode(ok)
}

// floodAgents runs the agents until runCtx ends, each on its own schedule
// spread over one interval, one goroutine per request (open loop), and
// counts in ok each agent's requests answered 200 before the end.
func floodAgents(runCtx, reqCtx context.Context, spec agentSpec, ids *Identities, client *http.Client, ok []int) {
	var mu sync.Mutex // protects ok
	var wg sync.WaitGroup
	defer func() {
		<-runCtx.Done()
		wg.Wait()
	}()
	interval := time.Duration(float64(time.Second) / spec.PerAgent)
	start := time.Now()
	for i := range spec.Agents {
		tok, err := ids.Token(identity.KindSession, agentName(i))
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			offset := time.Duration(int64(interval) * int64(i) / int64(spec.Agents))
			tick := time.NewTimer(offset)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-runCtx.Done():
					return
				case <-tick.C:
				}
				tick.Reset(time.Until(start.Add(offset + time.Duration(n+1)*interval)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					if sendGet(reqCtx, client, spec.URL, tok) == http.StatusOK && runCtx.Err() == nil {
						mu.Lock()
						ok[i]++
						mu.Unlock()
					}
				}()
			}
		}()
	}
}

// sendGet GETs url with a bearer token and returns the status (0 on error).
func sendGet(ctx context.Context, c *http.Client, url, tok string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
