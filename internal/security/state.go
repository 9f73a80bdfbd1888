package security

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Keys in the security bucket.
var (
	policyCurrentKey = store.Key("policy", "current")
	trustedHostsKey  = store.Key("trusted-hosts")
	privateHostsKey  = store.Key("private-hosts")
)

func policyVersionKey(v uint64) string  { return store.Key("policy-version", strconv.FormatUint(v, 10)) }
func secretOwnerKey(name string) string { return store.Key("secret-owner", name) }
func labelsKey(agent, sess string) string {
	return store.Key("labels", agent, sess)
}

// Policies returns the user policy set in force and its version (version 0
// and no text before the first apply).
func (s *Security) Policies(ctx context.Context) (api.PolicySet, error) {
	ps, _, err := s.currentPolicies(ctx)
	return ps, err
}

// loadPolicies installs the stored user policy set, if any.
func (s *Security) loadPolicies(ctx context.Context) error {
	ps, _, err := s.currentPolicies(ctx)
	if err != nil || ps.Version == 0 {
		return err
	}
	if err := s.engine.Apply(ctx, ps.Version, []byte(ps.Text)); err != nil {
		return fmt.Errorf("stored policies v%d no longer load: %w", ps.Version, err)
	}
	return nil
}

// watchPolicies installs every newer policy set stored from now on, by
// this node or another member of its cluster (the store is shared), until
// ctx ends: a policy applied on one member is enforced on all of them
// once the watch delivers it.
func (s *Security) watchPolicies(ctx context.Context) error {
	_, err := s.kv.Watch(ctx, "policy", func(ev store.WatchEvent) { // policy.current
		if ev.Deleted || ev.Key != policyCurrentKey {
			return
		}
		var ps api.PolicySet
		if err := json.Unmarshal(ev.Value, &ps); err != nil {
			s.log.Error("stored policies unreadable", "err", err)
			return
		}
		if ps.Version <= s.engine.Version() {
			return // applied here already
		}
		if err := s.engine.Apply(ctx, ps.Version, []byte(ps.Text)); err != nil && !errors.Is(err, policy.ErrStaleVersion) {
			s.log.Error("stored policies do not load", "version", ps.Version, "err", err)
		}
	})
	return err
}

func (s *Security) currentPolicies(ctx context.Context) (api.PolicySet, uint64, error) {
	e, err := s.kv.Get(ctx, policyCurrentKey)
	if errors.Is(err, store.ErrNotFound) {
		return api.PolicySet{}, 0, nil
	}
	if err != nil {
		return api.PolicySet{}, 0, fmt.Errorf("load policies: %w", err)
	}
	var ps api.PolicySet
	if err := json.Unmarshal(e.Value, &ps); err != nil {
		return api.PolicySet{}, 0, fmt.Errorf("load policies: %w", err)
	}
	return ps, e.Revision, nil
}

// ApplyPolicies validates text against the schema and makes it the next
// version, durably, on behalf of by (a principal ID); the change is
// audited. A parse or schema error is a validation problem naming the line
// and column.
func (s *Security) ApplyPolicies(ctx context.Context, text, by string) (api.PolicySet, error) {
	cur, rev, err := s.currentPolicies(ctx)
	if err != nil {
		return api.PolicySet{}, err
	}
	if err := policy.Validate([]byte(text)); err != nil {
		return api.PolicySet{}, policyProblem(err)
	}
	next := api.PolicySet{Version: cur.Version + 1, Text: text, Updated: s.now().UTC(), By: by}
	b, _ := json.Marshal(next)
	if _, err := s.kv.Put(ctx, policyVersionKey(next.Version), b); err != nil {
		return api.PolicySet{}, fmt.Errorf("store policies: %w", err)
	}
	if rev == 0 {
		_, err = s.kv.Create(ctx, policyCurrentKey, b)
	} else {
		_, err = s.kv.Update(ctx, policyCurrentKey, b, rev)
	}
	if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
		return api.PolicySet{}, api.Errorf(api.KindConflict, "policies changed while applying; apply again")
	}
	if err != nil {
		return api.PolicySet{}, fmt.Errorf("store policies: %w", err)
	}
	if err := s.engine.Apply(ctx, next.Version, []byte(text)); err != nil {
		return api.PolicySet{}, policyProblem(err)
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypePolicy, Principal: by, Action: "policy.apply",
		Outcome: "applied", Detail: map[string]any{"version": next.Version}})
	return next, nil
}

