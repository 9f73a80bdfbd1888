package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/gateway"
	"github.com/agentcloud/agentcloud/internal/identity"
)

// FloodConfig describes one run of the flood harness. Zero fields take the
// defaults of DefaultFloodConfig.
type FloodConfig struct {
	// Seats is the gateway's (fixed) concurrency limit and ServiceTime the
	// handler's fixed service time: capacity is Seats/ServiceTime requests
	// per second.
	Seats       int
	ServiceTime time.Duration
	// Agents flooding identities together offer FloodFactor times the
	// capacity, open loop, as agent-batch traffic.
	Agents      int
	FloodFactor float64
	// HumanRate is the human-interactive client's steady request rate; it
	// waits for each answer (a closed loop), so keep 1/HumanRate above
	// ServiceTime.
	HumanRate float64
	// Unloaded is how long the human runs alone; Phase how long each flood
	// phase lasts.
	Unloaded, Phase time.Duration
	// FairnessOnly adds a phase with one priority level and fair queuing,
	// to separate what classes add from what fair queuing alone does.
	FairnessOnly bool
	// Dir holds the throwaway CA (required).
	Dir string
	// SVGPath, when set, receives a plot of the human's latency over time.
	SVGPath string
	// AgentProcess, when set, is the command line of a process that
	// floods as the agents (it must call RunAgentProcess first thing and
	// is given the environment variable AgentProcessEnv): a flood
	// comes from other machines, not from the server's own process, where
	// the flooding clients' goroutines would queue with the human's. Empty:
	// the agents run in this process.
	AgentProcess []string
}

// withDefaults fills cfg's zero fields from DefaultFloodConfig.
func (cfg FloodConfig) withDefaults() FloodConfig {
	def := DefaultFloodConfig()
	if cfg.Seats <= 0 {
		cfg.Seats = def.Seats
	}
	if cfg.ServiceTime <= 0 {
		cfg.ServiceTime = def.ServiceTime
	}
	if cfg.Agents <= 0 {
		cfg.Agents = def.Agents
	}
	if cfg.FloodFactor <= 0 {
		cfg.FloodFactor = def.FloodFactor
	}
	if cfg.HumanRate <= 0 {
		cfg.HumanRate = def.HumanRate
	}
	if cfg.Unloaded <= 0 {
		cfg.Unloaded = def.Unloaded
	}
	if cfg.Phase <= 0 {
		cfg.Phase = def.Phase
	}
	return cfg
}

// DefaultFloodConfig is the harness's default run.
func DefaultFloodConfig() FloodConfig {
	return FloodConfig{Seats: 10, ServiceTime: 200 * time.Millisecond, Agents: 50, FloodFactor: 10, HumanRate: 4,
		Unloaded: 4 * time.Second, Phase: 8 * time.Second}
}

// FloodReport is what a run measured.
type FloodReport struct {
	// CapacityRPS is Seats/ServiceTime; FloodRPS what the agents offered.
	CapacityRPS float64 `json:"capacity_rps"`
	FloodRPS    float64 `json:"flood_rps"`
	// Human latency (client side, whole HTTP round trip) p99 in ms, alone
	// and under the flood with priority classes on, off (one level, one
	// FIFO queue) and, if run, with fair queuing but no classes.
	HumanP99MsUnloaded        float64 `json:"human_p99_ms_unloaded"`
	HumanP99MsFloodClassesOn  float64 `json:"human_p99_ms_flood_classes_on"`
	HumanP99MsFloodClassesOff float64 `json:"human_p99_ms_flood_classes_off"`
	HumanP99MsFloodFairOnly   float64 `json:"human_p99_ms_flood_fairness_only,omitempty"`
	// The same p99s counted by the scheduler instead of timed on the
	// wire: the service time plus the human's queue wait as the gateway
	// measured it. Machine load does not move these.
	HumanSchedP99MsUnloaded        float64 `json:"human_sched_p99_ms_unloaded"`
	HumanSchedP99MsFloodClassesOn  float64 `json:"human_sched_p99_ms_flood_classes_on"`
	HumanSchedP99MsFloodClassesOff float64 `json:"human_sched_p99_ms_flood_classes_off"`
	HumanSchedP99MsFloodFairOnly   float64 `json:"human_sched_p99_ms_flood_fairness_only,omitempty"`
	// Human requests refused (not 200) in each flood phase.
	HumanRefusedClassesOn  int `json:"human_refused_classes_on"`
	HumanRefusedClassesOff int `json:"human_refused_classes_off"`
	HumanRefusedFairOnly   int `json:"human_refused_fairness_only,omitempty"`
	// HumanSamples per phase (unloaded, on, off, fair-only).
	HumanSamples [4]int `json:"human_samples"`
	// HumanQueuedClassesOn counts the human's requests that waited in a
	// queue at all with classes on, as the scheduler saw it (by counting,
	// not timing): the property that makes the human immune to the flood.
	HumanQueuedClassesOn uint64 `json:"human_queued_classes_on"`
	// AgentGoodput is the agents' completed requests per second with
	// classes on, AgentGoodputShare that over capacity.
	AgentGoodput      float64 `json:"agent_goodput"`
	AgentGoodputShare float64 `json:"agent_goodput_share"`
	// Jain is Jain's fairness index over the agents' completions with
	// classes on, and AgentSpread the most minus the fewest completions of
	// one agent (with few completions per agent, Jain's index mostly
	// measures rounding; the spread shows round-robin fairness directly).
	Jain        float64 `json:"jain"`
	AgentSpread int     `json:"agent_spread"`
	// HumanSlowestClassesOn is where the slowest served human request
	// with classes on spent its time: what the p99 is made of.
	HumanSlowestClassesOn *Breakdown `json:"human_slowest_classes_on,omitempty"`
	// Samples are every human request, for the plot.
	Samples []Sample `json:"-"`
}

