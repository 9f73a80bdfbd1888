package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// HostListTarget is a host-pattern list (trusted or private hosts) as a
// ConfigTarget: the value is {"hosts": [...]}, canonical lower-cased,
// sorted and without repeats; Items are the hosts. The funcs are the
// owner's (internal/security): Get reads the list, Set replaces it,
// Validate checks it (a validation problem naming the index).
type HostListTarget struct {
	Get      func(ctx context.Context) ([]string, error)
	Set      func(ctx context.Context, hosts []string, by string) error
	Validate func(hosts []string) error
}

var _ ConfigTarget = HostListTarget{}

// canonicalHosts is the canonical form of a host list.
func canonicalHosts(hosts []string) ConfigValue {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, strings.ToLower(h))
	}
	slices.Sort(out)
	out = slices.Compact(out)
	b, _ := json.Marshal(api.TrustedHosts{Hosts: out})
	text := strings.Join(out, "\n")
	if text != "" {
		text += "\n"
	}
	return ConfigValue{Value: b, Items: out, Text: text}
}

// Check implements ConfigTarget.
func (h HostListTarget) Check(_ context.Context, _ string, raw json.RawMessage) (ConfigValue, error) {
	var v api.TrustedHosts
	if err := json.Unmarshal(raw, &v); err != nil {
		return ConfigValue{}, api.FieldErrorf(api.KindValidation, "hosts", "want {\"hosts\": [\"host pattern\", ...]}: %v", err)
	}
	if err := h.Validate(v.Hosts); err != nil {
		return ConfigValue{}, err
	}
	return canonicalHosts(v.Hosts), nil
}

// Current implements ConfigTarget (the platform owns the lists).
func (h HostListTarget) Current(ctx context.Context, _ string) (ConfigValue, string, bool, error) {
	hosts, err := h.Get(ctx)
	if err != nil {
		return ConfigValue{}, "", false, err
	}
	return canonicalHosts(hosts), "", true, nil
}

// Apply implements ConfigTarget.
func (h HostListTarget) Apply(ctx context.Context, _ string, value json.RawMessage, by string) error {
	var v api.TrustedHosts
	if err := json.Unmarshal(value, &v); err != nil {
		return err
	}
	return h.Set(ctx, v.Hosts, by)
}

// PolicyTarget is the user Cedar policy set as a ConfigTarget: the value
// is {"text": "..."} (the policy text as sent, which is what the policy
// set's versions keep). Get reads the set in force (Version 0: none yet),
// Put makes text the next version, Validate checks it against the schema
// (a validation problem naming the line and column).
type PolicyTarget struct {
	Get      func(ctx context.Context) (api.PolicySet, error)
	Put      func(ctx context.Context, text, by string) (api.PolicySet, error)
	Validate func(text string) error
}

var _ ConfigTarget = PolicyTarget{}

func policyValue(text string) ConfigValue {
	b, _ := json.Marshal(api.PolicySet{Text: text})
	return ConfigValue{Value: b, Text: text}
}

// Check implements ConfigTarget.
func (p PolicyTarget) Check(_ context.Context, _ string, raw json.RawMessage) (ConfigValue, error) {
	var v api.PolicySet
	if err := json.Unmarshal(raw, &v); err != nil {
		return ConfigValue{}, api.FieldErrorf(api.KindValidation, "text", "want {\"text\": \"<Cedar policies>\"}: %v", err)
	}
	if err := p.Validate(v.Text); err != nil {
		return ConfigValue{}, err
	}
	return policyValue(v.Text), nil
}

// Current implements ConfigTarget.
func (p PolicyTarget) Current(ctx context.Context, _ string) (ConfigValue, string, bool, error) {
	ps, err := p.Get(ctx)
	if err != nil || ps.Version == 0 {
		return ConfigValue{}, "", false, err
	}
	return policyValue(ps.Text), "", true, nil
}

// Apply implements ConfigTarget.
func (p PolicyTarget) Apply(ctx context.Context, _ string, value json.RawMessage, by string) error {
	var v api.PolicySet
	if err := json.Unmarshal(value, &v); err != nil {
		return err
	}
	_, err := p.Put(ctx, v.Text, by)
	return err
}

// ToolPinner is the registry of upstream tools as a tool-pins run sees it
// (a *registry.Registry): the pins in force, and putting exactly a
// reviewed value in force (a conflict, changing nothing, when the
// upstream no longer serves a reviewed definition).
type ToolPinner interface {
	Pins(ctx context.Context, upstream string) ([]api.ToolPin, error)
	PinExactly(ctx context.Context, upstream string, pins []api.ToolPin, by string) error
}

// ToolPinsTarget is an upstream's pinned tool definitions as a
// ConfigTarget (Name: the upstream): the value is api.ToolPins, every
// definition in full with its hash, so the run's record holds exactly
// what was reviewed and apply pins exactly that. Items are "tool@hash".
// Registry returns the registry (it opens after the runner); Validate
// checks and canonicalises a value (registry.CheckPins).
type ToolPinsTarget struct {
	Registry func() ToolPinner
	Validate func(pins []api.ToolPin) ([]api.ToolPin, error)
}

