package daemon_test

import (
	"context"
	"io"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/bundle"
)

// BenchmarkActivateHibernated measures activating a hibernated session over
// HTTP (request to last response byte) for an agent without egress hosts
// (identity attached, no SVID) and one with them (SVID minted in the
// background at activation). Reports p50/p99 in µs.
func BenchmarkActivateHibernated(b *testing.B) {
	for _, tc := range []struct{ name, egress string }{{"egress", `["api.example.com"]`}, {"no-egress", `[]`}} {
		b.Run(tc.name, func(b *testing.B) {
			_, c := startDaemon(b)
			ctx := context.Background()
			bd, err := bundle.FromFiles(map[string][]byte{
				"agent.json": []byte(`{"name":"act","entry":"a.js","egress":` + tc.egress + `,"limits":{"idle_seconds":3600}}`),
				"a.js":       []byte(`export default { fetch() { return new Response("hello") } }`)})
			if err != nil {
				b.Fatal(err)
			}
			tgz, _ := bd.TarGz()
			if _, err := c.Deploy(ctx, tgz); err != nil {
				b.Fatal(err)
			}
			call := func(id string) {
				resp, err := c.Call(ctx, "act", id, "GET", "/", nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				id := "s" + strconv.Itoa(i)
				call(id)
				if _, err := c.Hibernate(ctx, "act", id); err != nil {
					b.Fatal(err)
				}
				time.Sleep(30 * time.Millisecond) // let background minting and trimming finish
				b.StartTimer()
				t0 := time.Now()
				call(id)
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
		})
	}
}