// Ratio is the flood p99 with classes on over the unloaded p99, timed on
// the wire.
func (r *FloodReport) Ratio() float64 { return r.HumanP99MsFloodClassesOn / r.HumanP99MsUnloaded }

// SchedRatio is the same ratio as the scheduler counts it (service time
// plus queue wait), the property the gateway is responsible for.
func (r *FloodReport) SchedRatio() float64 {
	return r.HumanSchedP99MsFloodClassesOn / r.HumanSchedP99MsUnloaded
}

// Sample is one human request.
type Sample struct {
	Phase   string
	At      time.Duration // since the phase started
	Latency time.Duration
	// Wait is the queue wait the gateway measured (when it was served).
	Wait time.Duration
	OK   bool
	// Where the latency went, when it was served: Reach from sending to
	// the server handing the request to the gateway (connection, reading,
	// goroutine scheduling), Gateway from there to the handler (identity,
	// classification and Wait), Service in the handler, and Return the
	// rest (writing and reading the response).
	Reach, Gateway, Service, Return time.Duration
}

// Breakdown is where one human request's latency went, in ms.
type Breakdown struct {
	TotalMs   float64 `json:"total_ms"`
	ReachMs   float64 `json:"reach_ms"`
	GatewayMs float64 `json:"gateway_ms"`
	WaitMs    float64 `json:"queue_wait_ms"`
	ServiceMs float64 `json:"service_ms"`
	ReturnMs  float64 `json:"return_ms"`
}

// slowest is the breakdown of the slowest served sample (nil: none).
func slowest(samples []Sample) *Breakdown {
	var s *Sample
	for i := range samples {
		if samples[i].OK && (s == nil || samples[i].Latency > s.Latency) {
			s = &samples[i]
		}
	}
	if s == nil {
		return nil
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return &Breakdown{TotalMs: ms(s.Latency), ReachMs: ms(s.Reach), GatewayMs: ms(s.Gateway), WaitMs: ms(s.Wait),
		ServiceMs: ms(s.Service), ReturnMs: ms(s.Return)}
}

const (
	phaseUnloaded = "unloaded"
	phaseOn       = "classes on"
	phaseOff      = "classes off"
	phaseFair     = "fairness only"
)

// Flood runs the harness in this process, on loopback: a human client at a
// steady low rate while agents flood the gateway at FloodFactor times its
// capacity, against a handler with a fixed service time, with priority
// classes on and off. Identities are real JWT-SVIDs.
func Flood(ctx context.Context, cfg FloodConfig) (*FloodReport, error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("flood: Dir is required (it holds the throwaway CA)")
	}
	ids, err := NewIdentities(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("flood: %w", err)
	}
	capacity := float64(cfg.Seats) / cfg.ServiceTime.Seconds()
	rep := &FloodReport{CapacityRPS: capacity, FloodRPS: capacity * cfg.FloodFactor}
	h := &harness{cfg: cfg, ids: ids}

	// Alone.
	res, err := h.phase(ctx, phaseUnloaded, h.classesOn(), cfg.Unloaded, false)
	if err != nil {
		return nil, err
	}
	rep.HumanP99MsUnloaded, _, rep.HumanSamples[0] = res.human()
	rep.HumanSchedP99MsUnloaded = res.sched(cfg.ServiceTime)
	rep.Samples = append(rep.Samples, res.samples...)

	// Flood, classes on.
	res, err = h.phase(ctx, phaseOn, h.classesOn(), cfg.Phase, true)
	if err != nil {
		return nil, err
	}
	rep.HumanP99MsFloodClassesOn, rep.HumanRefusedClassesOn, rep.HumanSamples[1] = res.human()
	rep.HumanSchedP99MsFloodClassesOn = res.sched(cfg.ServiceTime)
	rep.HumanQueuedClassesOn = res.humanQueued
	rep.Samples = append(rep.Samples, res.samples...)
	rep.HumanSlowestClassesOn = slowest(res.samples)
	var done []float64
	total, most, fewest := 0, 0, math.MaxInt
	for i := 0; i < cfg.Agents; i++ {
		n := res.agentOK[i]
		done = append(done, float64(n))
		total += n
		most, fewest = max(most, n), min(fewest, n)
	}
	rep.AgentSpread = most - fewest
	rep.AgentGoodput = float64(total) / cfg.Phase.Seconds()
	rep.AgentGoodputShare = rep.AgentGoodput / capacity
	rep.Jain = Jain(done)

	// Flood, fair queuing without classes.
	if cfg.FairnessOnly {
		res, err = h.phase(ctx, phaseFair, h.oneLevel(64, 8, 10), cfg.Phase, true)
		if err != nil {
			return nil, err
		}
		rep.HumanP99MsFloodFairOnly, rep.HumanRefusedFairOnly, rep.HumanSamples[3] = res.human()
		rep.HumanSchedP99MsFloodFairOnly = res.sched(cfg.ServiceTime)
		rep.Samples = append(rep.Samples, res.samples...)
	}

	// Flood, classes off: one level, one FIFO queue.
	res, err = h.phase(ctx, phaseOff, h.oneLevel(1, 1, 100), cfg.Phase, true)
	if err != nil {
		return nil, err
	}
	rep.HumanP99MsFloodClassesOff, rep.HumanRefusedClassesOff, rep.HumanSamples[2] = res.human()
	rep.HumanSchedP99MsFloodClassesOff = res.sched(cfg.ServiceTime)
	rep.Samples = append(rep.Samples, res.samples...)

	if cfg.SVGPath != "" {
		f, err := os.Create(cfg.SVGPath)
		if err != nil {
			return nil, fmt.Errorf("flood: %w", err)
		}
		if err := WriteSVG(f, rep); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("flood: %w", err)
		}
	}
	return rep, nil
}

