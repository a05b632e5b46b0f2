package main

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// exportedSpan is one span an OTLP exporter sent to otlpReceiver.
type exportedSpan struct {
	Service, Name           string
	TraceID, SpanID, Parent string // hex
	Attrs                   map[string]string
	Events                  []string
	Error                   bool
}

func (s exportedSpan) String() string {
	return fmt.Sprintf("%s %s trace=%s span=%s parent=%s id=%s events=%v", s.Service, s.Name, s.TraceID, s.SpanID, s.Parent, s.Attrs["messaging.message.id"], s.Events)
}

// otlpReceiver is an OTLP/HTTP traces endpoint (protobuf, as the Go
// exporter sends) that keeps what it receives.
type otlpReceiver struct {
	URL   string
	mu    sync.Mutex
	spans []exportedSpan
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.URL = "http://" + l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(r.serve)}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &export); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []exportedSpan
	for _, rs := range export.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				e := exportedSpan{Service: service, Name: s.Name, TraceID: hex.EncodeToString(s.TraceId), SpanID: hex.EncodeToString(s.SpanId),
					Parent: hex.EncodeToString(s.ParentSpanId), Attrs: map[string]string{}, Error: s.GetStatus().GetCode() == 2}
				for _, a := range s.Attributes {
					e.Attrs[a.Key] = strings.Trim(a.GetValue().String(), " ")
					if v := a.GetValue().GetStringValue(); v != "" {
						e.Attrs[a.Key] = v
					}
				}
				for _, ev := range s.Events {
					e.Events = append(e.Events, ev.Name)
				}
				got = append(got, e)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// find returns the received spans named name of message id.
func (r *otlpReceiver) find(name, id string) []exportedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exportedSpan
	for _, s := range r.spans {
		if s.Name == name && s.Attrs["messaging.message.id"] == id {
			out = append(out, s)
		}
	}
	return out
}

func (r *otlpReceiver) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, s := range r.spans {
		b.WriteString(s.String() + "\n")
	}
	return b.String()
}
