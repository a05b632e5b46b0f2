package console

import (
	"context"
	"sort"
	"sync"
	"time"
)

// delaySubjects is one delay group's pending messages per subject, as its
// master's /subjects reports them (its slave's when the master does not
// answer: a slave replays the master's logs and counts the same).
type delaySubjects struct {
	Group   string
	From    string // the role and HTTP address that answered
	Pending int64
	Rows    []delaySubjectRow
	Err     string
}

// delaySubjectRow is a subject's line of the delay page.
type delaySubjectRow struct {
	Subject     string `json:"subject"`
	Pending     int64  `json:"pending"`
	EarliestDue string `json:"earliestDue"`
	Millis      int64  `json:"earliestDueMillis"`
	Exact       bool   `json:"earliestDueExact"`
	// Overdue: the earliest is in the past (a delay server behind, or no
	// real-time broker taking the subject: see parked on /health).
	Overdue bool `json:"-"`
}

// delaySubjectsReport is the delay server's /subjects answer.
type delaySubjectsReport struct {
	Pending  int64             `json:"pending"`
	Subjects []delaySubjectRow `json:"subjects"`
}

// delayGroups reads /subjects of each delay group in servers (the rows of
// the broker table that are delay servers), in parallel, by group name.
func (src *sources) delayGroups(ctx context.Context, servers []serverView) []delaySubjects {
	byGroup := map[string][]serverView{}
	for _, sv := range servers {
		byGroup[sv.Group] = append(byGroup[sv.Group], sv)
	}
	out := make([]delaySubjects, 0, len(byGroup))
	for g := range byGroup {
		out = append(out, delaySubjects{Group: g})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	now := time.Now().UnixMilli()
	var wg sync.WaitGroup
	for i := range out {
		members := byGroup[out[i].Group]
		// The master first.
		sort.SliceStable(members, func(a, b int) bool { return members[a].Role == "DELAY_MASTER" && members[b].Role != "DELAY_MASTER" })
		wg.Add(1)
		go func(d *delaySubjects) {
			defer wg.Done()
			d.Err = "no delay server of the group has a known HTTP port (console.broker.http.ports, or Consul)"
			for _, sv := range members {
				if sv.HTTP == "" {
					continue
				}
				var rep delaySubjectsReport
				if err := src.getJSON(ctx, "http://"+sv.HTTP+"/subjects", &rep); err != nil {
					d.Err = sv.Role + " " + sv.HTTP + ": " + err.Error()
					continue
				}
				d.Err, d.From, d.Pending, d.Rows = "", sv.Role+" "+sv.HTTP, rep.Pending, rep.Subjects
				for j := range d.Rows {
					d.Rows[j].Overdue = d.Rows[j].Millis > 0 && d.Rows[j].Millis < now
				}
				return
			}
		}(&out[i])
	}
	wg.Wait()
	return out
}
