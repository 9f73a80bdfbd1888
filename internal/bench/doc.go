// Package bench holds the measurements behind `agentcloud bench`: session
// creation, warm requests and activation (Sessions), sandboxes (Sandbox),
// Cedar decisions and the egress path (Authz), and MCP tool calls (Tools).
// Each runs against an existing daemon through the client SDK, or starts
// one in a temporary data dir through the daemon's ordinary API and
// configuration, and returns a result whose JSON fields are its
// documentation. It owns the workloads and their statistics; it does not
// parse flags or print (internal/cli does), and it reaches no daemon
// internals.
package bench
