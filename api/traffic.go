package api

// TrafficLevel is the state of one priority level of the front door
// (internal/gateway): its share of the concurrency limit, what it runs and
// queues now, and its counters since start. GET /v1/traffic and
// `agentcloud traffic levels` show a list of these.
type TrafficLevel struct {
	Name string `json:"name"`
	// Exempt levels are not limited by seats or queues.
	Exempt bool `json:"exempt,omitempty"`
	// Shares is the configured nominal concurrency share.
	Shares int `json:"shares"`
	// NominalSeats is this level's part of the current concurrency limit;
	// LendableSeats of them may be lent to other levels while idle.
	NominalSeats  int `json:"nominal_seats"`
	LendableSeats int `json:"lendable_seats"`
	// Executing requests hold a seat now; Borrowed of them sit on seats
	// lent by other levels.
	Executing int `json:"executing"`
	Borrowed  int `json:"borrowed"`
	// Queued requests wait in the level's Queues queues.
	Queued int `json:"queued"`
	Queues int `json:"queues"`
	// ActiveFlows have a request queued or executing.
	ActiveFlows int `json:"active_flows"`
	// Dispatched, Rejected and TimedOut count requests since start;
	// Waited counts the dispatched ones that waited in a queue first.
	Dispatched uint64 `json:"dispatched"`
	Waited     uint64 `json:"waited"`
	Rejected   uint64 `json:"rejected"`
	TimedOut   uint64 `json:"timed_out"`
	// WaitP50Ms and WaitP99Ms are queue wait percentiles of recent
	// dispatches, in milliseconds.
	WaitP50Ms float64 `json:"wait_p50_ms"`
	WaitP99Ms float64 `json:"wait_p99_ms"`
}

// TrafficFlow is one flow (one verified identity, or one client address for
// anonymous requests) in one priority level.
type TrafficFlow struct {
	Level string `json:"level"`
	// Flow is the identity: a SPIFFE ID, a Web Bot Auth signer directory URL
	// or "ip:ADDRESS".
	Flow string `json:"flow"`
	// Queue is the queue the flow is bound to while active (-1 when idle).
	Queue      int    `json:"queue"`
	Executing  int    `json:"executing"`
	Queued     int    `json:"queued"`
	Dispatched uint64 `json:"dispatched"`
	Rejected   uint64 `json:"rejected"`
	// RatePerSecond is the flow's recent arrival rate (decayed, half-life
	// about 10 s).
	RatePerSecond float64 `json:"rate_per_second"`
	// LastSeen is when the flow last sent a request (RFC 3339).
	LastSeen string `json:"last_seen"`
}

// Traffic is the body of GET /v1/traffic.
type Traffic struct {
	// ConcurrencyLimit is the current total of seats (adaptive when enabled).
	ConcurrencyLimit int            `json:"concurrency_limit"`
	Levels           []TrafficLevel `json:"levels"`
	Top              []TrafficFlow  `json:"top,omitempty"`
}

// TrafficFlows is the body of GET /v1/traffic/flows: the flows asked for,
// busiest first, and how many there are in all.
type TrafficFlows struct {
	Flows []TrafficFlow `json:"flows"`
	Total int           `json:"total"`
}
