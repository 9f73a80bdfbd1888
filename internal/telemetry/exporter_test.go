package telemetry

import (
	"encoding/hex"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestExporterEncodesEveryField: our OTLP encoding decodes as the
// collector's ExportTraceServiceRequest with ids, parent, kind, times,
// every attribute type, events, links and status (OTLP's codes differ
// from the API's: error is 2).
func TestExporterEncodesEveryField(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	pid, _ := trace.SpanIDFromHex("1111111111111111")
	start := time.Unix(1700000000, 5)
	attrs := []attribute.KeyValue{attribute.Bool("b", true), attribute.Int64("i", -7), attribute.Float64("f", 1.5),
		attribute.String("s", "x"), attribute.StringSlice("ss", []string{"a", "b"}), attribute.Int64Slice("is", []int64{1}),
		attribute.BoolSlice("bs", []bool{false}), attribute.Float64Slice("fs", []float64{2})}
	stub := tracetest.SpanStub{
		Name:        "egress.request",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}),
		Parent:      trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: pid}),
		SpanKind:    trace.SpanKindClient, StartTime: start, EndTime: start.Add(time.Millisecond),
		Attributes:           attrs,
		Events:               []sdktrace.Event{{Name: "exception", Time: start, Attributes: attrs[:1]}},
		Links:                []sdktrace.Link{{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: pid})}},
		Status:               sdktrace.Status{Code: codes.Error, Description: "boom"},
		Resource:             resource.NewSchemaless(attribute.String("service.name", "agentcloud")),
		InstrumentationScope: instrumentation.Scope{Name: scope, Version: "v"},
	}
	b, err := proto.Marshal(tracesData([]sdktrace.ReadOnlySpan{stub.Snapshot(), stub.Snapshot()}))
	if err != nil {
		t.Fatal(err)
	}
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	if len(req.ResourceSpans) != 1 || len(req.ResourceSpans[0].ScopeSpans) != 1 || len(req.ResourceSpans[0].ScopeSpans[0].Spans) != 2 {
		t.Fatalf("grouping: %v", &req)
	}
	rs := req.ResourceSpans[0]
	if rs.Resource.Attributes[0].Value.GetStringValue() != "agentcloud" || rs.ScopeSpans[0].Scope.Name != scope {
		t.Errorf("resource or scope: %v", rs)
	}
	s := rs.ScopeSpans[0].Spans[0]
	if hex.EncodeToString(s.TraceId) != tid.String() || hex.EncodeToString(s.SpanId) != sid.String() || hex.EncodeToString(s.ParentSpanId) != pid.String() ||
		s.Kind != tracepb.Span_SPAN_KIND_CLIENT || s.StartTimeUnixNano != uint64(start.UnixNano()) || s.Flags != 1 || s.Name != "egress.request" {
		t.Errorf("span: %v", s)
	}
	if s.Status.Code != tracepb.Status_STATUS_CODE_ERROR || s.Status.Message != "boom" {
		t.Errorf("status: %v", s.Status)
	}
	if len(s.Attributes) != len(attrs) || !s.Attributes[0].Value.GetBoolValue() || s.Attributes[1].Value.GetIntValue() != -7 ||
		s.Attributes[2].Value.GetDoubleValue() != 1.5 || s.Attributes[4].Value.GetArrayValue().Values[1].GetStringValue() != "b" {
		t.Errorf("attributes: %v", s.Attributes)
	}
	if len(s.Events) != 1 || s.Events[0].Name != "exception" || len(s.Links) != 1 || hex.EncodeToString(s.Links[0].SpanId) != pid.String() {
		t.Errorf("events %v links %v", s.Events, s.Links)
	}
}
