package api

import (
	"encoding/json"
	"time"
)

// Agent is a deployed agent and its current version.
type Agent struct {
	Name    string    `json:"name"`
	Current string    `json:"current"` // digest of the current version
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Manifest is the current version's agent.json, with defaults filled in.
	Manifest json.RawMessage `json:"manifest,omitempty"`
}

// AgentVersion is one immutable, content-addressed version of an agent.
type AgentVersion struct {
	Agent   string    `json:"agent"`
	Digest  string    `json:"digest"` // sha256:<hex> of the bundle's files
	Created time.Time `json:"created"`
	Size    int       `json:"size"`  // bytes of the packed bundle
	Files   int       `json:"files"` // number of files
	Runtime string    `json:"runtime"`
	Entry   string    `json:"entry"`
	// Run is the pipeline run that deployed this version and RunState
	// where it is (passed: the version serves or is rolling out; waiting:
	// it waits for review; pending or running: still going) — set by a
	// deploy (POST /v1/agents, deploy_agent), absent when the version was
	// current already.
	Run      string `json:"run,omitempty"`
	RunState string `json:"run_state,omitempty"`
}

// AgentList is the body of GET /v1/agents.
type AgentList struct {
	Agents []Agent `json:"agents"`
}

// VersionList is the body of GET /v1/agents/{agent}/versions.
type VersionList struct {
	Versions []AgentVersion `json:"versions"`
}

// Session describes one agent session.
type Session struct {
	Agent      string    `json:"agent"`
	ID         string    `json:"id"`
	State      string    `json:"state"` // "live" or "hibernated"
	Version    string    `json:"version"`
	Created    time.Time `json:"created"`
	LastActive time.Time `json:"last_active"`
	// MemoryBytes is the live isolate's linear memory (live sessions).
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// SnapshotBytes is the stored heap snapshot (hibernated sessions).
	SnapshotBytes int64      `json:"snapshot_bytes,omitempty"`
	Alarm         *time.Time `json:"alarm,omitempty"`
}

// SessionList is the body of GET /v1/agents/{agent}/sessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

// SessionStateKey is one key of a session's durable state and the size of
// its JSON value (the value itself is read by the session or the state
// tools, which apply the session's labels).
type SessionStateKey struct {
	Key   string `json:"key"`
	Bytes int    `json:"bytes"`
}

// SessionStateKeys is the body of GET /v1/agents/{agent}/sessions/{session}/state.
type SessionStateKeys struct {
	Keys []SessionStateKey `json:"keys"`
}
