package client_test

// End-to-end tests: a real metaserver (in-process), real brokers (child
// processes, two broker groups so that min.group.num=2 routing spreads every
// subject over both) and the public client API only. The harness is in
// e2e_harness_test.go.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"

	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
)

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (-short)")
	}
}

// checkBody verifies a received message's body and properties survived.
func checkBody(m *client.Message) error {
	if want := "message " + m.Property("e2e_seq"); m.Body() != want {
		return fmt.Errorf("message %s: body %q, want %q", m.ID(), m.Body(), want)
	}
	return nil
}

// 1. N messages sent (Send and SendAsync) and consumed by 3 consumers of one
// group arrive exactly once each when all ack.
func TestE2EGroupExactlyOnce(t *testing.T) {
	skipShort(t)
	c := newCluster(t, 2)
	const subject, group, n = "e2e.orders", "order-service", 300
	c.requireTwoGroups(subject)
	p := c.producer(context.Background())
	tl := newTally()
	var bad atomic.Value
	names := []string{"c0", "c1", "c2"}
	for _, who := range names {
		cons := newConsumer(t, c, subject, group, client.WithConcurrency(4), client.WithPullBatch(20))
		runConsumer(t, cons, func(ctx context.Context, m *client.Message) error {
			if tl.record(who, m) {
				if err := checkBody(m); err != nil {
					bad.Store(err)
				}
			}
			return nil
		})
	}
	prime(t, p, subject, nil, func(id string) bool {
		return tl.sawProbe("c0", id) || tl.sawProbe("c1", id) || tl.sawProbe("c2", id)
	})
	ids := sendMixed(t, p, subject, n, nil)
	testutil.EventuallyState(t, 20*time.Second, fmt.Sprintf("all %d messages", n), func() (bool, string) {
		return tl.hasAll(ids), fmt.Sprintf("have %d", tl.distinct())
	})
	// Longer than subscriber.offline.timeout.ms + message.retry.delay.seconds:
	// a wrongly redelivered message would show up by then.
	time.Sleep(3 * time.Second)
	if err, _ := bad.Load().(error); err != nil {
		t.Error(err)
	}
	for _, id := range ids {
		if k := tl.count(id); k != 1 {
			t.Errorf("message %s delivered %d times, want exactly once", id, k)
		}
	}
	if tl.total() != n {
		t.Errorf("%d deliveries, want %d", tl.total(), n)
	}
	busy := 0
	for _, who := range names {
		k := len(tl.of(who))
		t.Logf("consumer %s got %d messages", who, k)
		if k > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Errorf("only %d of 3 consumers got messages: the group does not share the work", busy)
	}
}

// 2. Two broadcast consumers each receive every message.
func TestE2EBroadcast(t *testing.T) {
	skipShort(t)
	c := newCluster(t, 2)
	const subject, group, n = "e2e.config", "config-cache", 100
	c.requireTwoGroups(subject)
	p := c.producer(context.Background())
	tl := newTally()
	names := []string{"b0", "b1"}
	for _, who := range names {
		cons := newConsumer(t, c, subject, group, client.WithBroadcast(), client.WithConcurrency(2))
		runConsumer(t, cons, func(ctx context.Context, m *client.Message) error { tl.record(who, m); return nil })
	}
	prime(t, p, subject, nil, func(id string) bool { return tl.sawProbe("b0", id) && tl.sawProbe("b1", id) })
	ids := sendMixed(t, p, subject, n, nil)
	all := func(who string) bool {
		got := tl.of(who)
		for _, id := range ids {
			if got[id] == 0 {
				return false
			}
		}
		return true
	}
	testutil.EventuallyState(t, 20*time.Second, fmt.Sprintf("both broadcast consumers to get %d messages", n), func() (bool, string) {
		return all("b0") && all("b1"), fmt.Sprintf("b0 %d, b1 %d", len(tl.of("b0")), len(tl.of("b1")))
	})
	time.Sleep(time.Second)
	for _, who := range names {
		got := tl.of(who)
		if len(got) != n {
			t.Errorf("%s got %d distinct messages, want %d", who, len(got), n)
		}
		for id, k := range got {
			if k != 1 {
				t.Errorf("%s got %s %d times, want once", who, id, k)
			}
		}
	}
}

