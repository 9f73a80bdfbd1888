// Package gatewayhttp is the HTTP surface of the front door
// (internal/gateway): GET /v1/traffic (the concurrency limit, every
// priority level and the busiest flows) and GET /v1/traffic/flows (the
// flows of one level or all). Both take the Cedar action traffic.read on
// the platform, which the default policies give administrators only: the
// flows name who is calling and how much.
//
// It owns query checking and response encoding only; the state is the
// gateway's.
package gatewayhttp

import (
	"net/http"
	"slices"
	"sort"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
)

// Action is the Cedar action of the traffic routes.
const Action = "traffic.read"

// Bounds of the lists a request may ask for.
const (
	DefaultTop   = 10
	MaxTop       = 1000
	DefaultFlows = 100
	MaxFlows     = 10000
)

// Source is what the routes read: *gateway.Gateway.
type Source interface {
	Traffic(top int) api.Traffic
	Flows(level string) []api.TrafficFlow
	Levels() []api.TrafficLevel
}

// Routes registers the traffic routes over src on rt.
func Routes(rt *httpapi.Router, src Source) {
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/traffic", Tag: "traffic", Action: Action,
		Summary:  "The front door's state: the concurrency limit, each priority level (seats, executing, queued, counters, queue waits) and the busiest flows.",
		Query:    []httpapi.QueryParam{{Name: "top", Type: httpapi.QueryInteger, Description: "how many of the busiest flows to list (0 to 1000, default 10)"}},
		Response: api.Traffic{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			top, err := count(r, "top", DefaultTop, MaxTop)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, src.Traffic(top))
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/traffic/flows", Tag: "traffic", Action: Action,
		Summary: "The flows (one per verified identity, or client address) the front door remembers, busiest first.",
		Query: []httpapi.QueryParam{
			{Name: "level", Description: "only flows of this priority level"},
			{Name: "limit", Type: httpapi.QueryInteger, Description: "at most this many flows (1 to 10000, default 100)"},
			{Name: "by", Description: "order: rate (recent arrival rate, the default) or rejected (the most limited first)"},
		},
		Response: api.TrafficFlows{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			limit, err := count(r, "limit", DefaultFlows, MaxFlows)
			if err != nil {
				return err
			}
			if limit == 0 {
				return api.FieldErrorf(api.KindInvalidQuery, "limit", "limit=0: want 1 to %d", MaxFlows)
			}
			level := r.URL.Query().Get("level")
			if level != "" && !slices.ContainsFunc(src.Levels(), func(l api.TrafficLevel) bool { return l.Name == level }) {
				return api.FieldErrorf(api.KindInvalidQuery, "level", "no priority level %q; %s", short(level), levelNames(src.Levels()))
			}
			flows := src.Flows(level)
			switch by := r.URL.Query().Get("by"); by {
			case "", "rate":
			case "rejected":
				sort.SliceStable(flows, func(i, j int) bool { return flows[i].Rejected > flows[j].Rejected })
			default:
				return api.FieldErrorf(api.KindInvalidQuery, "by", "by=%s: want rate or rejected", short(by))
			}
			out := api.TrafficFlows{Total: len(flows)}
			if len(flows) > limit {
				flows = flows[:limit]
			}
			out.Flows = flows
			if out.Flows == nil {
				out.Flows = []api.TrafficFlow{}
			}
			httpapi.WriteJSON(w, http.StatusOK, out)
			return nil
		}})
}

// count reads a bounded whole-number query parameter (the router has
// checked it is one).
func count(r *http.Request, name string, def, maxN int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxN {
		return 0, api.FieldErrorf(api.KindInvalidQuery, name, "%s=%s: want 0 to %d", name, short(v), maxN)
	}
	return n, nil
}

func levelNames(ls []api.TrafficLevel) string {
	s := "the levels are"
	for i, l := range ls {
		if i > 0 {
			s += ","
		}
		s += " " + l.Name
	}
	return s
}

func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
