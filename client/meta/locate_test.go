package meta

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestLocateForms(t *testing.T) {
	ctx := context.Background()
	if got, err := Locate(ctx, "10.0.0.1:20880"); err != nil || got != "10.0.0.1:20880" {
		t.Fatalf("host:port: %q %v", got, err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/meta/address" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("10.0.0.2:20880\n"))
	}))
	defer srv.Close()
	if got, err := Locate(ctx, srv.URL+"/meta/address"); err != nil || got != "10.0.0.2:20880" {
		t.Fatalf("http: %q %v", got, err)
	}
	if _, err := Locate(ctx, srv.URL+"/other"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("wrong path: %v", err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	if _, err := Locate(ctx, "http://"+dead+"/meta/address"); err == nil || !strings.Contains(err.Error(), "meta.server.discover.port") {
		t.Fatalf("unreachable: %v", err)
	}
	if _, err := Locate(ctx, "qmq-metaserver"); err == nil || !strings.Contains(err.Error(), "consul://qmq-metaserver") {
		t.Fatalf("bad form: %v", err)
	}
}
