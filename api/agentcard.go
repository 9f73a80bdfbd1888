package api

// AgentCard is the A2A (Agent2Agent protocol) self-description of a public
// agent, served at /public/{agent}/.well-known/agent-card.json and built
// from the agent's manifest. Fields keep A2A's camelCase names.
type AgentCard struct {
	ProtocolVersion    string                    `json:"protocolVersion"`
	Name               string                    `json:"name"`
	Description        string                    `json:"description"`
	URL                string                    `json:"url"`
	PreferredTransport string                    `json:"preferredTransport"`
	Version            string                    `json:"version"`
	Capabilities       AgentCapabilities         `json:"capabilities"`
	DefaultInputModes  []string                  `json:"defaultInputModes"`
	DefaultOutputModes []string                  `json:"defaultOutputModes"`
	Skills             []AgentSkill              `json:"skills"`
	SecuritySchemes    map[string]SecurityScheme `json:"securitySchemes"`
	// Security lists the accepted ways to authenticate; empty: none is
	// needed (a credential still changes the caller's traffic class).
	Security []map[string][]string `json:"security"`
}

// AgentCapabilities are an agent card's optional protocol features and
// extensions.
type AgentCapabilities struct {
	Streaming         bool             `json:"streaming"`
	PushNotifications bool             `json:"pushNotifications"`
	Extensions        []AgentExtension `json:"extensions,omitempty"`
}

// AgentExtension is an agent card extension: agentcloud's rate-limit rules
// and Web Bot Auth, each named by a URN.
type AgentExtension struct {
	URI         string         `json:"uri"`
	Description string         `json:"description,omitempty"`
	Required    bool           `json:"required"`
	Params      map[string]any `json:"params,omitempty"`
}

// AgentSkill is one skill of an agent card.
type AgentSkill struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
}

// SecurityScheme is an OpenAPI-style security scheme of an agent card.
type SecurityScheme struct {
	Type         string `json:"type"`
	Scheme       string `json:"scheme,omitempty"`
	BearerFormat string `json:"bearerFormat,omitempty"`
	Description  string `json:"description,omitempty"`
}

// CardRateLimit is one front door rate limit as an agent card tells it:
// Quota requests per WindowSeconds for each Key (an identity, or an
// address for anonymous callers), for callers of the listed Kinds.
type CardRateLimit struct {
	Name          string   `json:"name"`
	Quota         int      `json:"quota"`
	WindowSeconds float64  `json:"window_seconds"`
	Key           string   `json:"key"`
	Kinds         []string `json:"kinds,omitempty"`
}
