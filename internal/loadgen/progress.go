package loadgen

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Sample is one second of a running workload, for a live progress line.
type Sample struct {
	System  string
	Mode    string
	Elapsed time.Duration
	// Messages counts what the workload measures so far: acknowledged sends
	// (produce), acknowledged deliveries (consume, e2e).
	Messages int64
	// Rate is the messages per second over the last interval.
	Rate float64
	// LatencyP50 and LatencyP99 are the end-to-end latency so far in
	// milliseconds (e2e only; 0 otherwise).
	LatencyP50, LatencyP99 float64
}

// String is the live line `qmq bench` prints each second.
func (s Sample) String() string {
	line := fmt.Sprintf("%-8s %-7s %5.1fs %10d msgs %9.0f msg/s", s.System, s.Mode, s.Elapsed.Seconds(), s.Messages, s.Rate)
	if s.Mode == "e2e" {
		line += fmt.Sprintf("  p50 %.3f ms  p99 %.3f ms", s.LatencyP50, s.LatencyP99)
	}
	return line
}

// Point is one interval of a workload's throughput, kept in its Result for
// reports (Result.Series).
type Point struct {
	Seconds float64 `json:"t"`
	Rate    float64 `json:"rate"`
}

// Percentile is one point of a latency distribution (Result.Percentiles).
type Percentile struct {
	Quantile float64 `json:"q"`
	Millis   float64 `json:"ms"`
}

// reportQuantiles are the points of the latency curve a report draws.
var reportQuantiles = []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1}

// percentileOf returns the q-quantile in milliseconds of sorted
// nanosecond latencies (nearest rank).
func percentileOf(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i]) / 1e6
}

// meter samples a running workload every Config.ProgressInterval, calls
// Config.Progress with each sample and keeps the throughput series.
type meter struct {
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	series []Point
}

// startMeter starts sampling count (and, for e2e, latencies: a copy of the
// nanosecond latencies so far) unless cfg asks for neither progress nor a
// series. The returned meter's finish stops it.
func startMeter(cfg Config, mode string, count func() int64, latencies func() []int64) *meter {
	m := &meter{stop: make(chan struct{}), done: make(chan struct{})}
	interval := cfg.ProgressInterval
	if interval <= 0 {
		interval = time.Second
	}
	go func() {
		defer close(m.done)
		start := time.Now()
		t := time.NewTicker(interval)
		defer t.Stop()
		last, lastAt := count(), start
		for {
			select {
			case <-m.stop:
				return
			case now := <-t.C:
				n := count()
				s := Sample{System: cfg.System, Mode: mode, Elapsed: now.Sub(start), Messages: n,
					Rate: float64(n-last) / now.Sub(lastAt).Seconds()}
				last, lastAt = n, now
				if latencies != nil && cfg.Progress != nil {
					l := latencies()
					slices.Sort(l)
					s.LatencyP50, s.LatencyP99 = percentileOf(l, 0.5), percentileOf(l, 0.99)
				}
				m.mu.Lock()
				m.series = append(m.series, Point{Seconds: s.Elapsed.Seconds(), Rate: s.Rate})
				m.mu.Unlock()
				if cfg.Progress != nil {
					cfg.Progress(s)
				}
			}
		}
	}()
	return m
}

// finish stops the meter and returns the series it kept.
func (m *meter) finish() []Point {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.series
}
