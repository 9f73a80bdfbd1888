package api

import "time"

// Deployment is the body of GET /v1/agents/{agent}/deployment: which
// versions serve which share of new sessions, the versions kept, and the
// latest rollout (for `agentcloud agents versions`).
type Deployment struct {
	Agent    string         `json:"agent"`
	Versions []VersionShare `json:"versions"`
	Rollout  *RolloutStatus `json:"rollout,omitempty"`
}

// The roles of a version in a deployment.
const (
	RoleStable = "stable" // serves every new session the canary does not
	RoleCanary = "canary" // serves Percent of new sessions during a rollout
	RoleKept   = "kept"   // stored, serves nothing; a rollback may return to it
)

// VersionShare is one stored version of an agent and what it serves.
type VersionShare struct {
	Version string    `json:"version"` // digest
	Created time.Time `json:"created"`
	Role    string    `json:"role"`
	// Percent is the share of new sessions the version gets.
	Percent int `json:"percent"`
	// LiveSessions counts this node's live sessions on the version.
	LiveSessions int `json:"live_sessions"`
}

// RolloutStatus is an agent's latest rollout.
type RolloutStatus struct {
	Stable string `json:"stable"`
	Canary string `json:"canary"`
	// Phase is running, paused, completed, rolled_back or superseded.
	Phase       string        `json:"phase"`
	Steps       []RolloutStep `json:"steps"`
	Step        int           `json:"step"`
	Percent     int           `json:"percent"`
	Started     time.Time     `json:"started"`
	StepStarted time.Time     `json:"step_started"`
	// NextStepAt is when the step's pause ends (running rollouts only).
	NextStepAt *time.Time `json:"next_step_at,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	// Analysis is the latest comparison of the canary with the stable
	// version.
	Analysis *RolloutAnalysis `json:"analysis,omitempty"`
}

// RolloutStep is one step: the canary's share and how long it holds.
type RolloutStep struct {
	Percent      int `json:"percent"`
	PauseSeconds int `json:"pause_seconds"`
}

// RolloutAnalysis is what a step compared.
type RolloutAnalysis struct {
	WindowSeconds uint64         `json:"window_seconds"`
	Canary        VersionFigures `json:"canary"`
	Stable        VersionFigures `json:"stable"`
}

// VersionFigures are one version's calls over an analysis window.
type VersionFigures struct {
	Version   string `json:"version"`
	Calls     uint64 `json:"calls"`
	Errors    uint64 `json:"errors"`
	P99Micros uint64 `json:"p99_us"`
}

// RollbackRequest is the body of POST /v1/agents/{agent}/rollback; an
// empty To returns to the version that served before the latest rollout.
type RollbackRequest struct {
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// RolloutControl is the optional body of POST
// /v1/agents/{agent}/rollout/{pause,resume,promote}.
type RolloutControl struct {
	Reason string `json:"reason,omitempty"`
}
