package benchreport

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/qmq-go/qmq/internal/loadgen"
)

//go:embed report.html.tmpl
var pageSource string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"add":  func(a, b float64) float64 { return a + b },
	"sub":  func(a, b float64) float64 { return a - b },
	"half": func(a float64) float64 { return a / 2 },
}).Parse(pageSource))

// Report is one benchmark run.
type Report struct {
	Title   string
	Command string // how the run was started, shown at the top
	Started time.Time
	// Results of every system and workload, in run order.
	Results []loadgen.Result
}

// palette colours the systems in the order they first appear.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}

// chart geometry (SVG user units)
const (
	chartW, chartH = 640.0, 260.0
	padL, padR     = 64.0, 32.0
	padT, padB     = 16.0, 40.0
)

type line struct {
	System string
	Colour string
	Points string // SVG polyline points
}

type tick struct {
	Pos   float64
	Label string
}

type chart struct {
	Title          string
	XLabel, YLabel string
	Lines          []line
	XTicks, YTicks []tick
	W, H           float64
	PlotL, PlotR   float64
	PlotT, PlotB   float64
}

type row struct {
	Label  string
	Cells  []string
	Ratios []string
}

type view struct {
	Report
	StartedText string
	Systems     []string
	Colours     map[string]string
	Charts      []chart
	Header      []string
	Peers       []string
	Rows        []row
}

// Write renders r as HTML to w.
func Write(w io.Writer, r Report) error {
	v := view{Report: r, Colours: map[string]string{}}
	if !r.Started.IsZero() {
		v.StartedText = r.Started.UTC().Format(time.RFC3339)
	}
	var modes []string
	for _, res := range r.Results {
		if _, ok := v.Colours[res.System]; !ok {
			v.Colours[res.System] = palette[len(v.Systems)%len(palette)]
			v.Systems = append(v.Systems, res.System)
		}
		if !contains(modes, res.Mode) {
			modes = append(modes, res.Mode)
		}
	}
	for _, m := range modes {
		if c, ok := throughputChart(r.Results, m, v.Colours); ok {
			v.Charts = append(v.Charts, c)
		}
	}
	if c, ok := latencyChart(r.Results, v.Colours); ok {
		v.Charts = append(v.Charts, c)
	}
	v.Header, v.Peers, v.Rows = table(r.Results, modes, v.Systems)
	return page.Execute(w, v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func throughputChart(results []loadgen.Result, mode string, colours map[string]string) (chart, bool) {
	var maxT, maxY float64
	for _, r := range results {
		if r.Mode != mode {
			continue
		}
		for _, p := range r.Series {
			maxT, maxY = math.Max(maxT, p.Seconds), math.Max(maxY, p.Rate)
		}
	}
	if maxT == 0 || maxY == 0 {
		return chart{}, false
	}
	maxY = niceCeil(maxY)
	c := newChart(fmt.Sprintf("%s throughput over time", mode), "seconds", "msg/s")
	for _, r := range results {
		if r.Mode != mode || len(r.Series) == 0 {
			continue
		}
		var b strings.Builder
		for _, p := range r.Series {
			fmt.Fprintf(&b, "%.1f,%.1f ", c.x(p.Seconds/maxT), c.y(p.Rate/maxY))
		}
		c.Lines = append(c.Lines, line{System: r.System, Colour: colours[r.System], Points: b.String()})
	}
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		c.XTicks = append(c.XTicks, tick{Pos: c.x(f), Label: fmt.Sprintf("%.3g", f*maxT)})
		c.YTicks = append(c.YTicks, tick{Pos: c.y(f), Label: humanRate(f * maxY)})
	}
	return c, true
}

// latencyChart draws the e2e latency against the quantile on the usual
// log scale of 1/(1-q): 50%, 90%, 99%, 99.9%, 99.99% equally spaced, where
// the tail is.
func latencyChart(results []loadgen.Result, colours map[string]string) (chart, bool) {
	const lastNines = 4.0 // up to 99.99%
	var maxY float64
	for _, r := range results {
		for _, p := range r.Percentiles {
			maxY = math.Max(maxY, p.Millis)
		}
	}
	if maxY == 0 {
		return chart{}, false
	}
	maxY = niceCeil(maxY)
	c := newChart("end-to-end latency by percentile", "percentile", "ms")
	for _, r := range results {
		if len(r.Percentiles) == 0 {
			continue
		}
		var b strings.Builder
		for _, p := range r.Percentiles {
			q := math.Min(p.Quantile, 0.9999)
			nines := math.Min(-math.Log10(1-q), lastNines)
			fmt.Fprintf(&b, "%.1f,%.1f ", c.x(nines/lastNines), c.y(p.Millis/maxY))
		}
		c.Lines = append(c.Lines, line{System: r.System, Colour: colours[r.System], Points: b.String()})
	}
	for i, label := range []string{"0%", "90%", "99%", "99.9%", "99.99%"} {
		c.XTicks = append(c.XTicks, tick{Pos: c.x(float64(i) / lastNines), Label: label})
	}
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		c.YTicks = append(c.YTicks, tick{Pos: c.y(f), Label: fmt.Sprintf("%.3g", f*maxY)})
	}
	return c, true
}

