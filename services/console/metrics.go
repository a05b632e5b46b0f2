package console

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the console's series, on a registry of its own (several
// consoles can run in one test process).
type metrics struct {
	reg    *prometheus.Registry
	pages  *prometheus.CounterVec // by page
	writes *prometheus.CounterVec // by action and outcome
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		pages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmq_console_page_views_total", Help: "Pages served, by page.",
		}, []string{"page"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmq_console_writes_total", Help: "Changes asked for through the console, by action and outcome (done, failed, refused).",
		}, []string{"action", "outcome"}),
	}
	m.reg.MustRegister(m.pages, m.writes, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }
