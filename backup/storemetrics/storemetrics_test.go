package storemetrics

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/pebblestore"
	"github.com/qmq-go/qmq/backup/storetest"
)

func open(t *testing.T, reg prometheus.Registerer) *Store {
	s := pebblestore.DefaultSettings()
	s.Dir = t.TempDir()
	ps, err := pebblestore.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Wrap(ps, "pebble", reg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The wrapper is a store like any other.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) backup.Store { return open(t, prometheus.NewRegistry()) })
}

func TestSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := open(t, reg)
	ctx := context.Background()
	if err := m.PutMessages(ctx, []backup.Message{{Subject: "s", MessageID: "a", BrokerGroup: "bg", CreateTime: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	m.FindMessages(ctx, backup.MessageQuery{Subject: "nope", Len: 1})
	m.FindMessages(ctx, backup.MessageQuery{Subject: "s"})
	series := gather(t, reg)
	if v := series[`qmq_backup_store_written_total{kind="message",store="pebble"}`]; v != 1 {
		t.Fatalf("written messages %v; series %v", v, series)
	}
	for _, want := range []string{
		`qmq_backup_store_operation_seconds{op="put_messages",result="ok",store="pebble"}`,
		`qmq_backup_store_operation_seconds{op="find_messages",result="not_found",store="pebble"}`,
		`qmq_backup_store_operation_seconds{op="find_messages",result="bad_query",store="pebble"}`,
	} {
		if series[want] != 1 {
			t.Fatalf("%s observed %v times; series %v", want, series[want], series)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(gather(t, reg)); n != 0 {
		t.Fatalf("%d series left after Close", n)
	}
	// The same registry takes a new store.
	m2 := open(t, reg)
	m2.Close()
}

// gather returns each series' value (a histogram's count) by name{labels}.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[name] = m.GetCounter().GetValue()
			case m.Histogram != nil:
				out[name] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
