package attack

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
)

// TestAttackManySubjects: a client that sends to more subjects than the
// broker may keep consumer logs open (each a file descriptor) must not
// wedge it. Before the bound, 20,000 subjects under a limit of 20,000
// descriptors made the broker fail every accept, every new message-log
// segment and every new subject with "too many open files". Here qmq dev
// (master and slave in one process) runs under a limit of 1,024: each
// broker keeps at most 384 logs open, and 1,200 subjects are written.
func TestAttackManySubjects(t *testing.T) {
	tg := startTargetLimited(t, 1024)
	p, err := client.NewProducer(context.Background(), tg.endpoint(), client.WithSendTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	const subjects = 1200
	start := time.Now()
	for i := range subjects {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := p.Send(ctx, p.NewMessage(fmt.Sprintf("attack.many.%d", i)))
		cancel()
		if err != nil {
			t.Fatalf("send to subject %d of %d: %v\n%s", i, subjects, err, tg.log.String())
		}
	}
	t.Logf("%d subjects written in %v", subjects, time.Since(start).Round(time.Millisecond))
	tg.alive()

	for _, port := range []int{tg.brokerHTTP, tg.slaveHTTP} {
		m := scrape(t, port)
		if m["qmq_consumerlog_released_total"] == 0 {
			t.Errorf("broker http %d closed no consumer log (open %v): the bound was not reached", port, m["qmq_consumerlog_open_subjects"])
		}
		if open := m["qmq_consumerlog_open_subjects"]; open > 384 {
			t.Errorf("broker http %d keeps %v consumer logs open, bound 384", port, open)
		}
	}
	// The dispatcher keeps up: closed logs are not reopened for every
	// checkpoint (it asks every subject's bounds; that once reopened every
	// closed log and left the dispatcher gigabytes behind).
	deadline := time.Now().Add(30 * time.Second)
	for {
		lag := scrape(t, tg.brokerHTTP)["qmq_store_replay_lag_bytes"]
		if lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the master's consumer logs are still %v bytes behind its message log 30 s after the sends", lag)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Still serving: a new subject's messages are acknowledged and consumed.
	tr := tg.startTraffic("attack.after.many")
	tr.send(20, 30*time.Second)
	tr.allConsumed(30 * time.Second)
	logs := tg.log.String()
	if strings.Contains(logs, "too many open files") {
		t.Errorf("the broker ran out of file descriptors:\n%s", logs)
	}
	if !strings.Contains(logs, "raise the process's file descriptor limit") {
		t.Errorf("no warning that consumer logs are being closed:\n%s", logs)
	}
}

// scrape reads the plain metrics (no labels) of a /metrics page.
func scrape(t *testing.T, port int) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err == nil {
			out[name] = v
		}
	}
	return out
}
