package broker

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/pulllog"
)

// backlogCollector exports, at each scrape, how far every consumer group is
// behind its subject on this broker and how many dead letters are stored:
// what the consumer-backlog and dead-letter alerts of deploy/prometheus
// watch. It reads the consumer logs' ends and the pull-log table, so a
// scrape costs one pass over the groups and no work between scrapes.
type backlogCollector struct {
	s       *instance
	backlog *prometheus.Desc
	dead    *prometheus.Desc
}

func newBacklogCollector(s *instance) *backlogCollector {
	return &backlogCollector{
		s: s,
		backlog: prometheus.NewDesc("qmq_broker_consumer_backlog_messages",
			"Messages of the subject on this broker that the consumer group has not pulled yet (broadcast groups excluded).",
			[]string{"subject", "group"}, nil),
		dead: prometheus.NewDesc("qmq_broker_dead_letter_messages",
			"Messages stored in a %DEAD_RETRY% subject on this broker: messages a consumer group gave up on after its retries.",
			[]string{"subject"}, nil),
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.dead
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.store
	if st == nil {
		return
	}
	for _, subject := range st.Subjects() {
		if strings.HasPrefix(subject, protocol.DeadRetryPrefix) {
			ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(st.MaxSequence(subject)+1), subject)
		}
	}
	st.PullLog(func(t *pulllog.Table) {
		for _, g := range t.Groups() {
			if bc, _ := t.IsBroadcast(g.Subject, g.Group); bc {
				continue
			}
			pulled, _ := t.GroupMaxPulledMsgSeq(g.Subject, g.Group)
			behind := max(st.MaxSequence(g.Subject)-pulled, 0)
			ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(behind), g.Subject, g.Group)
		}
	})
}