type harness struct {
	cfg FloodConfig
	ids *Identities
}

// classesOn is the default gateway configuration with the agents sent to
// agent-batch by a SPIFFE ID pattern, rate limits off (this measures
// scheduling) and short agent queues.
func (h *harness) classesOn() config.Gateway {
	g := config.DefaultGateway()
	g.Concurrency = config.GatewayConcurrency{Limit: h.cfg.Seats}
	g.RateLimits = []config.RateLimit{}
	g.Levels = config.DefaultLevels()
	for i := range g.Levels {
		if g.Levels[i].Name == "agent-batch" {
			g.Levels[i].QueueLength, g.Levels[i].QueueTimeout = 10, config.Duration(5*time.Second)
		}
	}
	g.FlowSchemas = append(config.DefaultFlowSchemas(), config.FlowSchema{
		Name: "batch-agents", Level: "agent-batch", Precedence: 250,
		Match: []config.FlowMatch{{Identities: []string{"spiffe://*/agent/batch-*/**"}}},
	})
	return g
}

// oneLevel puts everything in one level with the given queues.
func (h *harness) oneLevel(queues, hand, length int) config.Gateway {
	g := config.DefaultGateway()
	g.Concurrency = config.GatewayConcurrency{Limit: h.cfg.Seats}
	g.RateLimits = []config.RateLimit{}
	g.Levels = []config.PriorityLevel{{Name: "all", Shares: 1, Queues: queues, HandSize: hand, QueueLength: length, QueueTimeout: config.Duration(5 * time.Second)}}
	g.FlowSchemas = []config.FlowSchema{{Name: "all", Level: "all", Precedence: 1}}
	return g
}

type phaseResult struct {
	samples     []Sample
	agentOK     []int
	humanQueued uint64
}

// human returns the p99 of successful human requests in ms, the number
// refused and the number of samples.
func (r *phaseResult) human() (float64, int, int) {
	var ok []time.Duration
	refused := 0
	for _, s := range r.samples {
		if s.OK {
			ok = append(ok, s.Latency)
		} else {
			refused++
		}
	}
	return p99ms(ok), refused, len(r.samples)
}

// sched returns the p99 of service plus queue wait of the human's served
// requests, in ms.
func (r *phaseResult) sched(service time.Duration) float64 {
	var ds []time.Duration
	for _, s := range r.samples {
		if s.OK {
			ds = append(ds, service+s.Wait)
		}
	}
	return p99ms(ds)
}

func p99ms(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(math.Ceil(0.99*float64(len(ds)))) - 1
	return float64(ds[i]) / float64(time.Millisecond)
}

