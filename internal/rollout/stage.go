package rollout

import (
	"context"

	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/pipeline"
)

// Stage is the pipeline's roll-out stage on a Controller: the version
// rolls out in the manifest's (or the node's default) steps, only if the
// agent still serves the version the run was made against, and once per
// run (a resumed run gets the rollout it started).
type Stage struct{ C *Controller }

var _ pipeline.Rollout = Stage{}

// Release implements pipeline.Rollout.
func (s Stage) Release(ctx context.Context, r pipeline.Release) error {
	parent := r.Parent
	req := Start{Agent: r.Agent, Version: r.Version, Author: r.Owner, Expect: &parent, Run: r.Run}
	if r.Provenance.Hash != (ledger.Hash{}) {
		ref := r.Provenance
		req.Parent = &ref
	}
	_, err := s.C.Start(ctx, req)
	return err
}