// 3. Tag filtering: OR and AND consumers receive only matching messages.
func TestE2ETags(t *testing.T) {
	skipShort(t)
	c := newCluster(t, 2)
	const subject = "e2e.events"
	c.requireTwoGroups(subject)
	p := c.producer(context.Background())
	tl := newTally()
	type sub struct {
		group string
		opts  []client.ConsumerOption
		match func(tags []string) bool
	}
	has := func(tags []string, t string) bool { return slices.Contains(tags, t) }
	subs := []sub{
		{"tag-or", []client.ConsumerOption{client.WithTags(client.TagOr, "red", "blue")}, func(tg []string) bool { return has(tg, "red") || has(tg, "blue") }},
		{"tag-and", []client.ConsumerOption{client.WithTags(client.TagAnd, "red", "blue")}, func(tg []string) bool { return has(tg, "red") && has(tg, "blue") }},
		{"tag-none", nil, func([]string) bool { return true }},
	}
	var bad atomic.Value
	for _, s := range subs {
		cons := newConsumer(t, c, subject, s.group, s.opts...)
		runConsumer(t, cons, func(ctx context.Context, m *client.Message) error {
			if tl.record(s.group, m) && m.Property("e2e_tags") != strings.Join(m.Tags(), ",") {
				bad.Store(fmt.Errorf("%s: message %s has tags %v, sent with %q", s.group, m.ID(), m.Tags(), m.Property("e2e_tags")))
			}
			return nil
		})
	}
	prime(t, p, subject, []string{"red", "blue"}, func(id string) bool {
		return tl.sawProbe("tag-or", id) && tl.sawProbe("tag-and", id) && tl.sawProbe("tag-none", id)
	})
	combos := [][]string{nil, {"red"}, {"blue"}, {"green"}, {"red", "blue"}, {"red", "green"}, {"blue", "green", "red"}}
	const n = 35
	tagsOf := map[string][]string{}
	ids := sendMixed(t, p, subject, n, func(i int, m *client.Message) {
		for _, tg := range combos[i%len(combos)] {
			m.AddTag(tg)
		}
		m.SetProperty("e2e_tags", strings.Join(combos[i%len(combos)], ","))
	})
	for i, id := range ids {
		tagsOf[id] = combos[i%len(combos)]
	}
	want := map[string]map[string]bool{}
	for _, s := range subs {
		want[s.group] = map[string]bool{}
		for _, id := range ids {
			if s.match(tagsOf[id]) {
				want[s.group][id] = true
			}
		}
	}
	allTagged := func() bool {
		for _, s := range subs {
			got := tl.of(s.group)
			for id := range want[s.group] {
				if got[id] == 0 {
					return false
				}
			}
		}
		return true
	}
	testutil.EventuallyState(t, 20*time.Second, "tagged deliveries", func() (bool, string) {
		return allTagged(), fmt.Sprintf("or %d/%d, and %d/%d, none %d/%d", len(tl.of("tag-or")), len(want["tag-or"]),
			len(tl.of("tag-and")), len(want["tag-and"]), len(tl.of("tag-none")), len(want["tag-none"]))
	})
	time.Sleep(time.Second) // anything unwanted would have arrived with the rest
	if err, _ := bad.Load().(error); err != nil {
		t.Error(err)
	}
	for _, s := range subs {
		got := tl.of(s.group)
		for id, k := range got {
			if !want[s.group][id] {
				t.Errorf("%s received %s with tags %v", s.group, id, tagsOf[id])
			} else if k != 1 {
				t.Errorf("%s received %s %d times", s.group, id, k)
			}
		}
		if len(got) != len(want[s.group]) {
			t.Errorf("%s received %d messages, want %d", s.group, len(got), len(want[s.group]))
		}
	}
	if len(want["tag-and"]) == 0 || len(want["tag-or"]) == len(ids) || len(want["tag-and"]) == len(want["tag-or"]) {
		t.Fatal("test data does not discriminate the filters")
	}
}

// 4. A handler that always fails: messages go through %RETRY% (qmq_times
// increments) and, after WithMaxRetries(2), to %DEAD_RETRY%<subject>%<group>;
// the handler is no longer called.
func TestE2ERetryThenDeadLetter(t *testing.T) {
	skipShort(t)
	c := newCluster(t, 2)
	const subject, group, n, maxRetries = "e2e.payments", "payment-worker", 10, 2
	dead := client.DeadLetterSubject(subject, group)
	c.requireTwoGroups(subject)
	p := c.producer(context.Background())

	calls := newTally()
	failing := newConsumer(t, c, subject, group, client.WithMaxRetries(maxRetries), client.WithConcurrency(2),
		client.WithLogger(hclog.NewNullLogger())) // quiet: every call fails, some by panicking
	runConsumer(t, failing, func(ctx context.Context, m *client.Message) error {
		if !calls.record("worker", m) {
			return nil // probes are acknowledged
		}
		if m.Times() == 1 {
			return errors.New("always fails")
		}
		panic("always fails, even by panicking") // a panic counts as a failure
	})
	// The dead-letter subject is read by a separate consumer group.
	dlq := newTally()
	reader := newConsumer(t, c, dead, "dlq-reader")
	runConsumer(t, reader, func(ctx context.Context, m *client.Message) error { dlq.record("reader", m); return nil })

	prime(t, p, subject, nil, func(id string) bool { return calls.sawProbe("worker", id) })
	prime(t, p, dead, nil, func(id string) bool { return dlq.sawProbe("reader", id) })

	ids := sendMixed(t, p, subject, n, nil)
	testutil.EventuallyState(t, 20*time.Second, fmt.Sprintf("%d dead letters", n), func() (bool, string) {
		return dlq.hasAll(ids), fmt.Sprintf("have %d; handler calls %d", dlq.distinct(), calls.total())
	})
	// The retry delay is 1 s: a further retry would call the handler by then.
	time.Sleep(2500 * time.Millisecond)
	calls.mu.Lock()
	defer calls.mu.Unlock()
	dlq.mu.Lock()
	defer dlq.mu.Unlock()
	for _, id := range ids {
		if got := calls.times[id]; !slices.Equal(got, []int{1, 2}) {
			t.Errorf("message %s: handler saw qmq_times %v, want [1 2] (first delivery, one retry, then no more calls)", id, got)
		}
		if got := dlq.times[id]; !slices.Equal(got, []int{maxRetries + 1}) {
			t.Errorf("message %s: dead-letter deliveries with qmq_times %v, want [%d]", id, got, maxRetries+1)
		}
	}
	if len(dlq.counts) != n {
		t.Errorf("%d distinct dead letters, want %d", len(dlq.counts), n)
	}
}

// victim is a consumer in a child process that takes messages and never
// acknowledges them.
type victim struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	got   []string
	ready chan struct{}
	logs  *testlog.Buffer
	done  chan struct{}
}

