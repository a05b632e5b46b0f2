package delay

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
)

// pendingOf returns /subjects' pending count per subject, and the whole
// report.
func pendingOf(t *testing.T, h *delayHarness) (map[string]int64, subjectsReport) {
	t.Helper()
	var rep subjectsReport
	if code := getJSON(t, "http://"+h.srv.HTTPAddr().String()+"/subjects", &rep); code != http.StatusOK {
		t.Fatalf("/subjects answered %d", code)
	}
	out := map[string]int64{}
	for _, s := range rep.Subjects {
		out[s.Subject] = s.Pending
	}
	return out, rep
}

func sameCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDelaySubjects: messages of three subjects, some dispatched, some due
// in an hour (the loaded window) or in two days (beyond it), two cancelled
// through the metaserver: the master's /subjects, /health and /metrics
// count the pending ones of the whole store per subject; its slave, which
// replays the master's logs, counts the same; both after a restart too.
func TestDelaySubjects(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m)
	const soon, hour, days = "delay.subjects.soon", "delay.subjects.hour", "delay.subjects.days"
	col := consume(t, m.Endpoint(), soon)
	master := pairMember(t, m, delayHost, int(protocol.RoleDelayMaster), func(s *Settings) { waitSlave(s); withSecret(s) })
	slave := pairMember(t, m, slaveHost, int(protocol.RoleDelaySlave), withSecret)
	master.waitOnline()
	testutil.Eventually(t, 10*time.Second, "the slave to replicate", func() bool {
		r := slave.srv.replica.Load()
		return r != nil && r.slave != nil && r.slave.Status().Connected
	})

	now := time.Now()
	addr := master.srv.Addr().String()
	// soon: 10 due within a second and 10 in an hour; hour: 3 in an hour;
	// days: 5 in two days, an hour apart.
	for _, b := range []struct {
		subject string
		n       int
		due     func(i int) time.Time
	}{
		{soon, 20, func(i int) time.Time {
			if i < 10 {
				return now.Add(500 * time.Millisecond)
			}
			return now.Add(time.Hour)
		}},
		{hour, 3, func(int) time.Time { return now.Add(time.Hour) }},
		{days, 5, func(i int) time.Time { return now.Add(48*time.Hour + time.Duration(i)*time.Hour) }},
	} {
		if _, refused := sendBatches(t, addr, b.subject, b.n, b.due); len(refused) > 0 {
			t.Fatalf("%s: %d refused", b.subject, len(refused))
		}
	}
	var due []string
	for i := 0; i < 10; i++ {
		due = append(due, fmt.Sprintf("%s-%05d", soon, i))
	}
	col.waitFor(t, 15*time.Second, due...)
	testutil.Eventually(t, 5*time.Second, "the master to count 10 dispatched", func() bool { return master.srv.dispatched.Load() == 10 })
	for _, id := range []string{hour + "-00001", days + "-00000"} {
		if a, code := toolsCancel(t, m, metatest.Token, id[:strings.LastIndex(id, "-")], id); code != 0 || a.Data == nil || !a.Data.Cancelled {
			t.Fatalf("cancel %s: exit %d, %+v", id, code, a)
		}
	}

	want := map[string]int64{soon: 10, hour: 2, days: 4}
	check := func(when string) {
		t.Helper()
		got, rep := pendingOf(t, master)
		if !sameCounts(got, want) || rep.Pending != 16 || rep.Role != "DELAY_MASTER" {
			t.Fatalf("%s: master /subjects %+v, want %v", when, rep, want)
		}
		for _, s := range rep.Subjects {
			if s.Subject == days && (s.EarliestDueMillis != now.Add(49*time.Hour).UnixMilli() || !s.EarliestDueExact) {
				t.Errorf("%s: %s's earliest due %+v, want %v (days-00000 was cancelled)", when, days, s, now.Add(49*time.Hour).UTC())
			}
		}
		var h healthReport
		getJSON(t, "http://"+master.srv.HTTPAddr().String()+"/health", &h)
		// The window holds the messages due in an hour or not, depending
		// on where now falls in its hourly bucket; never those in two days.
		if h.Pending != 16 || h.PendingSubjects != 3 || h.PendingInWindow > 12 {
			t.Errorf("%s: master /health pending %d in %d subjects, %d in the window; want 16 in 3, at most 12", when, h.Pending, h.PendingSubjects, h.PendingInWindow)
		}
		metrics := getText(t, "http://"+master.srv.HTTPAddr().String()+"/metrics")
		for _, line := range []string{"qmq_delay_store_pending_messages 16", "qmq_delay_store_pending_subjects 3",
			`qmq_delay_store_subject_pending_messages{subject="` + soon + `"} 10`, `qmq_delay_store_subject_pending_messages{subject="` + days + `"} 4`} {
			if !strings.Contains(metrics, line+"\n") {
				t.Errorf("%s: master /metrics lacks %q", when, line)
			}
		}
		testutil.EventuallyState(t, 10*time.Second, "the slave to count what the master counts", func() (bool, string) {
			got, rep := pendingOf(t, slave)
			return sameCounts(got, want) && rep.Role == "DELAY_SLAVE", fmt.Sprintf("%+v", rep)
		})
	}
	check("running")
	master.stop()
	slave.stop()
	slave.start(-1)
	master.start(-1)
	master.waitOnline()
	check("after a restart of both")
}
