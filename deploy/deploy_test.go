package deploy

import (
	"slices"
	"testing"
)

// The files load, every rule and panel is complete, and every expression
// names at least one qmq metric. That those metrics exist is checked
// against a running qmq dev by cmd/qmq's TestObservabilityDev.
func TestFilesLoad(t *testing.T) {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"QMQBrokerGroupWithoutSlave", "QMQReplicationLag", "QMQConsumerBacklogGrowing", "QMQDeadLetters", "QMQDelayDueLag", "QMQWatchdogRowsPending"}
	var names []string
	for _, r := range rules {
		names = append(names, r.Alert)
		if len(MetricNames(r.Expr)) == 0 {
			t.Errorf("%s: %q names no qmq metric", r.Alert, r.Expr)
		}
	}
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("alert %s is missing (issue 18 asks for it)", w)
		}
	}
	panels, err := DashboardExprs()
	if err != nil {
		t.Fatal(err)
	}
	if len(panels) < 10 {
		t.Errorf("the dashboard has %d panels", len(panels))
	}
	for title, exprs := range panels {
		for _, e := range exprs {
			if len(MetricNames(e)) == 0 {
				t.Errorf("panel %q: %q names no qmq metric", title, e)
			}
		}
	}
}

func TestMetricNames(t *testing.T) {
	got := MetricNames(`histogram_quantile(0.99, sum by (instance, le) (rate(qmq_broker_pull_seconds_bucket[$__rate_interval]))) / qmq_x_total{code="qmq_not"} + qmq_x_total`)
	want := []string{"qmq_broker_pull_seconds", "qmq_x_total"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
