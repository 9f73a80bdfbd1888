package ledgerhttp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/store"
)

// tokens: "admin" is an administrator, "user" an ordinary principal.
type tokens struct{}

func (tokens) Authenticate(r *http.Request) (httpapi.Principal, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer admin":
		return httpapi.Principal{ID: "admin", Kind: "admin"}, nil
	case "Bearer user":
		return httpapi.Principal{ID: "alice", Kind: "user"}, nil
	}
	return httpapi.Principal{}, api.Errorf(api.KindUnauthenticated, "no token")
}

// allowRead lets anyone read the ledger, as a policy would.
type allowRead struct{}

func (allowRead) Authorize(_ context.Context, _ httpapi.Principal, action string, _ httpapi.Resource) error {
	if action == ActionRead {
		return nil
	}
	return api.Errorf(api.KindForbidden, "denied")
}

type fixture struct {
	srv  *httptest.Server
	l    *ledger.Ledger
	vkey string
	recs []ledger.Receipt
}

func setup(t *testing.T, n int) fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := ledger.GenerateKey("test.local/ledger")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ledger.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ctx, st, key, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.Options{Auth: tokens{}, Authz: allowRead{}, MaxBodyBytes: 1 << 20})
	New(l, nil).Routes(rt)
	if err := httpapi.CheckOpenAPI(rt, rt.OpenAPI("t", "1")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt)
	t.Cleanup(func() { srv.Close(); _ = l.Close(); _ = st.Close() })
	f := fixture{srv: srv, l: l, vkey: vkey}
	var prev *ledger.Receipt
	for i := range n {
		e := ledger.Entry{Type: ledger.TypeChange, Change: &ledger.Change{Agent: "billing", Version: "v" + strings.Repeat("1", 1+i%5),
			BundleDigest: ledger.DigestOf([]byte{byte(i), byte(i >> 8)}), Author: ledger.Identity{ID: "alice"}}}
		if prev != nil && i%3 == 0 {
			e = ledger.Entry{Type: ledger.TypeTest, Parents: []ledger.Ref{*prev}, Test: &ledger.TestResult{Suite: "unit", Passed: true}}
		}
		r, err := l.Append(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		prev = &r
		f.recs = append(f.recs, r)
	}
	return f
}

