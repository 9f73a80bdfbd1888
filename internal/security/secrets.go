package security

// Secrets as resources (secrets.go): values sealed by internal/secrets,
// with an owner record per secret in the security bucket (the creator), so
// Cedar can decide secret.read, secret.set and secret.use by ownership.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

// MaxSecretHosts bounds a secret's allow_hosts list.
const MaxSecretHosts = 64

// secretResource is the authorization resource of secret name.
func secretResource(name string) Resource { return Resource{Type: policy.TypeSecret, ID: name} }

// secretOwner returns a secret's owner (a SPIFFE ID, "" for admins only)
// and metadata, and whether it exists.
func (s *Security) secretOwner(ctx context.Context, name string) (string, secrets.Secret, bool, error) {
	meta, err := s.secrets.Describe(ctx, name)
	if errors.Is(err, secrets.ErrNotFound) {
		return "", secrets.Secret{}, false, nil
	}
	if err != nil {
		return "", secrets.Secret{}, false, err
	}
	e, err := s.kv.Get(ctx, secretOwnerKey(name))
	if err != nil {
		return "", meta, true, nil // no owner record: admins only
	}
	return string(e.Value), meta, true, nil
}

// ListSecrets returns the secrets caller may read (secret.read, each
// probe unaudited), sorted by name: names and allowed hosts, never values.
func (s *Security) ListSecrets(ctx context.Context, caller Principal) ([]api.Secret, error) {
	names, err := s.secretNames(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.Secret{}
	for _, n := range names {
		if s.Authorize(session.Filtering(ctx), caller, "secret.read", secretResource(n)) != nil {
			continue
		}
		if sec, err := s.DescribeSecret(ctx, n); err == nil {
			out = append(out, sec)
		}
	}
	return out, nil
}

func (s *Security) secretNames(ctx context.Context) ([]string, error) {
	// The Manager has no List; the names are the owner records.
	keys, err := s.kv.Keys(ctx, "secret-owner")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		parts, err := store.KeyParts(k)
		if err == nil && len(parts) == 2 {
			out = append(out, parts[1])
		}
	}
	slices.Sort(out)
	return out, nil
}

// DescribeSecret returns a secret's metadata (never its value); a missing
// secret is a not-found problem.
func (s *Security) DescribeSecret(ctx context.Context, name string) (api.Secret, error) {
	owner, meta, ok, err := s.secretOwner(ctx, name)
	if err != nil {
		return api.Secret{}, err
	}
	if !ok {
		return api.Secret{}, api.Errorf(api.KindNotFound, "secret %q does not exist: create it with agentcloud secret set", name)
	}
	return api.Secret{Name: meta.Name, AllowHosts: meta.AllowHosts, AllowHTTP: meta.AllowHTTP, Owner: owner}, nil
}

// SetSecret creates or replaces secret name (sealed at rest) and the hosts
// it may be sent to, on behalf of by, who owns it if it is new. Bad input
// is a validation problem naming the field.
func (s *Security) SetSecret(ctx context.Context, by, name string, in api.SecretRequest) (api.Secret, error) {
	if err := CheckSecretMetadata(api.SecretMetadata{AllowHosts: in.AllowHosts, AllowHTTP: in.AllowHTTP}); err != nil {
		return api.Secret{}, err
	}
	def := secrets.Secret{Name: name, AllowHosts: in.AllowHosts, AllowHTTP: in.AllowHTTP}
	err := s.secrets.Set(ctx, def, []byte(in.Value))
	if errors.Is(err, secrets.ErrInvalidName) {
		return api.Secret{}, api.FieldErrorf(api.KindValidation, "name", "secret names are 1-128 characters of A-Z a-z 0-9 _ . -")
	}
	if err != nil {
		return api.Secret{}, err
	}
	if _, err := s.kv.Create(ctx, secretOwnerKey(name), []byte(by)); err != nil && !errors.Is(err, store.ErrExists) {
		return api.Secret{}, err
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeSecret, Principal: by, Action: "secret.set",
		Resource: "Secret::" + name, Outcome: "set", Detail: map[string]any{"allow_hosts": in.AllowHosts, "allow_http": in.AllowHTTP}})
	return s.DescribeSecret(ctx, name)
}

// CheckSecretMetadata validates a secret's metadata: at least one and at
// most MaxSecretHosts allowed hosts, each a host pattern with an optional
// port (a validation problem naming the entry).
func CheckSecretMetadata(m api.SecretMetadata) error {
	if len(m.AllowHosts) == 0 {
		return api.FieldErrorf(api.KindValidation, "allow_hosts", "name at least one host the secret may be sent to (--allow-host)")
	}
	if len(m.AllowHosts) > MaxSecretHosts {
		return api.FieldErrorf(api.KindValidation, "allow_hosts", "%d entries: at most %d", len(m.AllowHosts), MaxSecretHosts)
	}
	for i, h := range m.AllowHosts {
		if _, err := secrets.ParseAllowHost(h); err != nil {
			return api.FieldErrorf(api.KindValidation, fmt.Sprintf("allow_hosts[%d]", i), "%v", err)
		}
	}
	return nil
}

// SetSecretMetadata replaces the metadata of existing secret name on
// behalf of by and keeps its value (a secret run's apply: the value never
// passes through here). A missing secret is a not-found problem.
func (s *Security) SetSecretMetadata(ctx context.Context, by, name string, m api.SecretMetadata) error {
	if err := CheckSecretMetadata(m); err != nil {
		return err
	}
	err := s.secrets.SetMetadata(ctx, secrets.Secret{Name: name, AllowHosts: m.AllowHosts, AllowHTTP: m.AllowHTTP})
	if errors.Is(err, secrets.ErrNotFound) {
		return api.Errorf(api.KindNotFound, "secret %q does not exist: create it with agentcloud secret set", name)
	}
	if err != nil {
		return err
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeSecret, Principal: by, Action: "secret.metadata",
		Resource: "Secret::" + name, Outcome: "set", Detail: map[string]any{"allow_hosts": m.AllowHosts, "allow_http": m.AllowHTTP}})
	return nil
}

// SetSecretValue replaces the value of existing secret name on behalf of
// by and keeps its metadata. A missing secret is a not-found problem.
func (s *Security) SetSecretValue(ctx context.Context, by, name, value string) error {
	err := s.secrets.SetValue(ctx, name, []byte(value))
	if errors.Is(err, secrets.ErrNotFound) {
		return api.Errorf(api.KindNotFound, "secret %q does not exist: create it with agentcloud secret set", name)
	}
	if err != nil {
		return err
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeSecret, Principal: by, Action: "secret.value",
		Resource: "Secret::" + name, Outcome: "set"})
	return nil
}

// DeleteSecret deletes secret name and its owner record on behalf of by.
func (s *Security) DeleteSecret(ctx context.Context, by, name string) error {
	if err := s.secrets.Delete(ctx, name); err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, secretOwnerKey(name)); err != nil {
		return err
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeSecret, Principal: by, Action: "secret.delete",
		Resource: "Secret::" + name, Outcome: "deleted"})
	return nil
}
