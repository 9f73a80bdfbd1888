package securityhttp

// Configuration changes through the deploy pipeline (changes.go): with a
// Changes, PUT /v1/policies, /v1/trusted-hosts and /v1/private-hosts
// submit a pipeline run (validate → policy → review → record → apply) and
// answer like a deploy: 201 and the value in force when the run passed,
// 202 with the run (and Location) when it waits for a review or is still
// going (at once with Prefer: respond-async), 422 pipeline-failed naming
// the stage when it failed; a value that does not validate is 400 naming
// the field, and no run.

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/security"
)

// Changes runs a change of the platform's configuration through the deploy
// pipeline (the daemon's runner): target is an api.Config* name, name the
// secret or upstream ("" for the platform's lists), value the proposed
// value as the target takes it. async: answer with the run at once rather
// than wait for it. It returns the run as it stands, or the problem that
// refused it or that it failed with (pipeline-failed).
type Changes interface {
	ChangeConfig(ctx context.Context, by httpapi.Principal, target, name string, value json.RawMessage, async bool) (api.PipelineRun, error)
}

// changeStatuses is the routes' summary of their answers.
const changeStatuses = "201 when applied, 202 with the run when it waits for review, 422 pipeline-failed naming the stage."

// runPath is where a run is served.
func runPath(id string) string { return "/v1/pipeline/runs/" + id }

// async reports whether the request asks not to wait (Prefer: respond-async).
func async(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "respond-async")
}

// runStatus sets Location and returns 201 for a passed run, 202 otherwise.
func runStatus(w http.ResponseWriter, run api.PipelineRun) int {
	w.Header().Set("Location", runPath(run.ID))
	if run.State == api.RunPassed {
		return http.StatusCreated
	}
	return http.StatusAccepted
}

func changeHosts(w http.ResponseWriter, r *http.Request, changes Changes, target string, hosts []string) error {
	if hosts == nil {
		hosts = []string{}
	}
	v, _ := json.Marshal(api.TrustedHosts{Hosts: hosts})
	p, _ := httpapi.PrincipalFrom(r.Context())
	run, err := changes.ChangeConfig(r.Context(), p, target, "", v, async(r))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, runStatus(w, run), api.TrustedHosts{Hosts: hosts, Run: run.ID, RunState: run.State})
	return nil
}

func changePolicies(w http.ResponseWriter, r *http.Request, s *security.Security, changes Changes, text string) error {
	v, _ := json.Marshal(api.PolicySet{Text: text})
	p, _ := httpapi.PrincipalFrom(r.Context())
	run, err := changes.ChangeConfig(r.Context(), p, api.ConfigPolicies, "", v, async(r))
	if err != nil {
		return err
	}
	ps := api.PolicySet{Text: text}
	if run.State == api.RunPassed {
		if ps, err = s.Policies(r.Context()); err != nil {
			return err
		}
	}
	ps.Run, ps.RunState = run.ID, run.State
	httpapi.WriteJSON(w, runStatus(w, run), ps)
	return nil
}

// putSecret creates a new secret with its value and metadata at once (an
// owner creating a secret widens nothing that exists), or, for an
// existing one, submits a change of its metadata, when there is one, as a
// secret run whose value is the metadata alone, and replaces the value at
// once: the secret's value never enters a run, the ledger or a log.
// Metadata that does not validate, or a run that cannot be made or fails,
// refuses the whole request (the value stays as it was).
func putSecret(w http.ResponseWriter, r *http.Request, s *security.Security, changes Changes, in api.SecretRequest) error {
	name, by := r.PathValue("secret"), caller(r).ID
	cur, err := s.DescribeSecret(r.Context(), name)
	if api.IsKind(err, api.KindNotFound) {
		sec, err := s.SetSecret(r.Context(), by, name, in)
		if err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, sec)
		return nil
	}
	if err != nil {
		return err
	}
	meta := api.SecretMetadata{AllowHosts: in.AllowHosts, AllowHTTP: in.AllowHTTP}
	if err := security.CheckSecretMetadata(meta); err != nil {
		return err
	}
	if sameMetadata(cur, meta) {
		if err := s.SetSecretValue(r.Context(), by, name, in.Value); err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, cur)
		return nil
	}
	return changeSecret(w, r, s, changes, meta, func() error { return s.SetSecretValue(r.Context(), by, name, in.Value) })
}

// sameMetadata reports whether m is what sec allows already (hosts
// compared without regard to case, order or repeats).
func sameMetadata(sec api.Secret, m api.SecretMetadata) bool {
	norm := func(hs []string) []string {
		out := make([]string, 0, len(hs))
		for _, h := range hs {
			out = append(out, strings.ToLower(h))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return sec.AllowHTTP == m.AllowHTTP && slices.Equal(norm(sec.AllowHosts), norm(m.AllowHosts))
}

// changeSecret submits a change of a secret's metadata as a run, then
// (unless the run was refused or failed) calls then, and answers with the
// secret as it stands and the run.
func changeSecret(w http.ResponseWriter, r *http.Request, s *security.Security, changes Changes, m api.SecretMetadata, then func() error) error {
	if m.AllowHosts == nil {
		m.AllowHosts = []string{}
	}
	v, _ := json.Marshal(m)
	p, _ := httpapi.PrincipalFrom(r.Context())
	run, err := changes.ChangeConfig(r.Context(), p, api.ConfigSecret, r.PathValue("secret"), v, async(r))
	if err != nil {
		return err
	}
	if then != nil {
		if err := then(); err != nil {
			return err
		}
	}
	sec, err := s.DescribeSecret(r.Context(), r.PathValue("secret"))
	if err != nil {
		return err
	}
	sec.Run, sec.RunState = run.ID, run.State
	httpapi.WriteJSON(w, runStatus(w, run), sec)
	return nil
}
