package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup/query"
	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/tests/framework"
)

// testBackup is an in-process backup of one group of a framework cluster.
type testBackup struct {
	t        *testing.T
	srv      *Server
	settings Settings
	hostname string
	logs     *testlog.Buffer
	cancel   context.CancelFunc
	done     chan error
}

// registerBackup adds the backup's row (role 4) to the group and returns
// its settings: test-sized intervals, a fresh store.root.
func registerBackup(t *testing.T, c *framework.Cluster, group string) (Settings, string) {
	t.Helper()
	ports := testutil.FreePorts(t, 2)
	port := ports[0]
	host := "framework-" + group + "-backup"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := c.Admin().AddBroker(ctx, admin.BrokerSpec{Group: group, Role: admin.RoleBackup, Hostname: host, IP: "127.0.0.1",
		ServePort: port, SyncPort: ports[1]}); err != nil { // the row needs a sync port; the backup serves none
		t.Fatalf("register the backup: %v", err)
	}
	s := DefaultSettings()
	s.MetaEndpoint, s.Port, s.HTTPPort, s.BindHost = c.Endpoint(), port, 0, "127.0.0.1"
	s.StoreRoot = filepath.Join(t.TempDir(), "backup")
	s.MetaRefresh, s.RetryInterval, s.CheckpointInterval = 200*time.Millisecond, 200*time.Millisecond, 50*time.Millisecond
	s.StoreRetryMin, s.StoreRetryMax, s.StoreTimeout = 10*time.Millisecond, 200*time.Millisecond, 2*time.Second
	s.AdminToken = "0123456789abcdef-test"
	return s, host
}

func startBackup(t *testing.T, s Settings, host string, store *memStore) *testBackup {
	t.Helper()
	b := &testBackup{t: t, settings: s, hostname: host, logs: &testlog.Buffer{}, done: make(chan error, 1)}
	log := hclog.New(&hclog.LoggerOptions{Name: "backup", Level: hclog.Debug, Output: b.logs})
	srv, err := New(s, store, Options{Hostname: host, Logger: log, Query: func(detail query.DetailSource) http.Handler {
		o := query.DefaultOptions()
		o.Detail = detail
		return query.NewHandler(store, o)
	}})
	if err != nil {
		t.Fatal(err)
	}
	b.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("---- backup log ----\n%s", b.logs.String())
		}
	})
	return b
}

func (b *testBackup) stop() {
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	select {
	case err := <-b.done:
		if err != nil {
			b.t.Errorf("backup Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		b.t.Error("backup did not stop within 20 s")
	}
}

func (b *testBackup) health() (healthReport, int) {
	resp, err := http.Get("http://" + b.srv.HTTPAddr().String() + "/health")
	if err != nil {
		return healthReport{Status: err.Error()}, 0
	}
	defer resp.Body.Close()
	var h healthReport
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return h, resp.StatusCode
}

func (b *testBackup) waitHealthy(slave string) {
	b.t.Helper()
	testutil.EventuallyState(b.t, 30*time.Second, "backup healthy, following "+slave, func() (bool, string) {
		h, code := b.health()
		return code == 200 && h.Status == "ok" && (slave == "" || h.Slave == slave), fmt.Sprintf("%d %+v", code, h)
	})
}

// consumerRun consumes subject as group with handler until the test ends;
// it returns once the consumer has received a probe (a new group starts at
// the subject's newest message, so sends before that would be skipped).
func consumerRun(t *testing.T, c *framework.Cluster, subject, group string, handler func(m *client.Message) error, opts ...client.ConsumerOption) {
	t.Helper()
	opts = append([]client.ConsumerOption{client.WithLogger(hclog.NewNullLogger()), client.WithAckFlushInterval(50 * time.Millisecond)}, opts...)
	cons, err := client.NewConsumer(context.Background(), c.Endpoint(), subject, group, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]bool{}
	wg.Go(func() {
		_ = cons.Run(ctx, func(ctx context.Context, m *client.Message) error {
			if m.Property("probe") != "" {
				mu.Lock()
				seen[m.ID()] = true
				mu.Unlock()
				return nil
			}
			return handler(m)
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait(); cons.Close() })
	p := newProducer(t, c)
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := p.NewMessage(subject).SetProperty("probe", "1")
		if err := p.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ok := false
		for range 10 {
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			ok = seen[m.ID()]
			mu.Unlock()
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s of %s never received a probe", group, subject)
		}
	}
}

func newProducer(t *testing.T, c *framework.Cluster) *client.Producer {
	t.Helper()
	p, err := client.NewProducer(context.Background(), c.Endpoint(), client.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// send sends n messages to subject, property fail=1 on those for which
// fail(i) holds, and returns their ids.
func send(t *testing.T, p *client.Producer, subject string, n int, fail func(i int) bool) []string {
	t.Helper()
	var ids []string
	for i := range n {
		m := p.NewMessage(subject).SetBody(fmt.Sprintf("message %d", i))
		if fail != nil && fail(i) {
			m.SetProperty("fail", "1")
		}
		if err := p.Send(context.Background(), m); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		ids = append(ids, m.ID())
	}
	return ids
}

var errAlwaysFails = errors.New("this handler always fails")

// hasAll reports whether every id is among msgs, and what is missing.
func hasAll(ids []string, msgs []string) (bool, string) {
	have := map[string]bool{}
	for _, id := range msgs {
		have[id] = true
	}
	var missing []string
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return len(missing) == 0, fmt.Sprintf("%d of %d; missing %s", len(ids)-len(missing), len(ids), strings.Join(missing[:min(3, len(missing))], ","))
}
