package policy

import "github.com/agentcloud/agentcloud/internal/identity"

// Entity type names used by the schema.
const (
	TypeAdmin    = "Admin"
	TypeUser     = "User"
	TypeAgent    = "Agent"
	TypeSession  = "Session"
	TypeSandbox  = "Sandbox"
	TypeNode     = "Node"
	TypeTool     = "Tool"
	TypeSecret   = "Secret"
	TypeHost     = "Host"
	TypeApproval = "Approval"
	TypeModel    = "Model"
	TypePlatform = "Platform"
	// TypeModelProvider is a model gateway provider (id: its name); its
	// trusted attribute is the operator's flag.
	TypeModelProvider = "ModelProvider"
)

// Platform is the resource of global operations (policy.apply, token.create).
var Platform = NewUID(TypePlatform, "agentcloud")

// PrincipalUID maps an authenticated principal to its Cedar entity. A
// session's id is "AGENT/SESSION", so sessions of different agents never
// collide.
func PrincipalUID(p identity.Principal) UID {
	switch p.Kind {
	case identity.KindAdmin:
		return NewUID(TypeAdmin, p.Name)
	case identity.KindUser:
		return NewUID(TypeUser, p.Name)
	case identity.KindAgent:
		return NewUID(TypeAgent, p.Name)
	case identity.KindSession:
		return NewUID(TypeSession, p.Agent+"/"+p.Name)
	case identity.KindSandbox:
		return NewUID(TypeSandbox, p.Name)
	case identity.KindNode:
		return NewUID(TypeNode, p.Name)
	}
	// Unknown kinds get a type no policy names, so they are denied.
	return NewUID("Unknown", p.ID.String())
}
