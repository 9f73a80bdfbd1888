package builtin

// Input schemas of the built-in tools (JSON Schema 2020-12). Every schema
// closes its properties, so a misspelt argument is an error, not ignored.

const runCodeSchema = `{
  "type": "object",
  "properties": {
    "language": {"type": "string", "enum": ["python", "javascript", "bash"], "description": "python (python3), javascript (node) or bash"},
    "code": {"type": "string", "minLength": 1, "maxLength": 200000, "description": "the program text"},
    "files": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 100, "description": "input files: path under /workspace (relative or absolute) to text content"},
    "tier": {"type": "string", "enum": ["process", "gvisor"], "default": "process", "description": "sandbox isolation tier"},
    "timeout_s": {"type": "number", "minimum": 0, "maximum": 300, "default": 30, "description": "wall-clock limit in seconds (0: the default of 30)"},
    "stdin": {"type": "string", "maxLength": 100000, "description": "standard input"}
  },
  "required": ["language", "code"],
  "additionalProperties": false
}`

const scopeProps = `
    "agent": {"type": "string", ` + agentPattern + `, "description": "the agent (only for callers that are not a session; a session addresses its own state)"},
    "session": {"type": "string", ` + sessionPattern + `, "description": "the session id (with agent)"}`

// The identifier rules of api.IDRules as JSON Schema, so an over-long or
// malformed id is refused before the tool runs.
const (
	agentPattern   = `"pattern": "^[a-z][a-z0-9-]{0,62}$"`
	sessionPattern = `"pattern": "^[A-Za-z0-9._-]{1,128}$", "not": {"enum": [".", ".."]}`
)

const stateGetSchema = `{
  "type": "object",
  "properties": {
    "key": {"type": "string", "minLength": 1, "maxLength": 512},` + scopeProps + `
  },
  "required": ["key"],
  "additionalProperties": false
}`

const statePutSchema = `{
  "type": "object",
  "properties": {
    "key": {"type": "string", "minLength": 1, "maxLength": 512},
    "value": {"description": "any JSON value"},` + scopeProps + `
  },
  "required": ["key", "value"],
  "additionalProperties": false
}`

const stateListSchema = `{
  "type": "object",
  "properties": {
    "prefix": {"type": "string", "maxLength": 512, "default": ""},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},` + scopeProps + `
  },
  "additionalProperties": false
}`

const httpFetchSchema = `{
  "type": "object",
  "properties": {
    "url": {"type": "string", "minLength": 1, "maxLength": 8192, "description": "an http or https URL"},
    "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], "default": "GET"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 50},
    "body": {"type": "string", "maxLength": 200000}
  },
  "required": ["url"],
  "additionalProperties": false
}`

const deployAgentSchema = `{
  "type": "object",
  "properties": {
    "files": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1, "maxProperties": 1000, "description": "bundle files: path to text content; must include agent.json"}
  },
  "required": ["files"],
  "additionalProperties": false
}`

const callAgentSchema = `{
  "type": "object",
  "properties": {
    "agent": {"type": "string", ` + agentPattern + `},
    "session": {"type": "string", ` + sessionPattern + `, "description": "the session id; created on first use"},
    "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], "default": "GET"},
    "path": {"type": "string", "maxLength": 4096, "default": "/", "description": "path and query inside the session, e.g. /items?limit=2"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 50},
    "body": {"type": "string", "maxLength": 200000}
  },
  "required": ["agent", "session"],
  "additionalProperties": false
}`

const listAgentsSchema = `{"type": "object", "properties": {}, "additionalProperties": false}`

const pingSchema = `{"type": "object", "properties": {}, "additionalProperties": false}`

const searchToolsSchema = `{
  "type": "object",
  "properties": {
    "query": {"type": "string", "maxLength": 1000, "description": "words to look for in tool names and descriptions"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
  },
  "additionalProperties": false
}`
