package consul

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/qmq-go/qmq/consul/consultest"
)

// TestCriticalServicesReaped: against a real agent, a registration whose
// TCP check fails (its instance was killed) and a lock's qmq-lock service
// whose holder stopped renewing (a killed master) are removed by the agent
// once critical for DeregisterCriticalAfter (Consul's minimum, 1 m; its
// reaper runs every 30 s, so this takes up to ~90 s). Before, both stayed
// critical forever. Update changes the tags in place: same ID, the check
// keeps its status.
func TestCriticalServicesReaped(t *testing.T) {
	a := agent(t)
	c := apiClient(t, a.HTTPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rec := consultest.NewRecorder(t, a.HTTPAddr)
	cfg := Config{Address: rec.Addr, Logger: testLogger(t)}

	// An instance that is up: its TCP check passes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	reg := Registration{Name: "qmq-reap-test", Address: "127.0.0.1", Port: port, Tags: []string{"role:slave"},
		CheckTCP: ln.Addr().String(), DeregisterCriticalAfter: MinDeregisterCriticalAfter}
	svc, err := RegisterService(ctx, cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Deregister(context.Background())
	waitHealth(t, c, "qmq-reap-test", true, "qmq-reap-test passing", func(es []*api.ServiceEntry) bool { return len(es) == 1 })
	if chs := consultest.Checks(rec.Registrations(svc.ID())); len(chs) != 1 || chs[0].TCP == "" || chs[0].DeregisterCriticalServiceAfter != "1m0s" {
		t.Errorf("checks sent: %+v; want a TCP check with DeregisterCriticalServiceAfter 1m0s", chs)
	}

	// Update in place: the new tags, the same ID, the check still passing.
	reg.Tags = []string{"role:master"}
	if err := svc.Update(ctx, reg); err != nil {
		t.Fatal(err)
	}
	entries, _, err := c.Health().Service("qmq-reap-test", "", true, nil)
	if err != nil || len(entries) != 1 || !slices.Equal(entries[0].Service.Tags, []string{"role:master"}) || entries[0].Service.ID != svc.ID() {
		t.Fatalf("after Update: %v, %d passing entries %+v; want one, tagged role:master, same ID", err, len(entries), entries)
	}

	// A lock holder that stops renewing, as a killed master does.
	l, err := NewLock(cfg, "qmq/test/"+t.Name(), LockOptions{HealthTTL: time.Second, DeregisterCriticalAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Acquire(ctx, []byte("holder")); err != nil {
		t.Fatal(err)
	}
	if chs := consultest.Checks(rec.Registrations(l.serviceID)); len(chs) != 1 || chs[0].TTL == "" || chs[0].DeregisterCriticalServiceAfter != "1m0s" {
		t.Errorf("the lock's checks sent: %+v; want a TTL check with DeregisterCriticalServiceAfter 1m0s", chs)
	}

	ln.Close() // the instance dies; nobody deregisters it
	killed := time.Now()
	gone := func(id string) bool {
		_, _, err := c.Agent().Service(id, nil)
		var se api.StatusError
		return errors.As(err, &se) && se.Code == http.StatusNotFound
	}
	for _, id := range []string{svc.ID(), l.serviceID} {
		deadline := killed.Add(2*time.Minute + 10*time.Second)
		for !gone(id) {
			if time.Now().After(deadline) {
				t.Fatalf("service %s still registered %s after its instance died", id, time.Since(killed).Round(time.Second))
			}
			time.Sleep(time.Second)
		}
		t.Logf("service %s removed by the agent %s after its instance died", id, time.Since(killed).Round(time.Second))
	}
}
