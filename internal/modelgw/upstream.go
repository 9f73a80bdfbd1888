package modelgw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// errAttemptTimeout marks an attempt cut by the provider's timeout.
var errAttemptTimeout = errors.New("provider timeout")

// answer is a provider's successful response. For streams body is open
// (the caller closes it); otherwise data holds the whole body.
type answer struct {
	route  route
	status int
	header http.Header
	data   []byte
	body   io.ReadCloser
}

// attemptErr is a failed attempt and what to do next.
type attemptErr struct {
	provider   string
	status     int // 0 for transport errors
	msg        string
	retryAfter time.Duration // from the provider, 0 if none
	// final: the caller's own error (4xx): no retry, no fallback.
	final bool
	// refused is the platform's own refusal (policy, egress rules): final,
	// and returned to the caller as it is.
	refused *api.Problem
	// next: skip the remaining retries of this provider (e.g. 401).
	next    bool
	timeout bool
}

// result labels the attempt in metrics.
func (e *attemptErr) result() string {
	switch {
	case e.status != 0:
		return strconv.Itoa(e.status)
	case e.timeout:
		return "timeout"
	}
	return "error"
}

func (e *attemptErr) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("%s: HTTP %d: %s", e.provider, e.status, e.msg)
	}
	return e.provider + ": " + e.msg
}

// send tries the routes in order, each up to 1+Retries times, and returns
// the first success. A caller error (4xx other than 401, 403, 408, 429)
// ends it at once as a problem with the provider's message; 3xx, 401 and
// 403 move on to the next provider without retrying. A refusal by the
// platform itself (Doer returned an *api.Problem: policy, egress address
// rules) ends it at once with that problem: no retry, no fallback.
func (g *Gateway) send(ctx context.Context, c Caller, req *request, routes []route, capTokens int64) (*answer, error) {
	var errs []string
	allTimeouts := true
	for _, rt := range routes {
		body, err := req.body(rt, capTokens)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		for attempt := 0; attempt <= g.cfg.Retries; attempt++ {
			ans, aerr := g.attempt(ctx, c, req, rt, body)
			if aerr == nil {
				g.m.attempts.WithLabelValues(rt.provider.Name, "ok").Inc()
				return ans, nil
			}
			g.m.attempts.WithLabelValues(rt.provider.Name, aerr.result()).Inc()
			if ctx.Err() != nil {
				return nil, api.Errorf(api.KindTimeout, "model call abandoned: %v", context.Cause(ctx))
			}
			if aerr.refused != nil {
				return nil, aerr.refused
			}
			if aerr.final {
				return nil, callerProblem(aerr)
			}
			g.cfg.Logger.WarnContext(ctx, "model provider attempt failed", "provider", rt.provider.Name,
				"attempt", attempt+1, "status", aerr.status, "err", aerr.msg)
			if attempt == 0 || errs[len(errs)-1] != aerr.Error() {
				errs = append(errs, aerr.Error())
			}
			allTimeouts = allTimeouts && aerr.timeout
			if aerr.next || attempt == g.cfg.Retries {
				break
			}
			wait := g.backoff(attempt)
			if aerr.retryAfter > 0 {
				if aerr.retryAfter > g.cfg.RetryAfterMax {
					break // too long: the next provider is better
				}
				wait = aerr.retryAfter
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, api.Errorf(api.KindTimeout, "model call abandoned: %v", context.Cause(ctx))
			case <-t.C:
			}
		}
	}
	kind := api.KindUnavailable
	if allTimeouts {
		kind = api.KindTimeout
	}
	return nil, api.Errorf(kind, "model %q: every provider failed: %s", req.model, strings.Join(errs, "; "))
}

