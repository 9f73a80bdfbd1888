// Package ledgerhttp serves the ledger over HTTP (/v1/ledger/...): the
// signed checkpoint and the C2SP tlog-tiles resources under one prefix
// (checkpoint, tile/<L>/<N>[.p/<W>], tile/entries/<N>[.p/<W>]), entries,
// inclusion and consistency proofs, Why, and Verify for administrators.
//
// It owns no ledger: it turns requests into calls on a *ledger.Ledger and
// errors into problem+json. It is not wired into the daemon yet; Routes
// registers the endpoints on a Router.
package ledgerhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/store"
)

// ActionRead is the authorization action of every read route (checkpoint,
// tiles, entries, proofs, why); the resource is the platform. Verify has
// no action: it reads the whole log, so it is for administrators only.
const ActionRead = "ledger.read"

// Prefix is where the routes live; the C2SP resources are Prefix +
// "/checkpoint" and Prefix + "/tile/...".
const Prefix = "/v1/ledger"

// Handler serves one ledger.
type Handler struct {
	l   *ledger.Ledger
	log *slog.Logger
}

// New returns a Handler for l; register it with Routes.
func New(l *ledger.Ledger, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{l: l, log: log}
}

// Routes registers the ledger's endpoints on r.
func (h *Handler) Routes(r *httpapi.Router) {
	add := func(rt httpapi.Route) {
		rt.Tag = "ledger"
		fn := rt.Handler
		rt.Handler = func(w http.ResponseWriter, req *http.Request) error { return problem(fn(w, req)) }
		r.Handle(rt)
	}
	add(httpapi.Route{Method: "GET", Path: Prefix + "/checkpoint", Action: ActionRead, RawContentType: api.LedgerCheckpointContentType,
		Summary: "The signed checkpoint of the current tree (C2SP tlog-checkpoint); signed when the tree has grown since the last one.",
		Handler: h.checkpoint})
	add(httpapi.Route{Method: "GET", Path: Prefix + "/key", Public: true, RawContentType: "text/plain; charset=utf-8",
		Summary: "The note verifier key of the ledger's checkpoints (public): pin it once, then check proofs offline with agentcloud ledger verify-proof --key.",
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, err := io.WriteString(w, h.l.VerifierKey()+"\n")
			return err
		}})
	add(httpapi.Route{Method: "GET", Path: Prefix + "/tile/{path...}", Action: ActionRead, RawContentType: "application/octet-stream",
		Summary: "A C2SP tlog-tiles resource: a hash tile tile/<L>/<N>[.p/<W>] or an entry bundle tile/entries/<N>[.p/<W>].",
		Handler: h.tile})
	add(httpapi.Route{Method: "GET", Path: Prefix + "/entries/{entry}", Action: ActionRead,
		Summary: "One entry: its index, leaf hash, exact bytes and JSON.", Response: api.LedgerRecord{}, Handler: h.entry})
	add(httpapi.Route{Method: "GET", Path: Prefix + "/entries/{entry}/proof", Action: ActionRead,
		Summary: "The inclusion proof of an entry against the current signed checkpoint (or the tree of ?tree_size= entries), with that checkpoint.",
		Query: []httpapi.QueryParam{{Name: "tree_size", Type: httpapi.QueryInteger,
			Description: "Prove against the tree of this many entries instead of the current checkpoint."}},
		Response: api.LedgerInclusionProof{}, Handler: h.proof})
	add(httpapi.Route{Method: "GET", Path: Prefix + "/consistency", Action: ActionRead,
		Summary: "The proof that the tree of ?old= entries is a prefix of the tree of ?new= entries (default: the current checkpoint's).",
		Query: []httpapi.QueryParam{
			{Name: "old", Type: httpapi.QueryInteger, Required: true, Description: "Size of the older tree."},
			{Name: "new", Type: httpapi.QueryInteger, Description: "Size of the newer tree (default: the current checkpoint's)."}},
		Response: api.LedgerConsistencyProof{}, Handler: h.consistency})
	add(httpapi.Route{Method: "GET", Path: Prefix + "/why/{hash}", Action: ActionRead,
		Summary:  "The entry with this leaf hash and everything it follows from (approval, policy decision, tests, change, author), each checked against its hash.",
		Response: api.LedgerTrail{}, Handler: h.why})
	add(httpapi.Route{Method: "POST", Path: Prefix + "/verify",
		Summary:  "Re-derive the tree from every entry and check every stored tile and checkpoint; names the first bad entry (administrators only).",
		Response: api.LedgerVerifyReport{}, Handler: h.verify})
}

