package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/store"
)

// PipelineOptions configure Pipeline.
type PipelineOptions struct {
	Target Target
	// Appends to the ledger (durable), by Appenders concurrent appenders.
	Appends   int
	Appenders int
	// Deploys of a small bundle with two passing tests (auto-approved),
	// and Rollbacks between two of its versions.
	Deploys   int
	Rollbacks int
}

// PipelineResult is the result of Pipeline (`agentcloud bench pipeline`).
type PipelineResult struct {
	// LedgerAppendPerSec: durable appends per second to a ledger in a
	// store of its own (fsync on), with Appenders concurrent appenders.
	LedgerAppendPerSec float64 `json:"ledger_append_per_sec"`
	LedgerAppends      int     `json:"ledger_appends"`
	LedgerAppenders    int     `json:"ledger_appenders"`
	// CheckpointMs is the median time to sign and store a checkpoint.
	CheckpointMs float64 `json:"checkpoint_ms"`
	// InclusionProofBytes is the size of the hashes proving an entry in
	// the tree of LedgerAppends entries; ProofVerifyUs the median offline
	// check of one (signed checkpoint and proof).
	InclusionProofBytes int     `json:"inclusion_proof_bytes"`
	ProofVerifyUs       float64 `json:"proof_verify_us"`
	// DeployToLive: POST /v1/agents until the answer that the version
	// serves (validate, build, two JS tests, policy, sign, ledger, rollout).
	DeployToLiveP50Ms float64 `json:"deploy_to_live_p50_ms"`
	DeployToLiveP99Ms float64 `json:"deploy_to_live_p99_ms"`
	Deploys           int     `json:"deploys"`
	// Rollback: POST /v1/agents/{agent}/rollback until it answers.
	RollbackP50Ms float64 `json:"rollback_p50_ms"`
	RollbackP99Ms float64 `json:"rollback_p99_ms"`
	Rollbacks     int     `json:"rollbacks"`
	InProcess     bool    `json:"in_process"`
	Errors        int     `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
}

// Pipeline measures the ledger (in a store of its own) and deploys and
// rollbacks through a daemon's pipeline.
func Pipeline(ctx context.Context, opts PipelineOptions) (*PipelineResult, error) {
	if opts.Appends < 1 || opts.Appenders < 1 || opts.Deploys < 1 || opts.Rollbacks < 1 {
		return nil, errors.New("bench pipeline: --appends, --appenders, --deploys and --rollbacks must be positive")
	}
	res := &PipelineResult{LedgerAppends: opts.Appends, LedgerAppenders: opts.Appenders}
	if err := benchLedger(ctx, opts, res); err != nil {
		return nil, err
	}
	if err := benchDeploys(ctx, opts, res); err != nil {
		return nil, err
	}
	return res, nil
}

// benchLedger appends, checkpoints and proves in a ledger of its own.
func benchLedger(ctx context.Context, opts PipelineOptions, res *PipelineResult) error {
	dir, err := os.MkdirTemp("", "agentcloud-bench-ledger-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer st.Close()
	skey, vkey, err := ledger.GenerateKey("bench.agentcloud/ledger")
	if err != nil {
		return err
	}
	key, err := ledger.ParseKey(skey)
	if err != nil {
		return err
	}
	l, err := ledger.Open(ctx, st, key, ledger.Options{})
	if err != nil {
		return err
	}
	defer l.Close()
	entry := func(i int64) ledger.Entry {
		return ledger.Entry{Type: ledger.TypeChange, Time: time.Unix(1_700_000_000, i).UTC(), Change: &ledger.Change{
			Agent: "bench", Version: fmt.Sprintf("v%d", i), BundleDigest: ledger.DigestOf([]byte(fmt.Sprint(i))),
			Author: ledger.Identity{ID: "spiffe://agentcloud.local/user/bench"}}}
	}
	var next atomic.Int64
	var errs errCount
	start := time.Now()
	var wg sync.WaitGroup
	for range opts.Appenders {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(opts.Appends); i = next.Add(1) - 1 {
				if _, err := l.Append(ctx, entry(i)); err != nil {
					errs.add(err)
					return
				}
			}
		})
	}
	wg.Wait()
	res.LedgerAppendPerSec = float64(int64(float64(opts.Appends) / time.Since(start).Seconds()))
	if errs.n.Load() > 0 {
		return fmt.Errorf("bench ledger: %d appends failed, first: %s", errs.n.Load(), errs.first)
	}
	var cps []time.Duration
	for i := range 20 {
		if _, err := l.Append(ctx, entry(int64(opts.Appends+i))); err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := l.Checkpoint(ctx); err != nil {
			return err
		}
		cps = append(cps, time.Since(t0))
	}
	res.CheckpointMs = round3(pctIn(cps, 50, time.Millisecond))
	idx := uint64(opts.Appends / 2)
	rec, err := l.Entry(ctx, idx)
	if err != nil {
		return err
	}
	p, err := l.Prove(ctx, idx)
	if err != nil {
		return err
	}
	res.InclusionProofBytes = len(p.Hashes) * ledger.HashSize
	var vs []time.Duration
	for range 200 {
		t0 := time.Now()
		if _, err := ledger.VerifyInclusion([]byte(p.Checkpoint), vkey, rec.Raw, p); err != nil {
			return fmt.Errorf("verify inclusion: %w", err)
		}
		vs = append(vs, time.Since(t0))
	}
	res.ProofVerifyUs = pct(vs, 50)
	return nil
}

const benchPipeJS = `export default { async fetch(req) { return new Response("bench VERSION"); } };`

const benchPipeTests = `test("answers", async () => {
  const r = await fetch("http://session/");
  expect(r.status).toBe(200);
});
test("names its version", async () => {
  expect(await (await fetch("http://session/")).text()).toMatch(/^bench /);
});`

// benchDeploys deploys versions of a small agent with two tests, then
// rolls back and forth between the last two.
func benchDeploys(ctx context.Context, opts PipelineOptions, res *PipelineResult) error {
	n, err := connect(ctx, opts.Target, 2, func(c *config.Config) { c.RolloutSteps = "100%" })
	if err != nil {
		return err
	}
	defer n.stop()
	res.InProcess = n.inProcess
	agent := fmt.Sprintf("benchpipe-%d", time.Now().UnixNano()%1_000_000)
	var deploys []time.Duration
	var digests []string
	var errs errCount
	for i := range opts.Deploys + 1 {
		b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"` + agent + `","entry":"agent.js"}`),
			"agent.js": []byte(strings.ReplaceAll(benchPipeJS, "VERSION", fmt.Sprint(i))), "tests/bench.test.js": []byte(benchPipeTests)})
		if err != nil {
			return err
		}
		tgz, err := b.TarGz()
		if err != nil {
			return err
		}
		t0 := time.Now()
		v, err := n.c.Deploy(ctx, tgz)
		d := time.Since(t0)
		if err == nil && v.RunState != "passed" {
			err = fmt.Errorf("run %s is %s", v.Run, v.RunState)
		}
		if err != nil {
			errs.add(err)
			continue
		}
		digests = append(digests, v.Digest)
		if i > 0 { // the first deploy creates the agent (and warms caches)
			deploys = append(deploys, d)
		}
	}
	res.Deploys, res.DeployToLiveP50Ms, res.DeployToLiveP99Ms = len(deploys), round3(pctIn(deploys, 50, time.Millisecond)), round3(pctIn(deploys, 99, time.Millisecond))
	if len(digests) >= 2 {
		var rbs []time.Duration
		for i := range opts.Rollbacks {
			to := digests[len(digests)-1-(i+1)%2] // the previous version, then back
			t0 := time.Now()
			if _, err := n.c.Rollback(ctx, agent, to, "bench"); err != nil {
				errs.add(err)
				continue
			}
			rbs = append(rbs, time.Since(t0))
		}
		res.Rollbacks, res.RollbackP50Ms, res.RollbackP99Ms = len(rbs), round3(pctIn(rbs, 50, time.Millisecond)), round3(pctIn(rbs, 99, time.Millisecond))
	}
	res.Errors, res.FirstError = int(errs.n.Load()), errs.first
	return nil
}

// round3 keeps three decimals.
func round3(x float64) float64 { return float64(int64(x*1000)) / 1000 }