// backoff is exponential with full jitter in [d/2, d].
func (g *Gateway) backoff(attempt int) time.Duration {
	d := g.cfg.BackoffBase << attempt
	if d > g.cfg.BackoffMax || d <= 0 {
		d = g.cfg.BackoffMax
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// attempt makes one request to one provider.
func (g *Gateway) attempt(ctx context.Context, c Caller, req *request, rt route, body []byte) (*answer, *attemptErr) {
	actx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(rt.timeout, func() { cancel(errAttemptTimeout) })
	done := func() {
		timer.Stop()
		cancel(nil)
	}
	fail := func(e *attemptErr) (*answer, *attemptErr) {
		e.provider = rt.provider.Name
		done()
		return nil, e
	}
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, rt.provider.BaseURL+"/"+string(req.kind), bytes.NewReader(body))
	if err != nil {
		return fail(&attemptErr{msg: err.Error(), next: true})
	}
	hreq.Header.Set("Content-Type", "application/json")
	if req.stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	if rt.provider.Secret != "" {
		hreq.Header.Set("Authorization", "Bearer {{secret:"+rt.provider.Secret+"}}")
	}
	resp, err := g.cfg.Do(actx, Outbound{Caller: c, Provider: rt.provider.Name, Host: rt.host, Dest: rt.dest,
		Secret: rt.provider.Secret, AllowPrivate: rt.provider.AllowPrivate}, hreq)
	if err != nil {
		var p *api.Problem
		if errors.As(err, &p) { // our own policy or egress rules: asking again changes nothing
			return fail(&attemptErr{msg: p.Detail, refused: p, final: true})
		}
		if errors.Is(context.Cause(actx), errAttemptTimeout) {
			return fail(&attemptErr{msg: fmt.Sprintf("no answer within %s", rt.timeout), timeout: true})
		}
		return fail(&attemptErr{msg: err.Error()})
	}
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		e := &attemptErr{status: resp.StatusCode, msg: providerMessage(data)}
		e.retryAfter = retryAfter(resp.Header.Get("Retry-After"), g.cfg.Now())
		switch {
		case resp.StatusCode == 429 || resp.StatusCode >= 500 || resp.StatusCode == 408:
		case resp.StatusCode < 400 || resp.StatusCode == 401 || resp.StatusCode == 403:
			e.next = true // a redirect or the platform's key: not the caller's fault
		default:
			e.final = true
		}
		return fail(e)
	}
	ans := &answer{route: rt, status: resp.StatusCode, header: resp.Header}
	if req.stream {
		timer.Stop() // the timeout bounds the wait for headers only
		ans.body = &cancelBody{ReadCloser: resp.Body, cancel: func() { cancel(nil) }}
		return ans, nil
	}
	ans.data, err = io.ReadAll(io.LimitReader(resp.Body, g.cfg.MaxResponseBytes+1))
	resp.Body.Close()
	if err != nil {
		if errors.Is(context.Cause(actx), errAttemptTimeout) {
			return fail(&attemptErr{msg: fmt.Sprintf("answer not complete within %s", rt.timeout), timeout: true})
		}
		return fail(&attemptErr{msg: "read answer: " + err.Error()})
	}
	if int64(len(ans.data)) > g.cfg.MaxResponseBytes {
		return fail(&attemptErr{msg: fmt.Sprintf("answer larger than %d bytes", g.cfg.MaxResponseBytes), next: true})
	}
	if !json.Valid(ans.data) {
		return fail(&attemptErr{msg: "answer is not JSON"})
	}
	done()
	return ans, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// providerMessage extracts error.message from an OpenAI-style error body.
func providerMessage(data []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(data, &e) == nil {
		if e.Error.Message != "" {
			return e.Error.Message
		}
		if e.Detail != "" {
			return e.Detail
		}
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	if s == "" {
		return "no details"
	}
	return s
}

// callerProblem turns a provider's 4xx into ours, keeping its message.
func callerProblem(e *attemptErr) error {
	kind := api.KindBadRequest
	switch e.status {
	case http.StatusNotFound:
		kind = api.KindNotFound
	case http.StatusRequestEntityTooLarge:
		kind = api.KindTooLarge
	case http.StatusUnprocessableEntity:
		kind = api.KindValidation
	case http.StatusUnsupportedMediaType:
		kind = api.KindUnsupportedMedia
	}
	return api.Errorf(kind, "provider %s refused the request (HTTP %d): %s", e.provider, e.status, e.msg)
}

// retryAfter parses Retry-After: delay seconds or an HTTP date. Anything
// else (or a time in the past) is 0.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > 86400 {
			n = 86400
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