var _ ConfigTarget = ToolPinsTarget{}

func toolPinsValue(pins []api.ToolPin) ConfigValue {
	if pins == nil {
		pins = []api.ToolPin{}
	}
	b, _ := json.Marshal(api.ToolPins{Tools: pins})
	items := make([]string, 0, len(pins))
	var text strings.Builder
	for _, p := range pins {
		items = append(items, p.Name+"@"+p.Hash)
		fmt.Fprintf(&text, "%s %s\n  description: %q\n  inputSchema: %s\n", p.Name, p.Hash, p.Description, p.InputSchema)
		if p.Endpoint != "" {
			fmt.Fprintf(&text, "  endpoint: %s\n", p.Endpoint)
		}
	}
	return ConfigValue{Value: b, Items: items, Text: text.String()}
}

// Check implements ConfigTarget.
func (t ToolPinsTarget) Check(_ context.Context, _ string, raw json.RawMessage) (ConfigValue, error) {
	var v api.ToolPins
	if err := json.Unmarshal(raw, &v); err != nil {
		return ConfigValue{}, api.FieldErrorf(api.KindValidation, "tools", "want {\"tools\": [{\"name\", \"hash\", \"description\", \"inputSchema\"}, ...]}: %v", err)
	}
	pins, err := t.Validate(v.Tools)
	if err != nil {
		return ConfigValue{}, err
	}
	return toolPinsValue(pins), nil
}

// Current implements ConfigTarget (the upstreams are the platform's).
func (t ToolPinsTarget) Current(ctx context.Context, upstream string) (ConfigValue, string, bool, error) {
	pins, err := t.Registry().Pins(ctx, upstream)
	if err != nil {
		return ConfigValue{}, "", false, err
	}
	pins, err = t.Validate(pins)
	if err != nil {
		return ConfigValue{}, "", false, fmt.Errorf("pins of %s in force: %w", upstream, err)
	}
	return toolPinsValue(pins), "", true, nil
}

// Apply implements ConfigTarget.
func (t ToolPinsTarget) Apply(ctx context.Context, upstream string, value json.RawMessage, by string) error {
	var v api.ToolPins
	if err := json.Unmarshal(value, &v); err != nil {
		return err
	}
	return t.Registry().PinExactly(ctx, upstream, v.Tools, by)
}

// SecretTarget is a secret's metadata as a ConfigTarget (Name: the
// secret): the value is api.SecretMetadata, canonical with the hosts
// lower-cased, sorted and without repeats; Items are the hosts and
// "allow_http" when plain http is allowed, so widening either is an
// addition. The secret's value is never part of it. The funcs are the
// owner's (internal/security): Describe reads the metadata and owner (a
// not-found problem when there is no such secret), Set replaces the
// metadata keeping the value, Validate checks it (naming the entry).
type SecretTarget struct {
	Describe func(ctx context.Context, name string) (api.Secret, error)
	Set      func(ctx context.Context, by, name string, m api.SecretMetadata) error
	Validate func(m api.SecretMetadata) error
}

var _ ConfigTarget = SecretTarget{}

// allowHTTPItem is the item of a secret allowed over plain http.
const allowHTTPItem = "allow_http"

func secretValue(m api.SecretMetadata) ConfigValue {
	hosts := canonicalHosts(m.AllowHosts).Items
	b, _ := json.Marshal(api.SecretMetadata{AllowHosts: hosts, AllowHTTP: m.AllowHTTP})
	items := slices.Clone(hosts)
	text := "allow_hosts:\n"
	for _, h := range hosts {
		text += "  " + h + "\n"
	}
	if m.AllowHTTP {
		items = append(items, allowHTTPItem)
		text += "allow_http: true\n"
	}
	return ConfigValue{Value: b, Items: items, Text: text}
}

// Check implements ConfigTarget.
func (s SecretTarget) Check(_ context.Context, _ string, raw json.RawMessage) (ConfigValue, error) {
	var m api.SecretMetadata
	if err := json.Unmarshal(raw, &m); err != nil {
		return ConfigValue{}, api.FieldErrorf(api.KindValidation, "allow_hosts", "want {\"allow_hosts\": [\"host\", ...], \"allow_http\": false}: %v", err)
	}
	if err := s.Validate(m); err != nil {
		return ConfigValue{}, err
	}
	return secretValue(m), nil
}

// Current implements ConfigTarget: the secret's owner owns the target.
func (s SecretTarget) Current(ctx context.Context, name string) (ConfigValue, string, bool, error) {
	sec, err := s.Describe(ctx, name)
	if err != nil {
		return ConfigValue{}, "", false, err
	}
	return secretValue(api.SecretMetadata{AllowHosts: sec.AllowHosts, AllowHTTP: sec.AllowHTTP}), sec.Owner, true, nil
}

// Apply implements ConfigTarget.
func (s SecretTarget) Apply(ctx context.Context, name string, value json.RawMessage, by string) error {
	var m api.SecretMetadata
	if err := json.Unmarshal(value, &m); err != nil {
		return err
	}
	return s.Set(ctx, by, name, m)
}
