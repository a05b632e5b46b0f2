package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/internal/loadgen"
)

// TestBenchDelay: qmq bench --delay against a qmq dev with its delay group
// runs the produce workload real-time, then delayed, and prints both and
// their ratio; --delay with another workload is refused.
func TestBenchDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts qmq dev")
	}
	var out, errOut bytes.Buffer
	if code := runBench([]string{"--delay", "10m", "--mode", "e2e"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--delay measures the produce workload") {
		t.Errorf("--delay with --mode e2e: exit %d, %q", code, errOut.String())
	}
	dev := startDev(t, filepath.Join(t.TempDir(), "dev"), devPorts(t), fmt.Sprintf("--delay-port=%d", freeDelayPort(t)))
	out.Reset()
	errOut.Reset()
	if code := runBench([]string{"--meta", dev.meta, "--size", "100", "--duration", "300ms", "--warmup", "0", "--delay", "10m", "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
	}
	var r struct {
		Results []loadgen.Result `json:"results"`
		Ratio   float64          `json:"delay_ratio"`
		Target  float64          `json:"delay_target"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if len(r.Results) != 2 || r.Results[0].System != "qmq" || r.Results[1].System != "qmq-delay" || r.Results[1].Messages <= 0 || r.Results[1].Failed != 0 || r.Ratio <= 0 || r.Target != 0.8 {
		t.Errorf("qmq bench --delay printed %s", out.String())
	}
	t.Logf("%s", strings.TrimSpace(out.String()))
}
