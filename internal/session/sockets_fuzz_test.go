package session

import (
	"testing"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

// FuzzSocketInvoke: the host side of ws.send and ws.close answers any
// arguments with nil or a HostError, never a panic, and never queues more
// than its bounds allow for a socket that is not attached.
func FuzzSocketInvoke(f *testing.F) {
	for _, s := range []struct{ method, args string }{
		{"send", `{"id":"1","text":"hi"}`}, {"send", `{"id":"1","b64":"AAEC"}`}, {"send", `{"id":"1","b64":"!!"}`},
		{"close", `{"id":"1","code":1000,"reason":"bye"}`}, {"close", `{"id":"2","reason":"` + string(make([]byte, 200)) + `"}`},
		{"nope", `{}`}, {"send", `not json`}, {"send", `{"id":1}`},
	} {
		f.Add(s.method, []byte(s.args))
	}
	f.Fuzz(func(t *testing.T, method string, args []byte) {
		hb := newSocketHub(SocketLimits{MaxMessageBytes: 64, PerSession: 2, SendQueue: 3})
		k := sessKey{"a", "s"}
		for range 5 {
			if _, err := hb.invoke(k, method, args); err != nil {
				if _, ok := err.(*isolate.HostError); !ok {
					t.Fatalf("error %T %v is not a HostError", err, err)
				}
			}
		}
		if len(hb.pending[k]) > 2 {
			t.Fatalf("%d sockets pending, over per_session", len(hb.pending[k]))
		}
		for id, q := range hb.pending[k] {
			if len(q) > 3 {
				t.Fatalf("%d messages pending for %s, over the send queue", len(q), id)
			}
		}
	})
}
