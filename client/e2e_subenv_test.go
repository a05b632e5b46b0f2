package client_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testutil"
)

// Sub-environment isolation against a real broker with
// sub_env_isolation_filter.enable: producers in a sub-environment stamp
// qmq_env/qmq_subEnv; a consumer with WithEnv becomes group
// <group>_<env>_<subEnv> and gets only what the broker's rule for that
// group names, retries included; a consumer without it gets everything.
func TestE2ESubEnvIsolation(t *testing.T) {
	skipShort(t)
	rules := filepath.Join(t.TempDir(), "rules.json")
	const subject, group = "e2e.env", "svc"
	if err := os.WriteFile(rules, []byte(`[{"subject":"`+subject+`","subjectEnv":"beta","subjectSubEnv":"b1","group":"`+group+`","groupEnv":"beta","groupSubEnv":"b1"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 1, "sub_env_isolation_filter.enable=true", "sub_env_isolation_filter.rules_url="+rules)
	producer := func(opts ...client.ProducerOption) *client.Producer {
		opts = append([]client.ProducerOption{client.WithRouteRefresh(time.Second), client.WithLogger(e2eLogger(t, "producer")), client.WithAppCode("e2e")}, opts...)
		p, err := client.NewProducer(context.Background(), c.endpoint, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close(context.Background()) })
		return p
	}
	pB1, pB2, pPlain := producer(client.WithEnv("beta", "b1")), producer(client.WithEnv("beta", "b2")), producer()
	if m := pB1.NewMessage(subject); m.Property(client.PropEnv) != "beta" || m.Property(client.PropSubEnv) != "b1" {
		t.Fatalf("sub-environment producer's message: %v", m.Properties())
	}
	if _, ok := pPlain.NewMessage(subject).LookupProperty(client.PropEnv); ok {
		t.Fatal("a producer without WithEnv stamps qmq_env")
	}

	tl := newTally()
	var mu sync.Mutex
	var bad []string
	iso := newConsumer(t, c, subject, group, client.WithEnv("beta", "b1"))
	if iso.Group() != "svc_beta_b1" {
		t.Fatalf("group %q, want svc_beta_b1", iso.Group())
	}
	failedOnce := map[string]bool{}
	isoTimes := map[string][]int{}
	runConsumer(t, iso, func(ctx context.Context, m *client.Message) error {
		if !tl.record("iso", m) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		isoTimes[m.ID()] = append(isoTimes[m.ID()], m.Times())
		if m.Property(client.PropSubEnv) != "b1" || m.Property(client.PropConsumerGroup) != "svc_beta_b1" {
			bad = append(bad, fmt.Sprintf("iso got %s with %v", m.ID(), m.Properties()))
		}
		if m.Property("e2e_fail") != "" && !failedOnce[m.ID()] {
			failedOnce[m.ID()] = true
			return fmt.Errorf("fail once")
		}
		return nil
	})
	plain := newConsumer(t, c, subject, group)
	runConsumer(t, plain, func(ctx context.Context, m *client.Message) error {
		tl.record("plain", m)
		return nil
	})
	prime(t, pB1, subject, nil, func(id string) bool { return tl.sawProbe("iso", id) && tl.sawProbe("plain", id) })

	send := func(p *client.Producer, n int, fail bool) []string {
		var ids []string
		for i := 0; i < n; i++ {
			m := p.NewMessage(subject).SetProperty("e2e_seq", strconv.Itoa(i))
			if fail {
				m.SetProperty("e2e_fail", "1")
			}
			if err := p.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.ID())
		}
		return ids
	}
	b1 := send(pB1, 5, false)
	b1Fail := send(pB1, 2, true)
	b2 := send(pB2, 5, false)
	none := send(pPlain, 5, false)
	all := append(append(append(append([]string{}, b1...), b1Fail...), b2...), none...)
	delivered := func() bool {
		got, gotPlain := tl.of("iso"), tl.of("plain")
		for _, id := range b1 {
			if got[id] != 1 {
				return false
			}
		}
		for _, id := range b1Fail {
			if got[id] != 2 { // first delivery and its retry
				return false
			}
		}
		for _, id := range all {
			if gotPlain[id] == 0 {
				return false
			}
		}
		return true
	}
	testutil.EventuallyState(t, 20*time.Second, "the deliveries", func() (bool, string) {
		return delivered(), fmt.Sprintf("iso %d, plain %d", len(tl.of("iso")), len(tl.of("plain")))
	})
	time.Sleep(time.Second) // anything unwanted would have arrived with the rest
	mu.Lock()
	defer mu.Unlock()
	for _, s := range bad {
		t.Error(s)
	}
	got := tl.of("iso")
	if len(got) != len(b1)+len(b1Fail) {
		t.Errorf("iso received %d distinct messages, want %d (b2 or env-less ones got through)", len(got), len(b1)+len(b1Fail))
	}
	for _, id := range b1Fail {
		if ts := isoTimes[id]; len(ts) != 2 || ts[1] != 2 {
			t.Errorf("failed message %s delivered with times %v, want a retry with times 2", id, ts)
		}
	}
}