func (h *harness) phase(ctx context.Context, name string, gcfg config.Gateway, d time.Duration, flood bool) (*phaseResult, error) {
	gw, err := gateway.New(gcfg, gateway.Deps{Identifier: h.ids})
	if err != nil {
		return nil, fmt.Errorf("flood: %s: %w", name, err)
	}
	var mu sync.Mutex
	res := &phaseResult{}
	humanID := h.ids.SPIFFEID(identity.KindUser, "human")
	svc := h.cfg.ServiceTime
	// The human's requests by id: when the server handed it to the
	// gateway, when the handler started and ended, and its queue wait.
	type trace struct {
		arrived, entered, left time.Time
		wait                   time.Duration
	}
	traces := map[string]*trace{}
	app := gw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := gateway.ClassFrom(r.Context()); ok && c.Identity.ID == humanID {
			id := r.Header.Get("X-Request-Id")
			mu.Lock()
			if tr := traces[id]; tr != nil {
				tr.entered, tr.wait = time.Now(), c.Wait
				defer func() { mu.Lock(); tr.left = time.Now(); mu.Unlock() }()
			}
			mu.Unlock()
		}
		t := time.NewTimer(svc) // the fixed service time
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
		w.WriteHeader(http.StatusOK)
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Request-Id"); id != "" {
			mu.Lock()
			traces[id] = &trace{arrived: time.Now()}
			mu.Unlock()
		}
		app.ServeHTTP(w, r)
	}))
	defer srv.Close()

	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	// Requests still out when the phase ends are abandoned, not waited for.
	reqCtx, abandon := context.WithCancel(ctx)
	defer abandon()
	transport := &http.Transport{MaxIdleConns: 2048, MaxIdleConnsPerHost: 2048, IdleConnTimeout: 30 * time.Second}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	humanClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}

	send := func(c *http.Client, kind identity.Kind, who, reqID string) (int, error) {
		req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, srv.URL+"/v1/work", nil)
		if err != nil {
			return 0, err
		}
		if reqID != "" {
			req.Header.Set("X-Request-Id", reqID)
		}
		if err := h.ids.Authorize(req, kind, who); err != nil {
			return 0, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// Warm the token cache so minting is not measured.
	if _, err := h.ids.Token(identity.KindUser, "human"); err != nil {
		return nil, err
	}
	for i := 0; i < h.cfg.Agents; i++ {
		if _, err := h.ids.Token(identity.KindSession, agentName(i)); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	var agents *agentRun
	if flood {
		per := h.cfg.FloodFactor * float64(h.cfg.Seats) / h.cfg.ServiceTime.Seconds() / float64(h.cfg.Agents)
		spec := agentSpec{URL: srv.URL + "/v1/work", Dir: h.cfg.Dir, Agents: h.cfg.Agents, PerAgent: per, Duration: d}
		if agents, err = startAgents(runCtx, reqCtx, h.cfg.AgentProcess, spec, h.ids, client); err != nil {
			return nil, fmt.Errorf("flood: %s: %w", name, err)
		}
	}
	// The human: a steady low rate, closed loop as a person is (the next
	// request waits for the answer to the last one).
	interval := time.Duration(float64(time.Second) / h.cfg.HumanRate)
	for n := 0; ; n++ {
		at := start.Add(interval/2 + time.Duration(n)*interval)
		if at.Sub(start) >= d || time.Since(start) >= d {
			break
		}
		if wait := time.Until(at); wait > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
		}
		sent := time.Now()
		id := fmt.Sprintf("human-%d", n)
		code, err := send(humanClient, identity.KindUser, "human", id)
		got := time.Now()
		s := Sample{Phase: name, At: sent.Sub(start), Latency: got.Sub(sent), OK: err == nil && code == http.StatusOK}
		mu.Lock()
		if tr := traces[id]; tr != nil && !tr.left.IsZero() {
			s.Wait = tr.wait
			s.Reach, s.Gateway = tr.arrived.Sub(sent), tr.entered.Sub(tr.arrived)
			s.Service, s.Return = tr.left.Sub(tr.entered), got.Sub(tr.left)
		}
		res.samples = append(res.samples, s)
		mu.Unlock()
	}
	cancel()
	abandon()
	if agents != nil {
		if res.agentOK, err = agents.wait(); err != nil {
			return nil, fmt.Errorf("flood: %s: %w", name, err)
		}
	}
	for _, f := range gw.Flows("") {
		if f.Flow == humanID {
			res.humanQueued = humanWaited(gw, f.Level)
		}
	}
	return res, nil
}

// humanWaited reads how many dispatches of the level waited at all: the
// human is the only flow of human-interactive.
func humanWaited(gw *gateway.Gateway, level string) uint64 {
	for _, l := range gw.Levels() {
		if l.Name == level {
			return l.Waited
		}
	}
	return 0
}
