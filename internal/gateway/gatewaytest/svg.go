package gatewaytest

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"time"
)

// WriteSVG draws the human's latency over time in each phase of a flood
// run: one line per phase, refused requests as crosses along the top. It
// needs no plotting library: the SVG is written by hand.
func WriteSVG(w io.Writer, r *FloodReport) error {
	const (
		width, height = 900.0, 480.0
		left, right   = 70.0, 210.0
		top, bottom   = 40.0, 50.0
	)
	plotW, plotH := width-left-right, height-top-bottom
	var maxT time.Duration
	maxMs := 1.0
	for _, s := range r.Samples {
		if s.At > maxT {
			maxT = s.At
		}
		if v := ms(s.Latency); s.OK && v > maxMs {
			maxMs = v
		}
	}
	maxMs = niceCeil(maxMs * 1.05)
	if maxT <= 0 {
		maxT = time.Second
	}
	x := func(d time.Duration) float64 { return left + plotW*float64(d)/float64(maxT) }
	y := func(v float64) float64 { return top + plotH*(1-v/maxMs) }

	b := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	factor := 0.0
	if r.CapacityRPS > 0 {
		factor = r.FloodRPS / r.CapacityRPS
	}
	p(`<text x="%.0f" y="22" font-size="15">Human request latency while agents flood at %.0fx capacity (%.0f of %.0f req/s)</text>`+"\n",
		left, factor, r.FloodRPS, r.CapacityRPS)
	for i := 0; i <= 5; i++ {
		v := maxMs * float64(i) / 5
		p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, left+plotW, y(v), y(v))
		p(`<text x="%.1f" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y(v)+4, v)
	}
	secs := int(math.Ceil(maxT.Seconds()))
	step := 1
	if secs > 10 {
		step = secs / 10
	}
	for s := 0; s <= secs; s += step {
		xx := x(time.Duration(s) * time.Second)
		p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", xx, xx, top, top+plotH)
		p(`<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`+"\n", xx, top+plotH+16, s)
	}
	p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, left, top, top+plotH)
	p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, left+plotW, top+plotH, top+plotH)
	p(`<text x="%.1f" y="%.1f" text-anchor="middle">seconds since the phase started</text>`+"\n", left+plotW/2, height-12)
	p(`<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">latency (ms)</text>`+"\n", top+plotH/2)
	colors := map[string]string{phaseUnloaded: "#888888", phaseOn: "#1f77b4", phaseOff: "#d62728", phaseFair: "#2ca02c"}
	p99 := map[string]float64{phaseUnloaded: r.HumanP99MsUnloaded, phaseOn: r.HumanP99MsFloodClassesOn,
		phaseOff: r.HumanP99MsFloodClassesOff, phaseFair: r.HumanP99MsFloodFairOnly}
	legend := 0
	for _, phase := range []string{phaseUnloaded, phaseOn, phaseFair, phaseOff} {
		var pts []Sample
		for _, s := range r.Samples {
			if s.Phase == phase {
				pts = append(pts, s)
			}
		}
		if len(pts) == 0 {
			continue
		}
		sort.Slice(pts, func(i, j int) bool { return pts[i].At < pts[j].At })
		c := colors[phase]
		refused := 0
		var line []byte
		for _, s := range pts {
			if !s.OK {
				refused++
				p(`<path d="M%.1f %.1f l6 6 m0 -6 l-6 6" stroke="%s" stroke-width="1.5"/>`+"\n", x(s.At)-3, top-3, c)
				continue
			}
			line = fmt.Appendf(line, "%.1f,%.1f ", x(s.At), y(ms(s.Latency)))
			p(`<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s"/>`+"\n", x(s.At), y(ms(s.Latency)), c)
		}
		if len(line) > 0 {
			p(`<polyline points="%s" fill="none" stroke="%s" stroke-width="1.2" stroke-opacity="0.7"/>`+"\n", line, c)
		}
		ly := top + 10 + float64(legend)*36
		lx := left + plotW + 16
		p(`<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/>`+"\n", lx, ly-10, c)
		p(`<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+18, ly, html.EscapeString(phase))
		p(`<text x="%.1f" y="%.1f" fill="#555">p99 %s ms, %d refused</text>`+"\n", lx+18, ly+15, fmtMs(p99[phase]), refused)
		legend++
	}
	p("</svg>\n")
	return b.Flush()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMs(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", v)
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}