func (f fixture) get(t *testing.T, method, path, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// TestLedgerRoutes walks the API as a client would: the checkpoint, an
// entry and its proof verified offline with only the verifier key, tiles,
// consistency, Why and Verify.
func TestLedgerRoutes(t *testing.T) {
	f := setup(t, 300)
	resp, cpText := f.get(t, "GET", "/v1/ledger/checkpoint", "user")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != api.LedgerCheckpointContentType {
		t.Fatalf("checkpoint: %d %s", resp.StatusCode, cpText)
	}
	cp, err := ledger.OpenCheckpoint(cpText, f.vkey)
	if err != nil || cp.Size != 300 {
		t.Fatalf("checkpoint: %+v %v", cp, err)
	}

	var rec api.LedgerRecord
	resp, body := f.get(t, "GET", "/v1/ledger/entries/123", "user")
	if resp.StatusCode != 200 || json.Unmarshal(body, &rec) != nil || rec.Hash != f.recs[123].Hash.String() {
		t.Fatalf("entry: %d %s", resp.StatusCode, body)
	}
	if ledger.LeafHash(rec.Raw).String() != rec.Hash {
		t.Fatal("raw bytes do not hash to the leaf hash")
	}
	var wp api.LedgerInclusionProof
	resp, body = f.get(t, "GET", "/v1/ledger/entries/123/proof", "user")
	if resp.StatusCode != 200 || json.Unmarshal(body, &wp) != nil {
		t.Fatalf("proof: %d %s", resp.StatusCode, body)
	}
	p := ledger.InclusionProof{Index: wp.Index, TreeSize: wp.TreeSize, Checkpoint: wp.Checkpoint}
	for _, h := range wp.Hashes {
		hh, err := ledger.ParseHash(h)
		if err != nil {
			t.Fatal(err)
		}
		p.Hashes = append(p.Hashes, hh)
	}
	if _, err := ledger.VerifyInclusion([]byte(wp.Checkpoint), f.vkey, rec.Raw, p); err != nil {
		t.Fatalf("offline verification: %v", err)
	}
	resp, body = f.get(t, "GET", "/v1/ledger/entries/5/proof?tree_size=10", "user")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"tree_size": 10`) {
		t.Fatalf("proof at a size: %d %s", resp.StatusCode, body)
	}

	resp, body = f.get(t, "GET", "/v1/ledger/tile/0/000", "user")
	if resp.StatusCode != 200 || len(body) != 256*32 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("full tile: %d, %d bytes, %q", resp.StatusCode, len(body), resp.Header.Get("Cache-Control"))
	}
	resp, body = f.get(t, "GET", "/v1/ledger/tile/entries/001.p/44", "user")
	if entries, err := ledger.DecodeBundle(body); resp.StatusCode != 200 || err != nil || len(entries) != 44 {
		t.Fatalf("partial bundle: %d, %v", resp.StatusCode, err)
	}

	var cons api.LedgerConsistencyProof
	resp, body = f.get(t, "GET", "/v1/ledger/consistency?old=100", "user")
	if resp.StatusCode != 200 || json.Unmarshal(body, &cons) != nil || cons.NewSize != 300 || len(cons.Hashes) == 0 {
		t.Fatalf("consistency: %d %s", resp.StatusCode, body)
	}

	var trail api.LedgerTrail
	resp, body = f.get(t, "GET", "/v1/ledger/why/"+f.recs[297].Hash.String(), "user")
	if resp.StatusCode != 200 || json.Unmarshal(body, &trail) != nil || len(trail.Records) != 2 {
		t.Fatalf("why: %d %s", resp.StatusCode, body)
	}

	resp, body = f.get(t, "POST", "/v1/ledger/verify", "user")
	if resp.StatusCode != 403 {
		t.Fatalf("verify as a user: %d %s", resp.StatusCode, body)
	}
	var rep api.LedgerVerifyReport
	resp, body = f.get(t, "POST", "/v1/ledger/verify", "admin")
	if resp.StatusCode != 200 || json.Unmarshal(body, &rep) != nil || !rep.OK || rep.Entries != 300 {
		t.Fatalf("verify: %d %s", resp.StatusCode, body)
	}
	resp, _ = f.get(t, "GET", "/v1/ledger/checkpoint", "nobody")
	if resp.StatusCode != 401 {
		t.Fatalf("unauthenticated: %d", resp.StatusCode)
	}
}

// TestLedgerRoutesHostileClass: malformed identifiers, indexes, sizes and
// tile paths are 400 problems with the field named, what is beyond the
// tree is 404, and nothing is a 5xx.
func TestLedgerRoutesHostileClass(t *testing.T) {
	f := setup(t, 20)
	hash := f.recs[3].Hash.String()
	cases := []struct {
		path   string
		status int
		kind   api.Kind
		field  string
	}{
		{"/v1/ledger/entries/abc", 400, api.KindInvalidID, "entry"},
		{"/v1/ledger/entries/-1", 400, api.KindInvalidID, "entry"},
		{"/v1/ledger/entries/007", 400, api.KindBadRequest, "entry"},
		{"/v1/ledger/entries/99999999999999999999", 400, api.KindBadRequest, "entry"},
		{"/v1/ledger/entries/" + strings.Repeat("9", 5000), 400, api.KindInvalidID, "entry"},
		{"/v1/ledger/entries/20", 404, api.KindNotFound, ""},
		{"/v1/ledger/entries/18446744073709551615", 404, api.KindNotFound, ""},
		{"/v1/ledger/entries/20/proof", 404, api.KindNotFound, ""},
		{"/v1/ledger/entries/3/proof?tree_size=21", 404, api.KindNotFound, ""},
		{"/v1/ledger/entries/3/proof?tree_size=x", 400, api.KindInvalidQuery, "tree_size"},
		{"/v1/ledger/entries/3/proof?tree_size=3", 404, api.KindNotFound, ""},
		{"/v1/ledger/consistency", 400, api.KindInvalidQuery, "old"},
		{"/v1/ledger/consistency?old=x", 400, api.KindInvalidQuery, "old"},
		{"/v1/ledger/consistency?old=5&new=2", 400, api.KindBadRequest, ""},
		{"/v1/ledger/consistency?old=5&new=+9", 400, api.KindInvalidQuery, "new"},
		{"/v1/ledger/consistency?old=5&new=%2B9", 400, api.KindBadRequest, "new"},
		{"/v1/ledger/consistency?old=5&new=21", 404, api.KindNotFound, ""},
		{"/v1/ledger/why/zz", 400, api.KindInvalidID, "hash"},
		{"/v1/ledger/why/" + strings.ToUpper(hash), 400, api.KindInvalidID, "hash"},
		{"/v1/ledger/why/" + hash[:63], 400, api.KindBadRequest, "hash"},
		{"/v1/ledger/why/" + strings.Repeat("0", 64), 404, api.KindNotFound, ""},
		{"/v1/ledger/tile/0/1", 400, api.KindBadRequest, "path"},
		{"/v1/ledger/tile/9/000", 400, api.KindBadRequest, "path"},
		{"/v1/ledger/tile/0/000.p/0", 400, api.KindBadRequest, "path"},
		{"/v1/ledger/tile/" + strings.Repeat("x999/", 300) + "000", 400, api.KindBadRequest, "path"},
		{"/v1/ledger/tile/0/000", 404, api.KindNotFound, ""},
		{"/v1/ledger/tile/0/001.p/1", 404, api.KindNotFound, ""},
		{"/v1/ledger/tile/entries/000.p/21", 404, api.KindNotFound, ""},
		{"/v1/ledger/tile/1/000.p/1", 404, api.KindNotFound, ""},
	}
	for _, c := range cases {
		resp, body := f.get(t, "GET", c.path, "user")
		var p api.Problem
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != api.ProblemContentType || json.Unmarshal(body, &p) != nil {
			t.Errorf("%.80s: %d %s", c.path, resp.StatusCode, body)
			continue
		}
		if p.Kind() != c.kind || c.field != "" && p.Field != c.field {
			t.Errorf("%.80s: kind %s field %q, want %s %q: %s", c.path, p.Kind(), p.Field, c.kind, c.field, p.Detail)
		}
		if len(p.Detail) > 512 {
			t.Errorf("%.80s: a %d-byte detail echoes input", c.path, len(p.Detail))
		}
	}
}

// FuzzIndex: the index and size parser never panics, accepts only the
// canonical decimal form, and refuses with a short 400 naming the field.
func FuzzIndex(f *testing.F) {
	for _, s := range []string{"0", "7", "007", "-1", "+1", "18446744073709551615", "18446744073709551616", "1e3", " 1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := index("entry", s)
		if err != nil {
			p := api.AsProblem(err)
			if p.Status != 400 || p.Field != "entry" || len(p.Detail) > 200 {
				t.Fatalf("%q: %+v", s, p)
			}
			return
		}
		if strconv.FormatUint(v, 10) != s {
			t.Fatalf("%q accepted as %d", s, v)
		}
	})
}
