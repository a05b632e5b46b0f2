package deploy

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Dashboard is grafana/qmq.json.
//
//go:embed grafana/qmq.json
var Dashboard []byte

// AlertRules is prometheus/alerts.yml.
//
//go:embed prometheus/alerts.yml
var AlertRules []byte

// Rule is one alerting rule of AlertRules.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// Rules parses AlertRules and checks that every rule has a name, an
// expression, a `for:` Prometheus can parse, a severity, and a summary and
// description saying what to do.
func Rules() ([]Rule, error) {
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []Rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(AlertRules, &f); err != nil {
		return nil, fmt.Errorf("prometheus/alerts.yml: %w", err)
	}
	var out []Rule
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			return nil, fmt.Errorf("prometheus/alerts.yml: group %q has no name or no rules", g.Name)
		}
		for _, r := range g.Rules {
			switch {
			case r.Alert == "" || r.Expr == "":
				return nil, fmt.Errorf("prometheus/alerts.yml: group %s: a rule without alert or expr: %+v", g.Name, r)
			case r.For == "":
				return nil, fmt.Errorf("prometheus/alerts.yml: %s has no for: (one bad scrape must not page)", r.Alert)
			case r.Labels["severity"] == "":
				return nil, fmt.Errorf("prometheus/alerts.yml: %s has no severity label", r.Alert)
			case r.Annotations["summary"] == "" || r.Annotations["description"] == "":
				return nil, fmt.Errorf("prometheus/alerts.yml: %s needs a summary and a description saying what to do", r.Alert)
			}
			if _, err := parsePromDuration(r.For); err != nil {
				return nil, fmt.Errorf("prometheus/alerts.yml: %s: for: %w", r.Alert, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// parsePromDuration accepts Prometheus's durations of one unit (30s, 5m, 1h, 1d).
func parsePromDuration(s string) (time.Duration, error) {
	if m := regexp.MustCompile(`^([0-9]+)d$`).FindStringSubmatch(s); m != nil {
		return time.ParseDuration(m[1] + "h") // only the syntax matters here
	}
	if !regexp.MustCompile(`^[0-9]+(ms|s|m|h)$`).MatchString(s) {
		return 0, fmt.Errorf("%q is not a Prometheus duration such as 30s, 5m or 1h", s)
	}
	return time.ParseDuration(s)
}

// DashboardExprs parses Dashboard and returns the PromQL expression of
// every panel target, panel title first ("title: expr").
func DashboardExprs() (map[string][]string, error) {
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		return nil, fmt.Errorf("grafana/qmq.json: %w", err)
	}
	if d.Title == "" || d.UID == "" {
		return nil, fmt.Errorf("grafana/qmq.json: the dashboard needs a title and a uid")
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			return nil, fmt.Errorf("grafana/qmq.json: panel %q has no query", p.Title)
		}
		for _, t := range p.Targets {
			if t.Expr == "" {
				return nil, fmt.Errorf("grafana/qmq.json: panel %q has an empty query", p.Title)
			}
			out[p.Title] = append(out[p.Title], t.Expr)
		}
	}
	return out, nil
}

// metricName matches the metric names of qmq-go (and Go's and the
// process's standard ones) in an expression whose quoted strings (label
// values) are removed. Labels, functions and Grafana's variables never
// start with these prefixes.
var (
	metricName = regexp.MustCompile(`\b(?:qmq|go|process)_[a-zA-Z0-9_]+\b`)
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// MetricNames lists the metric families an expression reads, sorted, with
// a histogram's _bucket, _sum and _count series named by their family.
func MetricNames(expr string) []string {
	var out []string
	for _, n := range metricName.FindAllString(quoted.ReplaceAllString(expr, `""`), -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if len(n) > len(suffix) && n[len(n)-len(suffix):] == suffix {
				n = n[:len(n)-len(suffix)]
				break
			}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
