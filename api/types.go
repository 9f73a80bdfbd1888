package api

import "time"

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status"` // "ok" or "unavailable"
}

// Status is the body of GET /v1/status.
type Status struct {
	Version   string      `json:"version"`
	Commit    string      `json:"commit,omitempty"`
	GoVersion string      `json:"go_version"`
	NodeID    string      `json:"node_id"`
	StartedAt time.Time   `json:"started_at"`
	UptimeSec float64     `json:"uptime_seconds"`
	Healthy   bool        `json:"healthy"`
	Store     StoreStatus `json:"store"`
}

// StoreStatus summarises the storage layer.
type StoreStatus struct {
	Mode     string `json:"mode"` // "embedded" or "external"
	Streams  int    `json:"streams"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	SyncMode string `json:"sync_mode"`
}

// WhoAmI is the body of GET /v1/whoami.
type WhoAmI struct {
	Principal string `json:"principal"`
	Kind      string `json:"kind"`
}
