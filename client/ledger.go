package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// LedgerCheckpoint returns the ledger's signed checkpoint (C2SP
// tlog-checkpoint text).
func (c *Client) LedgerCheckpoint(ctx context.Context) (string, error) {
	resp, err := c.Raw(ctx, http.MethodGet, "/v1/ledger/checkpoint", nil, "")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read checkpoint: %w", err)
	}
	return string(b), nil
}

// LedgerKey returns the note verifier key of the ledger's checkpoints
// (public), to pin and check proofs with offline.
func (c *Client) LedgerKey(ctx context.Context) (string, error) {
	resp, err := c.Raw(ctx, http.MethodGet, "/v1/ledger/key", nil, "")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return "", fmt.Errorf("read ledger key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// LedgerEntry returns entry index.
func (c *Client) LedgerEntry(ctx context.Context, index uint64) (*api.LedgerRecord, error) {
	var r api.LedgerRecord
	if err := c.Do(ctx, http.MethodGet, "/v1/ledger/entries/"+strconv.FormatUint(index, 10), nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// LedgerProof returns entry index's inclusion proof against the current
// signed checkpoint.
func (c *Client) LedgerProof(ctx context.Context, index uint64) (*api.LedgerInclusionProof, error) {
	var p api.LedgerInclusionProof
	if err := c.Do(ctx, http.MethodGet, "/v1/ledger/entries/"+strconv.FormatUint(index, 10)+"/proof", nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// LedgerWhy returns the entry with leaf hash hash (64 hex digits) and
// everything it follows from.
func (c *Client) LedgerWhy(ctx context.Context, hash string) (*api.LedgerTrail, error) {
	var t api.LedgerTrail
	if err := c.Do(ctx, http.MethodGet, "/v1/ledger/why/"+url.PathEscape(hash), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// LedgerVerify asks the daemon to re-derive the ledger's tree from every
// entry and check its tiles and checkpoints (administrators only).
func (c *Client) LedgerVerify(ctx context.Context) (*api.LedgerVerifyReport, error) {
	var r api.LedgerVerifyReport
	if err := c.Do(ctx, http.MethodPost, "/v1/ledger/verify", nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Deployment returns which versions of an agent serve which share, and its
// latest rollout.
func (c *Client) Deployment(ctx context.Context, agent string) (*api.Deployment, error) {
	var d api.Deployment
	if err := c.Do(ctx, http.MethodGet, "/v1/agents/"+url.PathEscape(agent)+"/deployment", nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Rollback serves an earlier version of agent again: to ("" for the one
// the latest rollout replaced).
func (c *Client) Rollback(ctx context.Context, agent, to, reason string) (*api.Deployment, error) {
	var d api.Deployment
	if err := c.Do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(agent)+"/rollback", api.RollbackRequest{To: to, Reason: reason}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}
