package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qmq-go/qmq/internal/benchreport"
	"github.com/qmq-go/qmq/internal/loadgen"
)

// printBenchTable prints the run's figures as one table, a row per workload.
func printBenchTable(w io.Writer, results []loadgen.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tmessages\tmsg/s\tMiB/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	ms := func(r loadgen.Result, v float64) string {
		if r.Mode != "e2e" {
			return "-"
		}
		return fmt.Sprintf("%.3f", v)
	}
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f\t%s\t%s\t%s\t%s\t%s\t\n", r.Mode, r.Messages, r.MsgPerSec, r.MiBPerSec,
			ms(r, r.LatencyP50), ms(r, r.LatencyP90), ms(r, r.LatencyP99), ms(r, r.LatencyP999), ms(r, r.LatencyMax))
	}
	_ = tw.Flush()
}

// writeBenchReport writes the HTML report of a run to path (through a
// temporary file, so that a failed run never leaves half a report).
func writeBenchReport(path, title string, args []string, started time.Time, results []loadgen.Result) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	err = benchreport.Write(f, benchreport.Report{Title: title, Command: strings.TrimSpace("qmq bench " + strings.Join(args, " ")),
		Started: started, Results: results})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("--html %s: %w", path, err)
	}
	return nil
}
