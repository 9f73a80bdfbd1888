package bundle

// The manifest's public section (public.go): an agent's opt-in to serve
// the web and other agents without a platform token.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
)

// Public is the manifest's optional "public" section: the agent serves
// the named sessions at /public/AGENT/SESSION/... to anyone (through the
// front door as anonymous or a verified Web Bot Auth signer, under their
// limits), and describes itself in an A2A agent card at
// /public/AGENT/.well-known/agent-card.json.
type Public struct {
	// Sessions are the only sessions reachable publicly: anonymous
	// callers cannot create others.
	Sessions []string `json:"sessions"`
	// Methods are the HTTP methods served publicly (default GET, HEAD).
	Methods []string `json:"methods,omitempty"`
	// Cacheable: identical GETs in flight at once share one answer (the
	// agent's answer does not depend on who asks).
	Cacheable bool `json:"cacheable,omitempty"`
	// Version is the agent card's version (default "1.0.0").
	Version string  `json:"version,omitempty"`
	Skills  []Skill `json:"skills,omitempty"`
}

// Skill is one skill of the agent card.
type Skill struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
}

// Limits of the public section.
const (
	MaxPublicSessions = 16
	MaxSkills         = 32
	maxSkillTags      = 16
	maxCardText       = 1024 // a skill's description
	maxCardName       = 128  // a skill's id, name, tag, or the version
)

var (
	publicFields  = []string{"sessions", "methods", "cacheable", "version", "skills"}
	skillFields   = []string{"id", "name", "description", "tags"}
	publicMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
)

// public decodes the manifest's optional public section.
func (p *parser) public(raw json.RawMessage) *Public {
	if isNull(raw) {
		return nil
	}
	const example = `write {"sessions": ["www"], "skills": [{"id": "search", "name": "Search"}]} or leave it out to stay private`
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		p.add("public", "got "+jsonKind(raw)+", want an object", example)
		return nil
	}
	for _, k := range p.ix.keys["public"] {
		if !slices.Contains(publicFields, k) {
			p.unknown(childPath("public", k), k, publicFields)
		}
	}
	before := len(p.probs)
	pub := &Public{Version: "1.0.0", Methods: []string{"GET", "HEAD"}}
	pub.Sessions = p.strings("public.sessions", obj["sessions"], "www")
	switch n := len(pub.Sessions); {
	case isNull(obj["sessions"]) || n == 0:
		p.add("public.sessions", "is required", `name the sessions anyone may reach, such as ["www"]`)
	case n > MaxPublicSessions:
		p.add("public.sessions", fmt.Sprintf("has %d sessions, above the maximum %d", n, MaxPublicSessions), "serve the public from fewer sessions")
	}
	p.eachUnique("public.sessions", pub.Sessions, func(field, s string) {
		if prob := api.CheckID(field, api.IDSession, s); prob != nil {
			p.add(field, prob.Detail, "use a session id of A-Z a-z 0-9 . _ - (at most 128)")
		}
	})
	if !isNull(obj["methods"]) {
		pub.Methods = p.strings("public.methods", obj["methods"], "GET")
		p.eachUnique("public.methods", pub.Methods, func(field, s string) {
			if !slices.Contains(publicMethods, s) {
				p.add(field, fmt.Sprintf("%q is not a method served publicly", s), "use upper-case GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS")
			}
		})
	}
	if raw := obj["cacheable"]; !isNull(raw) && json.Unmarshal(raw, &pub.Cacheable) != nil {
		p.add("public.cacheable", "got "+jsonKind(raw)+", want true or false", "write true when a GET's answer does not depend on who asks")
	}
	if v, ok := p.string("public.version", obj["version"]); ok {
		pub.Version = v
		if v == "" || len(v) > maxCardName {
			p.add("public.version", fmt.Sprintf("is %d bytes", len(v)), fmt.Sprintf("use 1 to %d bytes, such as \"1.2.0\"", maxCardName))
		}
	}
	pub.Skills = p.skills(obj["skills"])
	if len(p.probs) > before {
		return nil
	}
	return pub
}

// skills decodes the public section's skills.
func (p *parser) skills(raw json.RawMessage) []Skill {
	if isNull(raw) {
		return nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		p.add("public.skills", "got "+jsonKind(raw)+", want a list of skills", `write [{"id": "search", "name": "Search"}]`)
		return nil
	}
	if len(elems) > MaxSkills {
		p.add("public.skills", fmt.Sprintf("has %d skills, above the maximum %d", len(elems), MaxSkills), "describe fewer skills")
		return nil
	}
	var out []Skill
	ids := map[string]bool{}
	for i, e := range elems {
		path := "public.skills[" + strconv.Itoa(i) + "]"
		var so map[string]json.RawMessage
		if isNull(e) || json.Unmarshal(e, &so) != nil {
			p.add(path, "got "+jsonKind(e)+", want an object", `write {"id": "search", "name": "Search"}`)
			continue
		}
		for _, k := range p.ix.keys[path] {
			if !slices.Contains(skillFields, k) {
				p.unknown(childPath(path, k), k, skillFields)
			}
		}
		s := Skill{ID: p.cardText(path+".id", so["id"], maxCardName, true), Name: p.cardText(path+".name", so["name"], maxCardName, true),
			Description: p.cardText(path+".description", so["description"], maxCardText, false)}
		if s.ID != "" && ids[s.ID] {
			p.add(path+".id", fmt.Sprintf("%q is given twice", s.ID), "give each skill its own id")
		}
		ids[s.ID] = true
		s.Tags = p.strings(path+".tags", so["tags"], "search")
		if len(s.Tags) > maxSkillTags {
			p.add(path+".tags", fmt.Sprintf("has %d tags, above the maximum %d", len(s.Tags), maxSkillTags), "keep the most telling tags")
		}
		for j, t := range s.Tags {
			if t == "" || len(t) > maxCardName {
				p.add(path+".tags["+strconv.Itoa(j)+"]", fmt.Sprintf("is %d bytes", len(t)), fmt.Sprintf("use 1 to %d bytes", maxCardName))
			}
		}
		out = append(out, s)
	}
	return out
}

// cardText decodes a text of the agent card, at most max bytes.
func (p *parser) cardText(path string, raw json.RawMessage, max int, required bool) string {
	s, ok := p.string(path, raw)
	switch {
	case !ok && required && isNull(raw):
		p.add(path, "is required", fmt.Sprintf("give 1 to %d bytes", max))
	case ok && (len(s) > max || required && s == ""):
		p.add(path, fmt.Sprintf("is %d bytes", len(s)), fmt.Sprintf("give 1 to %d bytes", max))
	}
	return s
}
