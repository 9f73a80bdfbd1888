package config

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// tracingCases are bad tracing settings, each with the field its error
// names (also the fuzz seeds of FuzzTracesURL).
var tracingCases = []struct {
	name  string
	mod   func(*TracingConfig)
	field string
}{
	{"endpoint not a URL", func(t *TracingConfig) { t.OTLPEndpoint = "collector:4318" }, "tracing.otlp_endpoint"},
	{"endpoint scheme", func(t *TracingConfig) { t.OTLPEndpoint = "grpc://127.0.0.1:4317" }, "tracing.otlp_endpoint"},
	{"endpoint no host", func(t *TracingConfig) { t.OTLPEndpoint = "http:///v1/traces" }, "tracing.otlp_endpoint"},
	{"endpoint credentials", func(t *TracingConfig) { t.OTLPEndpoint = "https://u:p@c.example/v1/traces" }, "tracing.otlp_endpoint"},
	{"endpoint query", func(t *TracingConfig) { t.OTLPEndpoint = "http://127.0.0.1:4318/v1/traces?x=1" }, "tracing.otlp_endpoint"},
	{"endpoint fragment", func(t *TracingConfig) { t.OTLPEndpoint = "http://127.0.0.1:4318/#f" }, "tracing.otlp_endpoint"},
	{"endpoint control", func(t *TracingConfig) { t.OTLPEndpoint = "http://127.0.0.1:4318/\x00" }, "tracing.otlp_endpoint"},
	{"endpoint huge", func(t *TracingConfig) { t.OTLPEndpoint = "http://a/" + strings.Repeat("a", 4096) }, "tracing.otlp_endpoint"},
	{"ratio negative", func(t *TracingConfig) { t.SampleRatio = -0.1 }, "tracing.sample_ratio"},
	{"ratio above one", func(t *TracingConfig) { t.SampleRatio = 1.5 }, "tracing.sample_ratio"},
	{"ratio NaN", func(t *TracingConfig) { t.SampleRatio = math.NaN() }, "tracing.sample_ratio"},
	{"queue zero", func(t *TracingConfig) { t.QueueSize = 0 }, "tracing.queue_size"},
	{"queue huge", func(t *TracingConfig) { t.QueueSize = 2_000_000 }, "tracing.queue_size"},
}

// TestTracingConfigClass: every bad tracing setting is one error naming
// its field and what is allowed; off (the default) and good endpoints
// validate, and a URL without a path gets /v1/traces.
func TestTracingConfigClass(t *testing.T) {
	for _, tc := range tracingCases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c.Tracing)
			var errs Errors
			if err := c.Validate(); !errors.As(err, &errs) || len(errs) != 1 || errs[0].Field != tc.field || errs[0].Detail == "" {
				t.Fatalf("want one error on %s, got %v", tc.field, err)
			}
		})
	}
	for raw, want := range map[string]string{
		"http://127.0.0.1:4318":           "http://127.0.0.1:4318/v1/traces",
		"https://c.example/":              "https://c.example/v1/traces",
		"http://[::1]:4318/custom/traces": "http://[::1]:4318/custom/traces",
		"http://collector:4318/v1/traces": "http://collector:4318/v1/traces",
	} {
		c := Default()
		c.Tracing.OTLPEndpoint, c.Tracing.SampleRatio = raw, 0.25
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
		if u, err := TracesURL(raw); err != nil || u.String() != want {
			t.Errorf("TracesURL(%s) = %v, %v; want %s", raw, u, err, want)
		}
	}
	if d := Default().Tracing; d.OTLPEndpoint != "" {
		t.Errorf("tracing is on by default: %+v", d)
	}
}

// TestTracingEnv: the AGENTCLOUD_TRACING_* variables apply, and a bad
// number names its variable.
func TestTracingEnv(t *testing.T) {
	env := map[string]string{"AGENTCLOUD_TRACING_OTLP_ENDPOINT": "http://127.0.0.1:4318",
		"AGENTCLOUD_TRACING_SAMPLE_RATIO": "0.5", "AGENTCLOUD_TRACING_QUEUE_SIZE": "100"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c := Default()
	if err := c.LoadEnv(lookup); err != nil {
		t.Fatal(err)
	}
	if c.Tracing != (TracingConfig{OTLPEndpoint: "http://127.0.0.1:4318", SampleRatio: 0.5, QueueSize: 100}) {
		t.Fatalf("not applied: %+v", c.Tracing)
	}
	for _, name := range []string{"AGENTCLOUD_TRACING_SAMPLE_RATIO", "AGENTCLOUD_TRACING_QUEUE_SIZE"} {
		env = map[string]string{name: "lots"}
		var errs Errors
		d := Default()
		if err := d.LoadEnv(lookup); !errors.As(err, &errs) || errs[0].Field != name {
			t.Errorf("%s=lots: %v", name, err)
		}
	}
}

// FuzzTracesURL: any endpoint is accepted as an http(s) URL with a host
// and a path, or refused with an error; never a panic.
func FuzzTracesURL(f *testing.F) {
	for _, tc := range tracingCases {
		var tr TracingConfig
		tc.mod(&tr)
		f.Add(tr.OTLPEndpoint)
	}
	f.Add("http://127.0.0.1:4318")
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := TracesURL(raw)
		if err != nil {
			return
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path == "" || u.User != nil || u.RawQuery != "" {
			t.Fatalf("accepted %q as %v", raw, u)
		}
	})
}
