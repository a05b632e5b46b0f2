package metricsutil

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterAll registers cs on reg, all or none: when one fails, those
// registered before it are unregistered and its error is returned. A nil reg
// registers nothing.
func RegisterAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			UnregisterAll(reg, cs[:i]...)
			return err
		}
	}
	return nil
}

// UnregisterAll unregisters cs from reg (nil: nothing to do).
func UnregisterAll(reg prometheus.Registerer, cs ...prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		reg.Unregister(c)
	}
}

// RegisterOrExisting registers c, or returns the collector of the same type
// already registered under the same description (a second producer or
// consumer on one registerer shares the first one's series).
func RegisterOrExisting[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if ex, ok := are.ExistingCollector.(T); ok {
			return ex, nil
		}
	}
	return c, err
}
