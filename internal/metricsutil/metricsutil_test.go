package metricsutil

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func counter(name string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: name})
}

// TestRegisterAllOrNone: a collision leaves nothing of the batch registered,
// so the same component can be registered again once the collision is gone.
func TestRegisterAllOrNone(t *testing.T) {
	reg := prometheus.NewRegistry()
	taken := counter("b_total")
	if err := reg.Register(taken); err != nil {
		t.Fatal(err)
	}
	batch := []prometheus.Collector{counter("a_total"), counter("b_total"), counter("c_total")}
	err := RegisterAll(reg, batch...)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("RegisterAll over a taken name = %v, want AlreadyRegisteredError", err)
	}
	if mfs, _ := reg.Gather(); len(mfs) != 1 || mfs[0].GetName() != "b_total" {
		t.Fatalf("after the failed RegisterAll the registry holds %d families, want only b_total", len(mfs))
	}
	reg.Unregister(taken)
	if err := RegisterAll(reg, batch...); err != nil {
		t.Fatalf("RegisterAll again: %v", err)
	}
	UnregisterAll(reg, batch...)
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Fatalf("after UnregisterAll the registry holds %d families", len(mfs))
	}
}

func TestNilRegisterer(t *testing.T) {
	if err := RegisterAll(nil, counter("a_total")); err != nil {
		t.Fatal(err)
	}
	UnregisterAll(nil, counter("a_total"))
}

func TestRegisterOrExisting(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := RegisterOrExisting(reg, counter("x_total"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := RegisterOrExisting(reg, counter("x_total"))
	if err != nil || second != first {
		t.Fatalf("second registration = %v, %v; want the first collector", second, err)
	}
	// Same name, other type: an error, not a collector of the wrong kind.
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_total", Help: "x_total"})
	if _, err := RegisterOrExisting(reg, g); err == nil {
		t.Fatal("a gauge under a counter's name registered")
	}
}
