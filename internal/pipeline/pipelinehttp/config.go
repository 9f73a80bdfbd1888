package pipelinehttp

import (
	"context"
	"encoding/json"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/pipeline"
)

// ConfigChanger submits configuration changes (the policy set, trusted and
// private hosts: securityhttp's Changes) as pipeline runs and waits for
// them like a deploy: at most DeployWait, not at all when async.
type ConfigChanger struct {
	// Runner returns the node's runner (nil until the pipeline part has
	// started, or after it closed).
	Runner    func() *pipeline.Runner
	Principal PrincipalFunc
}

// ChangeConfig runs a change of target (name: a secret or upstream, "" for
// the platform's lists) to value for by.
func (c ConfigChanger) ChangeConfig(ctx context.Context, by httpapi.Principal, target, name string, value json.RawMessage, async bool) (api.PipelineRun, error) {
	r := c.Runner()
	if r == nil {
		return api.PipelineRun{}, api.Errorf(api.KindUnavailable, "the deploy pipeline is not running")
	}
	wait := DeployWait
	if async {
		wait = 0
	}
	return r.ChangeConfig(ctx, pipeline.ConfigSubmission{Target: target, Name: name, Value: value, Principal: c.Principal(ctx, by)}, wait)
}
