package config

import (
	"net/url"
	"strconv"
	"strings"
)

// TracingConfig turns on OpenTelemetry traces (internal/telemetry). It is
// off while OTLPEndpoint is empty.
type TracingConfig struct {
	// OTLPEndpoint is the OTLP/HTTP traces URL of a collector, e.g.
	// http://127.0.0.1:4318/v1/traces (a URL without a path gets
	// /v1/traces). Empty: tracing is off and costs nothing.
	OTLPEndpoint string `json:"otlp_endpoint"`
	// SampleRatio is the share of new traces recorded, from 0 to 1; a
	// trusted caller's own sampling decision is followed.
	SampleRatio float64 `json:"sample_ratio"`
	// QueueSize bounds the spans waiting for export; when the collector
	// is slow or down, newer spans are dropped instead of blocking.
	QueueSize int `json:"queue_size"`
}

func defaultTracing() TracingConfig { return TracingConfig{SampleRatio: 1, QueueSize: 2048} }

// loadTracingEnv merges AGENTCLOUD_TRACING_OTLP_ENDPOINT,
// AGENTCLOUD_TRACING_SAMPLE_RATIO and AGENTCLOUD_TRACING_QUEUE_SIZE.
func (c *Config) loadTracingEnv(lookup func(string) (string, bool)) Errors {
	var errs Errors
	if v, ok := lookup("AGENTCLOUD_TRACING_OTLP_ENDPOINT"); ok {
		c.Tracing.OTLPEndpoint = v
	}
	if v, ok := lookup("AGENTCLOUD_TRACING_SAMPLE_RATIO"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_TRACING_SAMPLE_RATIO", v, "want a number from 0 to 1, e.g. 0.1"})
		}
		c.Tracing.SampleRatio = f
	}
	if v, ok := lookup("AGENTCLOUD_TRACING_QUEUE_SIZE"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_TRACING_QUEUE_SIZE", v, "want a whole number of spans"})
		}
		c.Tracing.QueueSize = n
	}
	return errs
}

// validateTracing checks the tracing settings.
func (c Config) validateTracing() Errors {
	var errs Errors
	add := func(field, value, detail string) { errs = append(errs, FieldError{field, value, detail}) }
	t := c.Tracing
	if t.OTLPEndpoint != "" {
		if _, err := TracesURL(t.OTLPEndpoint); err != nil {
			add("tracing.otlp_endpoint", t.OTLPEndpoint, err.Error())
		}
	}
	if r := t.SampleRatio; !(r >= 0 && r <= 1) {
		add("tracing.sample_ratio", strconv.FormatFloat(r, 'g', -1, 64), "want a number from 0 (none) to 1 (every trace)")
	}
	if n := t.QueueSize; n < 1 || n > 1_000_000 {
		add("tracing.queue_size", strconv.Itoa(n), "want from 1 to 1000000 spans")
	}
	return errs
}

// tracingError says what is wrong with an OTLP endpoint.
type tracingError string

func (e tracingError) Error() string { return string(e) }

// TracesURL checks an OTLP/HTTP endpoint and returns the traces URL it
// names (/v1/traces added to a URL without a path).
func TracesURL(raw string) (*url.URL, error) {
	const want = "want an http or https URL of an OTLP/HTTP collector, e.g. http://127.0.0.1:4318/v1/traces"
	if len(raw) > 2048 {
		return nil, tracingError("longer than 2048 bytes; " + want)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, tracingError(want)
	}
	if u.User != nil {
		return nil, tracingError("credentials in the URL would be logged; " + want + " without user:password@")
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "?") {
		return nil, tracingError("no query or fragment; " + want)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u, nil
}
