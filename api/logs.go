package api

import "time"

// LogEntry is one line of an agent's log stream: a console.* call of one
// of its sessions, or an error a request of the session ended with
// (Level "exception": an uncaught throw, a timeout, a crash).
type LogEntry struct {
	// Seq numbers the agent's entries on this node without gaps. A node
	// numbers a stream from above every Seq it gave before, also across
	// its restarts, so a cursor from before one reads what came since.
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Agent   string    `json:"agent"`
	Session string    `json:"session"`
	// Level is the console method (debug, info, log, warn, error) or
	// "exception".
	Level string `json:"level"`
	Text  string `json:"text"`
	// Truncated is how many bytes of a long line were cut off.
	Truncated int `json:"truncated,omitempty"`
	// Missed is how many entries before this one were dropped from the
	// bounded stream before this reader could see them.
	Missed uint64 `json:"missed,omitempty"`
	// Node is the member that kept the entry (Seq counts on it).
	Node string `json:"node,omitempty"`
	// Cursor, on a followed stream gathered from a cluster's members, is
	// the position just after this entry (LogCursor).
	Cursor string `json:"cursor,omitempty"`
}

// LogList is the body of GET /v1/agents/{agent}/logs without follow.
type LogList struct {
	Entries []LogEntry `json:"entries"`
	// Next is the after= value that continues where this answer ends.
	Next uint64 `json:"next"`
	// Missed is how many entries after the requested position were
	// dropped from the bounded stream before this read.
	Missed uint64 `json:"missed,omitempty"`
	// Cursor continues where this answer ends on every member (the
	// cursor query parameter); Next is the position on the member that
	// answered only.
	Cursor string `json:"cursor,omitempty"`
	// Unreachable names the cluster members that did not answer: their
	// entries are missing from this answer.
	Unreachable []string `json:"unreachable,omitempty"`
}

// LogLevelUnreachable is the Level of an entry a followed stream gathered
// from a cluster's members adds when a member stops answering (Node names
// it): its lines are missing until a later entry of that member.
const LogLevelUnreachable = "unreachable"

// LogContentType is the media type of a followed log stream (one JSON
// LogEntry per line); with Accept: text/event-stream the same entries come
// as server-sent events.
const LogContentType = "application/x-ndjson"

// PreviewSuffix makes the internal agent name of an agent's preview
// namespace (agentcloud dev): agent a's preview sessions belong to
// "a.preview", reached only through /agents/a/preview/... routes. A
// cluster places a preview session by that name, as its owner runs it.
const PreviewSuffix = ".preview"
