package security

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/store"
)

// labelStore keeps session labels durably in the security bucket. Labels
// move one way only: updates join with the stored value under
// compare-and-set, so concurrent updates on any node never undo each other;
// only reset (an admin) lowers them.
type labelStore struct {
	kv    store.KV
	audit *audit.Log
	now   func() time.Time
}

func (l *labelStore) load(ctx context.Context, agent, sess string) (policy.Labels, uint64, error) {
	e, err := l.kv.Get(ctx, labelsKey(agent, sess))
	if errors.Is(err, store.ErrNotFound) {
		return policy.Labels{}, 0, nil
	}
	if err != nil {
		return policy.Labels{}, 0, err
	}
	var al api.Labels
	if err := json.Unmarshal(e.Value, &al); err != nil {
		// Fail closed: an unreadable record is the most restrictive label.
		return policy.Labels{Integrity: policy.Untrusted, Confidentiality: policy.SecretData}, e.Revision, nil
	}
	i, err1 := policy.ParseIntegrity(al.Integrity)
	c, err2 := policy.ParseConfidentiality(al.Confidentiality)
	if err1 != nil || err2 != nil {
		return policy.Labels{Integrity: policy.Untrusted, Confidentiality: policy.SecretData}, e.Revision, nil
	}
	return policy.Labels{Integrity: i, Confidentiality: c}, e.Revision, nil
}

func (l *labelStore) get(ctx context.Context, agent, sess string) (policy.Labels, error) {
	lb, _, err := l.load(ctx, agent, sess)
	return lb, err
}

// join makes the session's labels at least as restrictive as with, and
// audits a change with reason.
func (l *labelStore) join(ctx context.Context, agent, sess string, with policy.Labels, reason string) (policy.Labels, error) {
	for range 20 {
		cur, rev, err := l.load(ctx, agent, sess)
		if err != nil {
			return cur, fmt.Errorf("labels of %s/%s: %w", agent, sess, err)
		}
		next := cur.Join(with)
		if next == cur {
			return cur, nil
		}
		b, _ := json.Marshal(api.Labels{Integrity: next.Integrity.String(), Confidentiality: next.Confidentiality.String(), Updated: l.now().UTC()})
		if rev == 0 {
			_, err = l.kv.Create(ctx, labelsKey(agent, sess), b)
		} else {
			_, err = l.kv.Update(ctx, labelsKey(agent, sess), b, rev)
		}
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return cur, fmt.Errorf("labels of %s/%s: %w", agent, sess, err)
		}
		_ = l.audit.Record(ctx, api.AuditEvent{Type: audit.TypeLabel, Session: agent + "/" + sess, Outcome: next.String(),
			Reason: reason, Detail: map[string]any{"from": cur.String(), "to": next.String()}})
		return next, nil
	}
	return policy.Labels{}, fmt.Errorf("labels of %s/%s: too much contention", agent, sess)
}

// reset returns a session to trusted/public (an administrator's decision).
func (l *labelStore) reset(ctx context.Context, agent, sess, by string) error {
	cur, _, err := l.load(ctx, agent, sess)
	if err != nil {
		return err
	}
	if err := l.kv.Delete(ctx, labelsKey(agent, sess)); err != nil {
		return fmt.Errorf("reset labels of %s/%s: %w", agent, sess, err)
	}
	_ = l.audit.Record(ctx, api.AuditEvent{Type: audit.TypeLabel, Principal: by, Session: agent + "/" + sess,
		Outcome: policy.Labels{}.String(), Reason: "reset by administrator", Detail: map[string]any{"from": cur.String()}})
	return nil
}

// Labels returns a session's integrity and confidentiality labels.
func (s *Security) Labels(ctx context.Context, agent, sess string) (api.Labels, error) {
	l, err := s.labels.get(ctx, agent, sess)
	if err != nil {
		return api.Labels{}, err
	}
	return api.Labels{Integrity: l.Integrity.String(), Confidentiality: l.Confidentiality.String()}, nil
}

// ResetLabels returns a session to trusted/public on behalf of by (an
// administrator's decision); the change is audited.
func (s *Security) ResetLabels(ctx context.Context, agent, sess, by string) error {
	return s.labels.reset(ctx, agent, sess, by)
}