func startVictim(t *testing.T, c *cluster, subject, group, clientID string) *victim {
	t.Helper()
	v := &victim{ready: make(chan struct{}), logs: &testlog.Buffer{}, done: make(chan struct{})}
	cmd := exec.Command(os.Args[0], "-test.run=^TestE2EHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), e2eHelperEnv+"="+helperConsumer, "QMQ_E2E_META="+c.endpoint, "QMQ_E2E_SUBJECT="+subject,
		"QMQ_E2E_GROUP="+group, "QMQ_E2E_CLIENTID="+clientID)
	cmd.Stderr = v.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.StdinPipe(); err != nil { // closed when we exit: the child follows
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v.cmd = cmd
	go func() {
		defer close(v.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "E2E-READY":
				close(v.ready)
			case len(f) >= 2 && f[0] == "E2E-GOT":
				v.mu.Lock()
				v.got = append(v.got, strings.Join(f[1:], " "))
				v.mu.Unlock()
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		v.kill9()
		if t.Failed() {
			t.Logf("---- victim consumer log ----\n%s", tail(v.logs.String(), 10000))
		}
	})
	select {
	case <-v.ready:
	case <-v.done:
		t.Fatalf("victim consumer exited:\n%s", v.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("victim consumer not ready:\n%s", v.logs.String())
	}
	return v
}

func (v *victim) kill9() {
	_ = v.cmd.Process.Kill()
	<-v.done
}

// received returns the ids of the real messages the victim's handler got
// (probes are recorded as "<id> 1").
func (v *victim) received() (ids []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, g := range v.got {
		if !strings.Contains(g, " ") {
			ids = append(ids, g)
		}
	}
	return ids
}

func (v *victim) sawProbe(id string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Contains(v.got, id+" 1")
}

// 5. A consumer killed with kill -9 has its unacked messages redelivered
// to the other consumers of its group (through the retry subject once the
// broker's subscriber.offline.timeout.ms has passed).
func TestE2EKilledConsumerRedelivered(t *testing.T) {
	skipShort(t)
	c := newCluster(t, 2)
	const subject, group = "e2e.shipments", "shipping"
	c.requireTwoGroups(subject)
	p := c.producer(context.Background())

	// The victim is the group's first consumer and takes everything sent
	// before the others join: its handler blocks on 2 messages, and its
	// pullers hold more, pulled but never acknowledged.
	v := startVictim(t, c, subject, group, "victim-1")
	prime(t, p, subject, nil, v.sawProbe)
	first := sendMixed(t, p, subject, 10, nil)
	testutil.Eventually(t, 15*time.Second, "the victim to take messages", func() bool { return len(v.received()) >= 2 })

	tl := newTally()
	for _, who := range []string{"s0", "s1"} {
		cons := newConsumer(t, c, subject, group, client.WithConcurrency(2))
		runConsumer(t, cons, func(ctx context.Context, m *client.Message) error { tl.record(who, m); return nil })
	}
	rest := sendMixed(t, p, subject, 40, nil)
	time.Sleep(300 * time.Millisecond)
	v.kill9()
	took := v.received()
	t.Logf("victim held %v when killed", took)

	ids := append(append([]string(nil), first...), rest...)
	testutil.EventuallyState(t, 25*time.Second, fmt.Sprintf("the surviving consumers to get all %d messages", len(ids)), func() (bool, string) {
		return tl.hasAll(ids), fmt.Sprintf("missing %v", tl.missing(ids))
	})
	time.Sleep(time.Second)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, id := range ids {
		if k := tl.counts[id]; k != 1 {
			t.Errorf("message %s delivered %d times to the survivors, want once", id, k)
		}
	}
	for _, id := range took {
		if !slices.Contains(ids, id) {
			t.Errorf("victim got unknown message %s", id)
			continue
		}
		if ts := tl.times[id]; len(ts) == 0 || ts[0] < 2 {
			t.Errorf("message %s the victim held was redelivered with qmq_times %v, want >= 2 (via the retry subject)", id, ts)
		}
	}
}

// 6. Both brokers killed with kill -9 and restarted on the same store lose
// nothing they acknowledged, and consumers resume where they were: messages
// acknowledged by the consumers before the crash are not delivered again,
// and a group whose consumer was stopped across the crash gets exactly what
// was sent meanwhile.
func TestE2EBrokerKill9Restart(t *testing.T) {
	skipShort(t)
	c := newCluster(t, 2)
	const subject = "e2e.ledger"
	c.requireTwoGroups(subject)
	p := c.producer(context.Background())

	live := newTally() // group "live": one consumer running throughout
	cl := newConsumer(t, c, subject, "live", client.WithConcurrency(4), client.WithClientID("live-1"))
	runConsumer(t, cl, func(ctx context.Context, m *client.Message) error { live.record("live", m); return nil })
	paused := newTally() // group "paused": its consumer is stopped across the crash
	cp := newConsumer(t, c, subject, "paused", client.WithClientID("paused-1"))
	stopPaused := runConsumer(t, cp, func(ctx context.Context, m *client.Message) error { paused.record("paused", m); return nil })
	prime(t, p, subject, nil, func(id string) bool { return live.sawProbe("live", id) && paused.sawProbe("paused", id) })

	// Phase A: consumed and acknowledged by both groups before the crash.
	phaseA := sendMixed(t, p, subject, 100, nil)
	testutil.Eventually(t, 20*time.Second, "phase A consumed", func() bool { return live.hasAll(phaseA) && paused.hasAll(phaseA) })
	time.Sleep(700 * time.Millisecond) // acks flushed (ack flush interval 100 ms)
	stopPaused()

	// Phase B: a steady stream of synchronous sends; the brokers are killed
	// mid-stream. Every send that succeeded was acknowledged by a broker.
	var (
		mu     sync.Mutex
		phaseB []string
		failed int
	)
	stopSend := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; ; i++ {
			select {
			case <-stopSend:
				return
			default:
			}
			m := p.NewMessage(subject).SetBody("message "+strconv.Itoa(i)).SetProperty("e2e_seq", strconv.Itoa(i))
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err := p.Send(ctx, m)
			cancel()
			mu.Lock()
			if err == nil {
				phaseB = append(phaseB, m.ID())
			} else {
				failed++
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	var wg sync.WaitGroup
	for _, b := range c.brokers {
		wg.Add(1)
		go func() { defer wg.Done(); b.kill9() }()
	}
	wg.Wait()
	mu.Lock()
	beforeCrash := len(phaseB)
	mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	for _, b := range c.brokers {
		b.start()
	}
	for _, b := range c.brokers {
		b.waitOnline()
	}
	time.Sleep(500 * time.Millisecond)
	close(stopSend)
	<-sent
	mu.Lock()
	t.Logf("phase B: %d sends acknowledged (%d before the crash), %d failed", len(phaseB), beforeCrash, failed)
	idsB := append([]string(nil), phaseB...)
	mu.Unlock()
	if beforeCrash == 0 {
		t.Fatal("no message was sent before the crash")
	}

	// The paused group comes back (same client id, as a restarted process)
	// and phase C is sent after the restart.
	cp2 := newConsumer(t, c, subject, "paused", client.WithClientID("paused-1"))
	runConsumer(t, cp2, func(ctx context.Context, m *client.Message) error { paused.record("paused", m); return nil })
	phaseC := sendMixed(t, p, subject, 50, nil)

	all := append(append(append([]string(nil), phaseA...), idsB...), phaseC...)
	testutil.EventuallyState(t, 30*time.Second, "every acknowledged message consumed after the restart", func() (bool, string) {
		return live.hasAll(all) && paused.hasAll(all), fmt.Sprintf("live misses %d %v, paused misses %d %v",
			len(live.missing(all)), first5(live.missing(all)), len(paused.missing(all)), first5(paused.missing(all)))
	})
	time.Sleep(time.Second)
	for name, tl := range map[string]*tally{"live": live, "paused": paused} {
		for _, id := range phaseA {
			if k := tl.count(id); k != 1 {
				t.Errorf("%s: message %s, acknowledged before the crash, delivered %d times", name, id, k)
			}
		}
		dups := tl.total() - tl.distinct()
		t.Logf("%s: %d deliveries of %d messages (%d duplicates, allowed only for unacknowledged ones)", name, tl.total(), tl.distinct(), dups)
	}
	// The paused group acknowledged all of phase A and pulled nothing
	// since: everything after it must come exactly once.
	for _, id := range append(append([]string(nil), idsB...), phaseC...) {
		if k := paused.count(id); k != 1 {
			t.Errorf("paused: message %s delivered %d times, want once", id, k)
		}
	}
}

func first5(s []string) []string {
	sort.Strings(s)
	if len(s) > 5 {
		return s[:5]
	}
	return s
}
