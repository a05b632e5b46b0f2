package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/internal/loadgen"
)

// TestBench runs every workload with small numbers against a `qmq dev`
// (metaserver + broker) on free ports.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("starts qmq dev")
	}
	dev := startDev(t, filepath.Join(t.TempDir(), "dev"), devPorts(t))
	common := []string{"--meta", dev.meta, "--size", "100", "--duration", "300ms", "--json"}

	run1 := func(t *testing.T, args ...string) loadgen.Result {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := runBench(append(append([]string{}, common...), args...), &out, &errOut); code != 0 {
			t.Fatalf("qmq bench %v: exit %d\nstdout: %s\nstderr: %s", args, code, out.String(), errOut.String())
		}
		var r loadgen.Result
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("output %q: %v", out.String(), err)
		}
		if strings.Count(strings.TrimSpace(out.String()), "\n") != 0 {
			t.Errorf("--json printed more than one line: %q", out.String())
		}
		return r
	}

	t.Run("produce", func(t *testing.T) {
		r := run1(t, "--mode", "produce", "--subjects", "3", "--producers", "2")
		if r.System != "qmq" || r.Mode != "produce" || r.Messages <= 0 || r.MsgPerSec <= 0 || r.Failed != 0 {
			t.Fatalf("result %+v", r)
		}
		if r.Subjects != 3 || r.Producers != 2 || r.Size != 100 {
			t.Errorf("config not echoed: %+v", r)
		}
	})
	t.Run("consume", func(t *testing.T) {
		r := run1(t, "--mode", "consume", "--subjects", "2", "--consumers", "2", "--count", "500")
		if r.Mode != "consume" || r.Messages != 500 || r.Missing != 0 || r.MsgPerSec <= 0 {
			t.Fatalf("result %+v", r)
		}
	})
	t.Run("e2e", func(t *testing.T) {
		r := run1(t, "--mode", "e2e", "--rate", "500")
		if r.Mode != "e2e" || r.Rate != 500 || r.Messages < 100 || r.Missing != 0 {
			t.Fatalf("result %+v", r)
		}
		if !(r.LatencyP50 > 0 && r.LatencyP50 <= r.LatencyP90 && r.LatencyP90 <= r.LatencyP99 && r.LatencyP99 <= r.LatencyMax) {
			t.Fatalf("percentiles out of order: %+v", r)
		}
	})
	t.Run("live-table-html", func(t *testing.T) {
		var out, errOut bytes.Buffer
		report := filepath.Join(t.TempDir(), "report.html")
		args := []string{"--meta", dev.meta, "--size", "100", "--duration", "2500ms", "--rate", "300", "--mode", "produce,e2e", "--html", report}
		if code := runBench(args, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
		}
		// A live line each second of each workload, e2e's with its latency so far.
		live := 0
		for _, l := range strings.Split(errOut.String(), "\n") {
			if strings.HasPrefix(l, "qmq ") && strings.Contains(l, "msg/s") {
				live++
				if strings.Contains(l, " e2e ") && !strings.Contains(l, "p99") {
					t.Errorf("e2e live line without latency: %q", l)
				}
			}
		}
		if live < 3 {
			t.Errorf("%d live lines on stderr, want one per second of each workload:\n%s", live, errOut.String())
		}
		if !strings.Contains(out.String(), "p99.9 ms") {
			t.Errorf("no final table in %q", out.String())
		}
		html, err := os.ReadFile(report)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"e2e throughput over time", "end-to-end latency by percentile", "<polyline"} {
			if !strings.Contains(string(html), want) {
				t.Errorf("report lacks %q", want)
			}
		}
		screenshotInChromium(t, report)
	})
	t.Run("all-text", func(t *testing.T) {
		var out, errOut bytes.Buffer
		args := []string{"--meta", dev.meta, "--size", "10", "--duration", "200ms", "--rate", "200", "--count", "100"}
		if code := runBench(args, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
		}
		// Its subjects are named to be found, and the run says what it left.
		if !strings.Contains(out.String(), "subjects "+loadgen.QMQSubjectPrefix) || !strings.Contains(out.String(), "retention") {
			t.Errorf("no line about the %s subjects left behind in %q", loadgen.QMQSubjectPrefix, out.String())
		}
		for _, m := range []string{"produce", "consume", "e2e"} {
			if !strings.Contains(out.String(), " "+m+" ") {
				t.Errorf("no %s line in %q", m, out.String())
			}
		}
	})
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{{"--mode", "nope"}, {"--subjects", "0"}, {"extra"}} {
		var out, errOut bytes.Buffer
		if code := runBench(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
