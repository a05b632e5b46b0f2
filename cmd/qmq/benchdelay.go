package main

import (
	"context"
	"fmt"
	"time"

	"github.com/qmq-go/qmq/internal/loadgen"
)

// delayBenchTarget is issue 15's bar: delay servers receive at least this
// fraction of what a real-time broker takes on the same machine.
const delayBenchTarget = 0.8

// runDelayBench is qmq bench --delay: the produce workload twice in one run,
// first real-time to the broker groups, then with every message delayed by
// delay to the delay groups, so that both figures see the same machine
// and cluster. It returns both results and the ratio delayed/real-time.
// The delayed messages are delivered to the run's subjects once due.
func runDelayBench(ctx context.Context, meta, runID string, cfg loadgen.Config, delay time.Duration, tune func(*loadgen.QMQ), newQMQ func(runID string) *loadgen.QMQ) (rt, dl loadgen.Result, ratio float64, err error) {
	each := func(dst *loadgen.Result) func(loadgen.Result) { return func(r loadgen.Result) { *dst = r } }
	b := newQMQ(runID)
	tune(b)
	if err := loadgen.RunModes(ctx, b, "qmq", cfg, []string{"produce"}, each(&rt)); err != nil {
		return rt, dl, 0, err
	}
	// Other subjects: a subject's first message creates its files on the
	// broker, which must not count against either run.
	d := newQMQ(runID + "d")
	tune(d)
	d.Delay = delay
	if err := loadgen.RunModes(ctx, d, "qmq-delay", cfg, []string{"produce"}, each(&dl)); err != nil {
		return rt, dl, 0, fmt.Errorf("%w (does the metaserver at %s know a delay group? qmq tools ListBrokerGroups lists them)", err, meta)
	}
	if rt.MsgPerSec > 0 {
		ratio = dl.MsgPerSec / rt.MsgPerSec
	}
	return rt, dl, ratio, nil
}

// delayRatioLine is the human summary of a --delay run.
func delayRatioLine(ratio float64, delay time.Duration) string {
	verdict := "meets"
	if ratio < delayBenchTarget {
		verdict = "BELOW"
	}
	return fmt.Sprintf("delay/real-time receive ratio %.2f (%s the target %.1f); the delayed messages are delivered in %v", ratio, verdict, delayBenchTarget, delay)
}
