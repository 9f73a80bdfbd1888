package security

// The toolbox's authorizer, auditor and labeler (tools.go): Cedar
// tool.call on the Tool (built-ins marked) with the caller's labels, one
// audit record per call, and a session's integrity lowered when it reads
// untrusted tool output.

import (
	"context"
	"fmt"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/toolbox"
)

// Route actions of the tools API outside the Cedar schema: any
// authenticated caller may list tools or ask to call one; the toolbox then
// authorizes tool.call on the Tool itself (AuthorizeTool).
const (
	ActionToolList   = "tool.list"
	ActionToolInvoke = "tool.invoke"
)

// auditTypeTool is the audit type of tool calls.
const auditTypeTool = "tool"

var (
	_ toolbox.Authorizer = (*Security)(nil)
	_ toolbox.Auditor    = (*Security)(nil)
	_ toolbox.Labeler    = (*Security)(nil)
)

// AuthorizeTool implements toolbox.Authorizer: principal, action
// "tool.call", resource Tool::"name" (builtin marked), with the caller's
// session labels in the context.
func (s *Security) AuthorizeTool(ctx context.Context, c toolbox.Caller, t toolbox.Tool) error {
	ip, err := identity.ParsePrincipal(s.td, c.Principal)
	if err != nil {
		return toolbox.Wrap(toolbox.CodeForbidden, t.Name, err, "caller %q is not a principal of this platform", c.Principal)
	}
	d, ruid, err := s.decide(ctx, ip, "tool.call", Resource{Type: policy.TypeTool, ID: t.Name, Parent: t.Source}, nil)
	if err != nil {
		return fmt.Errorf("authorize tool %s: %w", t.Name, err)
	}
	if !d.Allowed {
		return toolbox.Errorf(toolbox.CodeForbidden, t.Name, "%s", denialText(ip, "tool.call", ruid, d))
	}
	return nil
}

// AuditTool implements toolbox.Auditor: one audit record per tool call.
func (s *Security) AuditTool(ctx context.Context, rec toolbox.CallRecord) {
	outcome := rec.Decision
	if rec.Decision == "allow" && rec.Code != "" {
		outcome = "error"
	}
	detail := map[string]any{"args_sha256": rec.ArgsSHA256, "duration_us": rec.Duration.Microseconds()}
	if rec.ResultSHA256 != "" {
		detail["result_sha256"] = rec.ResultSHA256
	}
	if rec.Error != "" {
		detail["error"] = rec.Error
	}
	if rec.Untrusted {
		detail["untrusted"] = true
	}
	if rec.Caller.Sandbox != "" {
		detail["sandbox"] = rec.Caller.Sandbox
	}
	ev := api.AuditEvent{Type: auditTypeTool, Principal: rec.Caller.Principal, Action: "tool.call",
		Resource: `Tool::"` + rec.Tool + `"`, Outcome: outcome, Reason: string(rec.Code), Detail: detail}
	if rec.Caller.Session != "" {
		ev.Session = rec.Caller.Agent + "/" + rec.Caller.Session
	}
	_ = s.audit.Record(context.WithoutCancel(ctx), ev)
}

// ReadUntrusted implements toolbox.Labeler: it lowers a session's
// integrity when it reads untrusted output.
func (s *Security) ReadUntrusted(ctx context.Context, c toolbox.Caller, tool string) error {
	if c.Session == "" {
		return nil
	}
	_, err := s.labels.join(ctx, c.Agent, c.Session, policy.Labels{Integrity: policy.Untrusted},
		"read the untrusted output of tool "+tool)
	return err
}