func newChart(title, x, y string) chart {
	return chart{Title: title, XLabel: x, YLabel: y, W: chartW, H: chartH,
		PlotL: padL, PlotR: chartW - padR, PlotT: padT, PlotB: chartH - padB}
}

// x and y map a fraction of the axis (0..1) to SVG coordinates.
func (c chart) x(f float64) float64 { return c.PlotL + f*(c.PlotR-c.PlotL) }
func (c chart) y(f float64) float64 { return c.PlotB - f*(c.PlotB-c.PlotT) }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func humanRate(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

type metric struct {
	mode, label string
	get         func(loadgen.Result) float64
	format      string
}

var metrics = []metric{
	{"produce", "produce msg/s", func(r loadgen.Result) float64 { return r.MsgPerSec }, "%.0f"},
	{"consume", "consume msg/s (ack each)", func(r loadgen.Result) float64 { return r.MsgPerSec }, "%.0f"},
	{"e2e", "e2e delivered msg/s", func(r loadgen.Result) float64 { return r.MsgPerSec }, "%.0f"},
	{"e2e", "e2e p50 ms", func(r loadgen.Result) float64 { return r.LatencyP50 }, "%.3f"},
	{"e2e", "e2e p99 ms", func(r loadgen.Result) float64 { return r.LatencyP99 }, "%.3f"},
	{"e2e", "e2e p99.9 ms", func(r loadgen.Result) float64 { return r.LatencyP999 }, "%.3f"},
	{"e2e", "e2e max ms", func(r loadgen.Result) float64 { return r.LatencyMax }, "%.3f"},
}

// table is the figures, one column per system, and qmq/peer ratios when
// qmq ran beside peers.
func table(results []loadgen.Result, modes, systems []string) (header, peers []string, rows []row) {
	find := func(sys, mode string) (loadgen.Result, bool) {
		for _, r := range results {
			if r.System == sys && r.Mode == mode {
				return r, true
			}
		}
		return loadgen.Result{}, false
	}
	if contains(systems, "qmq") {
		for _, s := range systems {
			if s != "qmq" {
				peers = append(peers, s)
			}
		}
	}
	header = append([]string{"workload"}, systems...)
	for _, p := range peers {
		header = append(header, "qmq/"+p)
	}
	for _, m := range metrics {
		if !contains(modes, m.mode) {
			continue
		}
		rw := row{Label: m.label}
		for _, s := range systems {
			if r, ok := find(s, m.mode); ok {
				rw.Cells = append(rw.Cells, fmt.Sprintf(m.format, m.get(r)))
			} else {
				rw.Cells = append(rw.Cells, "–")
			}
		}
		q, okQ := find("qmq", m.mode)
		for _, p := range peers {
			r, ok := find(p, m.mode)
			if okQ && ok && m.get(r) > 0 {
				rw.Ratios = append(rw.Ratios, fmt.Sprintf("%.2f×", m.get(q)/m.get(r)))
			} else {
				rw.Ratios = append(rw.Ratios, "–")
			}
		}
		rows = append(rows, rw)
	}
	return header, peers, rows
}
