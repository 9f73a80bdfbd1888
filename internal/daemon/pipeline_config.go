package daemon

// Configuration changes through the pipeline (pipeline_config.go): the
// targets a configuration run changes — the user policy set and the
// trusted and private host lists, owned by security — and the
// securityhttp.Changes its routes submit runs through.

import (
	"context"
	"encoding/json"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/security/securityhttp"
)

// configTargets are the configuration this node changes through runs.
func (d *Daemon) configTargets() map[string]pipeline.ConfigTarget {
	return map[string]pipeline.ConfigTarget{
		api.ConfigPolicies:     pipeline.PolicyTarget{Get: d.sec.Policies, Put: d.sec.ApplyPolicies, Validate: security.CheckPolicies},
		api.ConfigTrustedHosts: pipeline.HostListTarget{Get: d.sec.TrustedHosts, Set: d.sec.SetTrustedHosts, Validate: security.CheckHosts},
		api.ConfigPrivateHosts: pipeline.HostListTarget{Get: d.sec.PrivateHosts, Set: d.sec.SetPrivateHosts, Validate: security.CheckHosts},
	}
}

// configChanges submits the security routes' changes to the runner and
// waits for them like a deploy (deployWait; not at all when async).
type configChanges struct{ d *Daemon }

var _ securityhttp.Changes = configChanges{}

// ChangeConfig implements securityhttp.Changes.
func (c configChanges) ChangeConfig(ctx context.Context, by httpapi.Principal, target, name string, value json.RawMessage, async bool) (api.PipelineRun, error) {
	r := c.d.pipeRunner.Load()
	if r == nil {
		return api.PipelineRun{}, api.Errorf(api.KindUnavailable, "the deploy pipeline is not running")
	}
	wait := deployWait
	if async {
		wait = 0
	}
	return r.ChangeConfig(ctx, pipeline.ConfigSubmission{Target: target, Name: name, Value: value, Principal: c.d.pipelinePrincipal(ctx, by)}, wait)
}
