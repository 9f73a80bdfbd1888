package client

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// DeployAsync uploads a bundle like Deploy but does not wait for its
// pipeline run: the answer names the run (Run, RunState) unless the
// version serves already. Follow it with RunEvents or WaitRun.
func (c *Client) DeployAsync(ctx context.Context, tarGz []byte) (*api.AgentVersion, error) {
	resp, err := c.rawHeader(ctx, http.MethodPost, "/v1/agents", bytes.NewReader(tarGz), "application/gzip",
		http.Header{"Prefer": {"respond-async"}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v api.AgentVersion
	if err := decodeJSON(resp.Body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func runPath(id string) string { return "/v1/pipeline/runs/" + url.PathEscape(id) }

// PipelineRuns lists pipeline runs, newest first ("" agent: every agent the
// caller may read; limit 0: the server's default).
func (c *Client) PipelineRuns(ctx context.Context, agent string, limit int) ([]api.PipelineRun, error) {
	q := url.Values{}
	if agent != "" {
		q.Set("agent", agent)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/pipeline/runs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l api.PipelineRunList
	return l.Runs, c.Do(ctx, http.MethodGet, path, nil, &l)
}

// PipelineRun returns one run.
func (c *Client) PipelineRun(ctx context.Context, id string) (*api.PipelineRun, error) {
	var r api.PipelineRun
	if err := c.Do(ctx, http.MethodGet, runPath(id), nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PipelineLogs returns a run's events from sequence from on.
func (c *Client) PipelineLogs(ctx context.Context, id string, from uint64, limit int) (*api.PipelineLogs, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var l api.PipelineLogs
	if err := c.Do(ctx, http.MethodGet, runPath(id)+"/logs?"+q.Encode(), nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// RunEvents streams a run's events as they happen (from sequence from on)
// to fn until the run ends or waits for review, fn returns an error, or
// ctx ends.
func (c *Client) RunEvents(ctx context.Context, id string, from uint64, fn func(api.PipelineEvent) error) error {
	resp, err := c.rawHeader(ctx, http.MethodGet, runPath(id)+"/events?from="+strconv.FormatUint(from, 10), nil, "",
		http.Header{"Accept": {api.PipelineEventContentType}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readNDJSON(ctx, resp.Body, "run event", fn)
}

// WaitRun waits until run id has ended or waits for a review, or ctx
// ends, and returns it as last read. It follows the run's event stream
// (which the server ends when the run ends or waits) rather than polling;
// a stream that ends with nothing new is retried after a pause.
func (c *Client) WaitRun(ctx context.Context, id string) (*api.PipelineRun, error) {
	var from uint64
	for {
		r, err := c.PipelineRun(ctx, id)
		if err != nil {
			return nil, err
		}
		if r.Terminal() || waitsForReview(r) {
			return r, nil
		}
		seen := false
		err = c.RunEvents(ctx, id, from, func(ev api.PipelineEvent) error {
			from, seen = ev.Seq+1, true
			return nil
		})
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		if err != nil || !seen {
			select {
			case <-ctx.Done():
				return r, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// waitsForReview reports whether run waits for a person (nothing else
// moves it).
func waitsForReview(r *api.PipelineRun) bool {
	return r.State == api.RunWaiting && !r.CancelRequested && (r.Review == nil || r.Review.Decision == "")
}

// ApproveRun approves a run waiting for review.
func (c *Client) ApproveRun(ctx context.Context, id, comment string) (*api.PipelineRun, error) {
	var r api.PipelineRun
	return &r, c.Do(ctx, http.MethodPost, runPath(id)+"/approve", api.PipelineReviewRequest{Comment: comment}, &r)
}

// RejectRun rejects a run waiting for review.
func (c *Client) RejectRun(ctx context.Context, id, comment string) (*api.PipelineRun, error) {
	var r api.PipelineRun
	return &r, c.Do(ctx, http.MethodPost, runPath(id)+"/reject", api.PipelineReviewRequest{Comment: comment}, &r)
}

// CancelRun cancels a run.
func (c *Client) CancelRun(ctx context.Context, id string) (*api.PipelineRun, error) {
	var r api.PipelineRun
	return &r, c.Do(ctx, http.MethodPost, runPath(id)+"/cancel", nil, &r)
}

// PipelineDiff returns a run's version against its parent.
func (c *Client) PipelineDiff(ctx context.Context, id string) (*api.PipelineDiff, error) {
	var d api.PipelineDiff
	if err := c.Do(ctx, http.MethodGet, runPath(id)+"/diff", nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// PipelineProvenance returns a released run's signed provenance.
func (c *Client) PipelineProvenance(ctx context.Context, id string) (*api.PipelineProvenance, error) {
	var p api.PipelineProvenance
	if err := c.Do(ctx, http.MethodGet, runPath(id)+"/provenance", nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// TestBundle runs a bundle's tests as the pipeline's test stage would,
// without deploying it.
func (c *Client) TestBundle(ctx context.Context, tarGz []byte) (*api.PipelineTestReport, error) {
	return postBundle[api.PipelineTestReport](ctx, c, "/v1/pipeline/test", tarGz)
}
