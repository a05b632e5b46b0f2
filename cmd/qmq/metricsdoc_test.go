package main

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// docs/metrics.md has one table of every metric. Its first part is
// generated from the /metrics of a running `qmq dev` (and a client's
// registry) by TestObservabilityDev -update-metrics-doc; the part after it
// lists, by hand, the metrics such a run does not show (labelled series
// nothing has touched yet, components qmq dev does not run).
const (
	metricsDoc         = "../../docs/metrics.md"
	metricsDocGenBegin = "<!-- begin generated table: go test ./cmd/qmq -run TestObservabilityDev -update-metrics-doc -->"
	metricsDocGenEnd   = "<!-- end generated table -->"
)

// metricRow is one row of the table.
type metricRow struct {
	Name, Type string
	Labels     []string
	Components []string
	Help       string
}

// standardFamily: Go's and the process's collectors, the same everywhere;
// the document names them once, not per metric.
func standardFamily(name string) bool {
	return strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_")
}

// scrape reads a /metrics page.
func scrape(url string) (map[string]*dto.MetricFamily, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// addFamilies merges families exported by component into rows.
func addFamilies(rows map[string]*metricRow, component string, fams map[string]*dto.MetricFamily) {
	for name, f := range fams {
		if standardFamily(name) {
			continue
		}
		labels := map[string]bool{}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				labels[l.GetName()] = true
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		r := rows[name]
		if r == nil {
			r = &metricRow{Name: name, Type: strings.ToLower(f.GetType().String()), Help: f.GetHelp()}
			rows[name] = r
		}
		for _, l := range ls {
			if !slices.Contains(r.Labels, l) {
				r.Labels = append(r.Labels, l)
			}
		}
		sort.Strings(r.Labels)
		if !slices.Contains(r.Components, component) {
			r.Components = append(r.Components, component)
		}
	}
}

func escapeCell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

func (r metricRow) markdown() string {
	labels := make([]string, len(r.Labels))
	for i, l := range r.Labels {
		labels[i] = "`" + l + "`"
	}
	return fmt.Sprintf("| `%s` | %s | %s | %s | %s |", r.Name, r.Type, strings.Join(labels, ", "), strings.Join(r.Components, ", "), escapeCell(r.Help))
}

// splitRow splits a table row on the | not escaped with a backslash.
func splitRow(line string) []string {
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	cells = append(cells, strings.TrimSpace(cur.String()))
	if len(cells) >= 2 {
		cells = cells[1 : len(cells)-1] // around the leading and trailing |
	}
	return cells
}

// parseMetricsDoc returns every row of the document's tables by name.
func parseMetricsDoc(doc string) (map[string]metricRow, error) {
	rows := map[string]metricRow{}
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		c := splitRow(line)
		if len(c) != 5 {
			return nil, fmt.Errorf("docs/metrics.md: a row without 5 cells: %s", line)
		}
		r := metricRow{Name: strings.Trim(c[0], "`"), Type: c[1], Help: c[4]}
		for _, l := range strings.Split(c[2], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				r.Labels = append(r.Labels, l)
			}
		}
		sort.Strings(r.Labels)
		if _, dup := rows[r.Name]; dup {
			return nil, fmt.Errorf("docs/metrics.md lists %s twice", r.Name)
		}
		rows[r.Name] = r
	}
	return rows, nil
}

// writeMetricsDoc replaces the generated table with rows.
func writeMetricsDoc(t *testing.T, rows map[string]*metricRow) {
	t.Helper()
	b, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	begin, end := strings.Index(doc, metricsDocGenBegin), strings.Index(doc, metricsDocGenEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the generated table's markers %q and %q", metricsDoc, metricsDocGenBegin, metricsDocGenEnd)
	}
	manual, err := parseMetricsDoc(doc[end:])
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(rows))
	for n := range rows {
		if _, listed := manual[n]; !listed {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var g strings.Builder
	g.WriteString(metricsDocGenBegin + "\n\n| Metric | Type | Labels | Exported by | Meaning |\n| --- | --- | --- | --- | --- |\n")
	for _, n := range names {
		g.WriteString(rows[n].markdown() + "\n")
	}
	g.WriteString("\n")
	doc = doc[:begin] + g.String() + doc[end:]
	if err := os.WriteFile(metricsDoc, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("rewrote the generated table of %s (%d metrics)", metricsDoc, len(names))
}

// registeredNames finds the metric names the code registers with a literal
// name (Name: "qmq_…", NewDesc("qmq_…", and the client's helpers), so that
// a metric no qmq dev run shows still has to be in the document.
func registeredNames(t *testing.T) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`(?:Name:\s*|NewDesc\(|\b(?:c|cv|hv|g)\()"(qmq_[a-z0-9_]+)"`)
	out := map[string]string{}
	for _, dir := range []string{"../../services", "../../storage", "../../client", "../../internal", "../../backup"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				out[m[1]] = path
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
