package backup

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/tests/framework"
)

func startFollowing(t *testing.T) (*framework.Cluster, *testBackup, *memStore, *client.Producer) {
	t.Helper()
	if testing.Short() {
		t.Skip("end to end")
	}
	c := framework.StartCluster(t, framework.ClusterOptions{Slaves: true})
	s, host := registerBackup(t, c, "g1")
	store := newMemStore()
	b := startBackup(t, s, host, store)
	b.waitHealthy(fmt.Sprintf("127.0.0.1:%d", c.Group("g1").Slave.Settings().SyncPort))
	return c, b, store, newProducer(t, c)
}

func (b *testBackup) waitDegraded(what string) healthReport {
	b.t.Helper()
	var h healthReport
	testutil.EventuallyState(b.t, 20*time.Second, "/health degraded naming "+what, func() (bool, string) {
		var code int
		h, code = b.health()
		return code == 503 && h.Status == "degraded" && strings.Contains(strings.Join(h.Reasons, "; "), what), fmt.Sprintf("%d %+v", code, h)
	})
	return h
}

func waitIndexed(t *testing.T, store *memStore, subject string, sent []string) {
	t.Helper()
	testutil.EventuallyState(t, 30*time.Second, "every message indexed", func() (bool, string) {
		return hasAll(sent, ids(store.messages(backup.KindNormal, subject)))
	})
}

// TestStoreDownHoldsCheckpoint: while the store refuses writes (an HBase
// gateway down), the backup does not advance its offsets or checkpoint,
// retries with backoff and says so in /health; once the store is back it
// writes everything it held back.
func TestStoreDownHoldsCheckpoint(t *testing.T) {
	_, b, store, p := startFollowing(t)
	const subject = "backup.storedown"
	first := send(t, p, subject, 10, nil)
	waitIndexed(t, store, subject, first)
	time.Sleep(200 * time.Millisecond) // a checkpoint after them
	store.fail.Store(true)
	held := send(t, p, subject, 30, nil)
	h := b.waitDegraded("store: writes fail")
	if h.StoreFailingSince == nil {
		t.Fatal("/health does not say since when the store fails")
	}
	offset := b.srv.f.msgOff.Load()
	saved, _, _ := b.srv.cp.load()
	refused := store.refused.Load()
	time.Sleep(time.Second)
	if now := b.srv.f.msgOff.Load(); now != offset {
		t.Fatalf("the message offset moved from %d to %d while the store refused every write", offset, now)
	}
	if again, _, _ := b.srv.cp.load(); again.MessageOffset != saved.MessageOffset {
		t.Fatalf("the checkpoint moved from %d to %d while the store refused every write", saved.MessageOffset, again.MessageOffset)
	}
	if n := store.refused.Load() - refused; n < 2 || n > 40 {
		t.Fatalf("%d write attempts in 1 s with backoff 10..200 ms: want retries, spaced", n)
	}
	store.fail.Store(false)
	waitIndexed(t, store, subject, append(first, held...))
	b.waitHealthy("")
}

// TestSlaveDownWaitsForIt: the backup follows the slave only (see
// docs/backup-follower.md): while the slave is down /health says so and
// nothing new is indexed; when it is back and caught up, everything the
// master took meanwhile is.
func TestSlaveDownWaitsForIt(t *testing.T) {
	c, b, store, p := startFollowing(t)
	g := c.Group("g1")
	const subject = "backup.slavedown"
	first := send(t, p, subject, 10, nil)
	waitIndexed(t, store, subject, first)
	g.Slave.Stop()
	b.waitDegraded("slave:")
	during := send(t, p, subject, 20, nil) // the master takes them (wait.slave.wrote=false)
	time.Sleep(500 * time.Millisecond)
	if ok, _ := hasAll(during, ids(store.messages(backup.KindNormal, subject))); ok {
		t.Fatal("messages sent while the slave was down were indexed: from where?")
	}
	g.Slave.Start()
	g.WaitSlaveCaughtUp()
	waitIndexed(t, store, subject, append(first, during...))
	b.waitHealthy("")
}

// TestFollowsNewSlaveAfterFailover: the group's master and slave swap
// (SwapMasterSlave, the manual failover); the metaserver then names the
// former master as the slave, and the backup follows it, continuing at its
// offsets without a gap.
func TestFollowsNewSlaveAfterFailover(t *testing.T) {
	c, b, store, p := startFollowing(t)
	g := c.Group("g1")
	const subject = "backup.failover"
	before := send(t, p, subject, 15, nil)
	waitIndexed(t, store, subject, before)
	g.SwapMasterSlave() // g.Slave is now the former master
	newSlave := fmt.Sprintf("127.0.0.1:%d", g.Slave.Settings().SyncPort)
	b.waitHealthy(newSlave)
	after := send(t, p, subject, 15, nil)
	waitIndexed(t, store, subject, append(before, after...))
	seqs := map[int64]int{}
	for _, m := range store.messages(backup.KindNormal, subject) {
		seqs[m.Sequence]++
	}
	for seq, n := range seqs {
		if n != 1 {
			t.Fatalf("sequence %d indexed %d times", seq, n)
		}
	}
	if !strings.Contains(b.logs.String(), "the group's slave changed") {
		t.Error("the backup did not log the switch to the new slave")
	}
}

// TestCheckpointOfAnotherGroupRefused: a store.root holding another group's
// checkpoint stops the backup with the way out, instead of mixing groups.
func TestCheckpointOfAnotherGroupRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	c := framework.StartCluster(t, framework.ClusterOptions{Slaves: true})
	s, host := registerBackup(t, c, "g1")
	cp, err := newCheckpointFile(s.StoreRoot)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.save(savedCheckpoint{Group: "other", MessageOffset: 0}); err != nil {
		t.Fatal(err)
	}
	b := startBackup(t, s, host, newMemStore())
	select {
	case err := <-b.done:
		b.cancel = nil
		if err == nil || !strings.Contains(err.Error(), "holds the backup of group other") {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the backup kept running on another group's checkpoint")
	}
	if _, err := os.Stat(cp.path); err != nil {
		t.Fatal(err)
	}
}