// CheckHosts validates a trusted or private host-pattern list: a pattern
// that does not parse is a validation problem naming its index.
func CheckHosts(hosts []string) error {
	for i, h := range hosts {
		if _, err := hostpattern.ParseHost(strings.ToLower(h)); err != nil {
			return api.FieldErrorf(api.KindValidation, "hosts["+strconv.Itoa(i)+"]", "host pattern %q: %v", h, err)
		}
	}
	return nil
}

// CheckPolicies validates a user policy set against the schema: a parse
// or schema error is a validation problem naming the line and column.
func CheckPolicies(text string) error {
	if err := policy.Validate([]byte(text)); err != nil {
		return policyProblem(err)
	}
	return nil
}

// policyProblem turns a parse or validation error into a 422 naming the
// line and column.
func policyProblem(err error) error {
	var pe *policy.ParseError
	if errors.As(err, &pe) {
		return api.FieldErrorf(api.KindValidation, fmt.Sprintf("line %d column %d", pe.Line, pe.Column),
			"policy syntax error at line %d, column %d: %s", pe.Line, pe.Column, pe.Msg)
	}
	var ve *policy.ValidationError
	if errors.As(err, &ve) {
		return api.FieldErrorf(api.KindValidation, fmt.Sprintf("line %d column %d", ve.Line, ve.Column),
			"policy %s at line %d, column %d does not fit the schema: %s", ve.PolicyID, ve.Line, ve.Column, ve.Msg)
	}
	return api.Errorf(api.KindValidation, "invalid policies: %v", err)
}

// trustedTTL bounds how stale another node's trusted-host change may be here.
const trustedTTL = time.Second

// hostCache is the last host-pattern list read from the store.
type hostCache struct {
	hosts []string
	at    time.Time
}

// TrustedHosts returns the host patterns marked trusted: reading from one
// keeps a session's integrity (cached for trustedTTL; changes made on this
// node apply at once).
func (s *Security) TrustedHosts(ctx context.Context) ([]string, error) {
	return s.hostList(ctx, trustedHostsKey, &s.trusted)
}

// SetTrustedHosts replaces the trusted host patterns on behalf of by (a
// principal ID); the change is audited. A pattern that does not parse is a
// validation problem naming its index.
func (s *Security) SetTrustedHosts(ctx context.Context, hosts []string, by string) error {
	if err := s.setHostList(ctx, trustedHostsKey, &s.trusted, hosts); err != nil {
		return err
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypePolicy, Principal: by, Action: "trusted-hosts.set",
		Outcome: "applied", Detail: map[string]any{"hosts": hosts}})
	return nil
}

// PrivateHosts returns the host patterns whose data is private: reading a
// response from one raises a session's confidentiality to private.
func (s *Security) PrivateHosts(ctx context.Context) ([]string, error) {
	return s.hostList(ctx, privateHostsKey, &s.private)
}

// SetPrivateHosts replaces the private-data host patterns on behalf of by;
// the change is audited.
func (s *Security) SetPrivateHosts(ctx context.Context, hosts []string, by string) error {
	if err := s.setHostList(ctx, privateHostsKey, &s.private, hosts); err != nil {
		return err
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypePolicy, Principal: by, Action: "private-hosts.set",
		Outcome: "applied", Detail: map[string]any{"hosts": hosts}})
	return nil
}

// hostList reads one stored host-pattern list through its cache.
func (s *Security) hostList(ctx context.Context, key string, cache *atomic.Pointer[hostCache]) ([]string, error) {
	if c := cache.Load(); c != nil && s.now().Sub(c.at) < trustedTTL {
		return c.hosts, nil
	}
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		cache.Store(&hostCache{hosts: []string{}, at: s.now()})
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	var th api.TrustedHosts
	if err := json.Unmarshal(e.Value, &th); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	cache.Store(&hostCache{hosts: th.Hosts, at: s.now()})
	return th.Hosts, nil
}

func (s *Security) setHostList(ctx context.Context, key string, cache *atomic.Pointer[hostCache], hosts []string) error {
	if err := CheckHosts(hosts); err != nil {
		return err
	}
	if hosts == nil {
		hosts = []string{}
	}
	b, _ := json.Marshal(api.TrustedHosts{Hosts: hosts})
	if _, err := s.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	cache.Store(&hostCache{hosts: hosts, at: s.now()})
	return nil
}
