package benchreport

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/loadgen"
)

func sampleResults() []loadgen.Result {
	series := []loadgen.Point{{Seconds: 1, Rate: 9000}, {Seconds: 2, Rate: 11000}, {Seconds: 3, Rate: 10500}}
	curve := []loadgen.Percentile{{Quantile: 0, Millis: 0.2}, {Quantile: 0.5, Millis: 0.6}, {Quantile: 0.99, Millis: 3},
		{Quantile: 0.999, Millis: 7}, {Quantile: 1, Millis: 12}}
	return []loadgen.Result{
		{System: "qmq", Mode: "produce", MsgPerSec: 40000, Series: series},
		{System: "nats", Mode: "produce", MsgPerSec: 20000, Series: series},
		{System: "qmq", Mode: "e2e", MsgPerSec: 10000, LatencyP50: 0.6, LatencyP99: 3, LatencyP999: 7, LatencyMax: 12, Series: series, Percentiles: curve},
		{System: "nats", Mode: "e2e", MsgPerSec: 10000, LatencyP50: 0.5, LatencyP99: 30, LatencyP999: 40, LatencyMax: 50, Series: series, Percentiles: curve},
	}
}

// TestWriteIsSelfContainedXHTMLishSVG: the report names every system, has a
// chart per workload plus the latency curve, well-formed SVG, the ratios,
// and loads nothing from elsewhere.
func TestWriteIsSelfContained(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, Report{Title: "qmq bench <run>", Command: "qmq bench --html r.html", Started: time.Unix(0, 0), Results: sampleResults()}); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{"qmq bench &lt;run&gt;", "produce throughput over time", "e2e throughput over time",
		"end-to-end latency by percentile", "qmq/nats", "2.00×", "0.10×", "e2e p99.9 ms", "<polyline"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://", "src="} {
		if strings.Contains(html, bad) {
			t.Errorf("report contains %q: it must be self-contained", bad)
		}
	}
	// Every SVG parses as XML.
	for rest := html; ; {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], "</svg>")
		svg := rest[i : i+j+len("</svg>")]
		if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
			t.Errorf("svg does not parse: %v\n%s", err, svg)
		}
		rest = rest[i+j:]
	}
}

func TestWriteWithoutSeries(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, Report{Title: "t", Results: []loadgen.Result{{System: "qmq", Mode: "consume", MsgPerSec: 5}}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<svg") {
		t.Error("a run without a series drew a chart")
	}
}
