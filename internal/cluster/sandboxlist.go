package cluster

// Sandbox lists across members (sandboxlist.go). Sandboxes are node-local,
// so GET /v1/sandboxes reaching any member gathers the caller's sandboxes
// from every member: its own list, and each other live member's, asked
// over the peer link with the caller's credentials (each member filters
// its list for the caller as it would its own). A sandbox id names its
// member (sb-NODE-hex). Members that do not answer are named in a header
// rather than failing the whole list.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// UnreachableHeader names, on a sandbox list, the members whose sandboxes
// it lacks because they did not answer (comma-separated).
const UnreachableHeader = "Agentcloud-Unreachable-Members"

// peerListTimeout bounds how long a list waits for one member.
const peerListTimeout = 10 * time.Second

// maxPeerList bounds one member's list.
const maxPeerList = 32 << 20

// isSandboxList reports whether r lists sandboxes.
func isSandboxList(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Path == "/v1/sandboxes"
}

// bufferedResponse keeps a response to merge it.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedResponse) WriteHeader(s int) {
	if b.status == 0 {
		b.status = s
	}
}

// replay writes b to w as it is.
func (b *bufferedResponse) replay(w http.ResponseWriter) {
	for k, vs := range b.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}

// serveSandboxList answers the caller's sandboxes on every member.
func (f *Forwarder) serveSandboxList(w http.ResponseWriter, r *http.Request) {
	// The merged list is not the one a member's ETag names: no
	// conditional answers (304) for it.
	r.Header.Del("If-None-Match")
	r.Header.Del("If-Modified-Since")
	local := &bufferedResponse{header: http.Header{}}
	f.Local.ServeHTTP(local, r)
	var list api.SandboxList
	if local.status != http.StatusOK || json.Unmarshal(local.body.Bytes(), &list) != nil {
		local.replay(w) // refused (or not a list): as this member answers it
		return
	}
	var mu sync.Mutex
	unreachable := f.gather(func(_, addr string) error {
		got, err := f.peerList(r, addr)
		if err == nil {
			mu.Lock()
			list.Sandboxes = append(list.Sandboxes, got...)
			mu.Unlock()
		}
		return err
	})
	slices.SortStableFunc(list.Sandboxes, func(a, b api.Sandbox) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if list.Sandboxes == nil {
		list.Sandboxes = []api.Sandbox{}
	}
	body, err := json.Marshal(list)
	if err != nil {
		local.replay(w)
		return
	}
	for k, vs := range local.header {
		w.Header()[k] = vs
	}
	w.Header().Del("ETag")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	if len(unreachable) > 0 {
		slices.Sort(unreachable)
		w.Header().Set(UnreachableHeader, strings.Join(unreachable, ","))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

// peerList asks the member at addr for its own sandboxes, as the caller.
func (f *Forwarder) peerList(r *http.Request, addr string) ([]api.Sandbox, error) {
	b, _, err := f.peerGet(r, addr, r.URL.RequestURI())
	if err != nil {
		return nil, err
	}
	var l api.SandboxList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	return l.Sandboxes, nil
}

// peerGet asks the member at addr for uri (its own answer: the peer
// listener does not gather again) with the caller's headers, and returns
// the body of a 200 answer.
func (f *Forwarder) peerGet(r *http.Request, addr, uri string) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(r.Context(), peerListTimeout)
	defer cancel()
	scheme := f.Scheme
	if scheme == "" {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+uri, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header = r.Header.Clone()
	req.Header.Set(ForwardedHeader, f.Node)
	req.Host = r.Host
	resp, err := f.Transport.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerList+1))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK || len(b) > maxPeerList {
		return nil, nil, errPeerList
	}
	return b, resp.Header, nil
}

var errPeerList = errors.New("cluster: a member did not answer its part of a list")

// isE2BList reports whether r is one of E2B's sandbox listings
// (GET /e2b/sandboxes, GET /e2b/v2/sandboxes).
func isE2BList(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/e2b/sandboxes" || r.URL.Path == "/e2b/v2/sandboxes")
}

// e2bListed is what a merge needs of one sandbox of an E2B listing; the
// rest of it passes through unchanged.
type e2bListed struct {
	id  string
	raw json.RawMessage
}

// e2bPage reads one member's E2B listing.
func e2bPage(body []byte, hdr http.Header) (items []e2bListed, running int, more bool, err error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, 0, false, err
	}
	for _, raw := range raws {
		var s struct {
			SandboxID string `json:"sandboxID"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, 0, false, err
		}
		items = append(items, e2bListed{id: s.SandboxID, raw: raw})
	}
	running, _ = strconv.Atoi(hdr.Get("X-Total-Running"))
	return items, running, hdr.Get("X-Next-Token") != "", nil
}

// serveE2BList answers E2B's listing of the caller's sandboxes on every
// member. A page is in sandbox id order and nextToken is the last id of
// the page before, on each member alike, so every member is asked for the
// same page and the merged page is the first limit ids of their pages;
// X-Total-Running adds up.
func (f *Forwarder) serveE2BList(w http.ResponseWriter, r *http.Request) {
	r.Header.Del("If-None-Match")
	local := &bufferedResponse{header: http.Header{}}
	f.Local.ServeHTTP(local, r)
	items, running, more, err := e2bPage(local.body.Bytes(), local.header)
	if local.status != http.StatusOK || err != nil {
		local.replay(w) // refused (or not a listing): as this member answers it
		return
	}
	var mu sync.Mutex
	unreachable := f.gather(func(_, addr string) error {
		b, hdr, err := f.peerGet(r, addr, r.URL.RequestURI())
		if err != nil {
			return err
		}
		got, n, m, err := e2bPage(b, hdr)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		items, running, more = append(items, got...), running+n, more || m
		return nil
	})
	slices.SortFunc(items, func(a, b e2bListed) int { return strings.Compare(a.id, b.id) })
	limit := 100
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n < limit {
		limit = n
	}
	next := ""
	if len(items) > limit {
		items, more = items[:limit], true
	}
	if more && len(items) > 0 {
		next = items[len(items)-1].id
	}
	out := make([]json.RawMessage, 0, len(items))
	for _, it := range items {
		out = append(out, it.raw)
	}
	body, _ := json.Marshal(out)
	for k, vs := range local.header {
		w.Header()[k] = vs
	}
	w.Header().Del("ETag")
	w.Header().Del("X-Next-Token")
	if next != "" {
		w.Header().Set("X-Next-Token", next)
	}
	w.Header().Set("X-Total-Running", strconv.Itoa(running))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	if len(unreachable) > 0 {
		w.Header().Set(UnreachableHeader, strings.Join(unreachable, ","))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}