func (h *Handler) checkpoint(w http.ResponseWriter, r *http.Request) error {
	cp, err := h.l.Checkpoint(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", api.LedgerCheckpointContentType)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(cp.Signed)
	return nil
}

func (h *Handler) tile(w http.ResponseWriter, r *http.Request) error {
	path := "tile/" + r.PathValue("path")
	t, err := ledger.ParseTilePath(path)
	if err != nil {
		return err
	}
	data, err := h.l.ReadTile(r.Context(), path)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.Width == ledger.TileWidth {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable") // a full tile never changes
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(data)
	return nil
}

func (h *Handler) entry(w http.ResponseWriter, r *http.Request) error {
	idx, err := index("entry", r.PathValue("entry"))
	if err != nil {
		return err
	}
	rec, err := h.l.Entry(r.Context(), idx)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, wireRecord(rec))
	return nil
}

func (h *Handler) proof(w http.ResponseWriter, r *http.Request) error {
	idx, err := index("entry", r.PathValue("entry"))
	if err != nil {
		return err
	}
	var p ledger.InclusionProof
	if s := r.URL.Query().Get("tree_size"); s != "" {
		size, err := index("tree_size", s)
		if err != nil {
			return err
		}
		p, err = h.l.ProveAt(r.Context(), idx, size)
		if err != nil {
			return err
		}
	} else if p, err = h.l.Prove(r.Context(), idx); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, api.LedgerInclusionProof{Index: p.Index, TreeSize: p.TreeSize, Hashes: hexes(p.Hashes), Checkpoint: p.Checkpoint})
	return nil
}

func (h *Handler) consistency(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("old") == "" {
		return api.FieldErrorf(api.KindBadRequest, "old", "missing ?old=: give the size of the older tree")
	}
	oldSize, err := index("old", q.Get("old"))
	if err != nil {
		return err
	}
	var newSize uint64
	if s := q.Get("new"); s != "" {
		if newSize, err = index("new", s); err != nil {
			return err
		}
	} else {
		cp, err := h.l.Checkpoint(r.Context())
		if err != nil {
			return err
		}
		newSize = cp.Size
	}
	p, err := h.l.ProveConsistency(r.Context(), oldSize, newSize)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, api.LedgerConsistencyProof{OldSize: p.OldSize, NewSize: p.NewSize, Hashes: hexes(p.Hashes)})
	return nil
}

func (h *Handler) why(w http.ResponseWriter, r *http.Request) error {
	hash, err := ledger.ParseHash(r.PathValue("hash"))
	if err != nil {
		return api.FieldErrorf(api.KindBadRequest, "hash", "%v", err)
	}
	trail, err := h.l.Why(r.Context(), hash)
	if err != nil {
		return err
	}
	out := api.LedgerTrail{Records: make([]api.LedgerRecord, len(trail.Records)), Truncated: trail.Truncated}
	for i, rec := range trail.Records {
		out.Records[i] = wireRecord(rec)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) verify(w http.ResponseWriter, r *http.Request) error {
	rep, err := h.l.Verify(r.Context())
	out := api.LedgerVerifyReport{OK: err == nil, Entries: rep.Entries, Records: rep.Records, Tiles: rep.Tiles, Checkpoints: rep.Checkpoints}
	var ve *ledger.VerifyError
	switch {
	case errors.As(err, &ve):
		out.Failure = &api.LedgerVerifyFailure{Index: ve.Index, Type: string(ve.Type), Seq: ve.Seq, Reason: ve.Reason}
		h.log.Error("ledger verification failed", "err", err)
	case err != nil:
		return err
	default:
		out.Root = rep.Root.String()
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// index parses a decimal index or size: no sign, no leading zeros.
func index(field, s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(v, 10) != s {
		shown := s
		if len(shown) > 16 {
			shown = shown[:16] + "…"
		}
		return 0, api.FieldErrorf(api.KindBadRequest, field, "%s %q: want a decimal number from 0 to %d without leading zeros", field, shown, uint64(1<<64-1))
	}
	return v, nil
}

func wireRecord(rec ledger.Record) api.LedgerRecord {
	return api.LedgerRecord{Index: rec.Index, Hash: rec.Hash.String(), Raw: rec.Raw, Entry: json.RawMessage(rec.Raw)}
}

func hexes(hs []ledger.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// problem maps the ledger's and the store's plain errors to problems:
// a closed or stopped ledger and an unreachable store are 503, a corrupt
// ledger a 500 (logged by the router, its detail not shown).
func problem(err error) error {
	var p *api.Problem
	switch {
	case err == nil, errors.As(err, &p):
		return err
	case errors.Is(err, ledger.ErrClosed), errors.Is(err, ledger.ErrStopped), errors.Is(err, store.ErrUnavailable):
		return api.Errorf(api.KindUnavailable, "the ledger is unavailable: %w", err)
	}
	return fmt.Errorf("ledger: %w", err)
}
