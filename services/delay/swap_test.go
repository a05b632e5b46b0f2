package delay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
)

// TestDelayManualSwapCutsTail: the master stores messages its slave never
// copied (the slave is stopped; the sends are answered BROKER_BUSY), is
// stopped and swapped out by hand (SwapMasterSlave). The promoted slave
// records its term at start with its log ends, the takeover point, though
// no failover is configured; the former master, started as the slave,
// cuts the tail past that point, stops, and started again copies the new
// master: its logs end byte-identical, with no store.root deleted by
// hand. Every acknowledged message is delivered.
func TestDelayManualSwapCutsTail(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m)
	const subject = "delay.repl.swap"
	col := consume(t, m.Endpoint(), subject)
	short := func(s *Settings) { waitSlave(s); s.SlaveWroteTimeout = 500 * time.Millisecond }
	master := pairMember(t, m, delayHost, int(protocol.RoleDelayMaster), short)
	slave := pairMember(t, m, slaveHost, int(protocol.RoleDelaySlave), short)
	master.waitOnline()
	testutil.Eventually(t, 15*time.Second, "the slave copying the master", func() bool {
		return strings.Contains(slave.logs.String(), "connected to the master")
	})
	start := time.Now()
	due := func(i int) time.Time { return start.Add(5*time.Second + time.Duration(i)*10*time.Millisecond) }
	acked, refused := sendBatches(t, master.srv.Addr().String(), subject, 100, due)
	if len(refused) != 0 {
		t.Fatalf("%d sends refused with a live slave", len(refused))
	}
	testutil.Eventually(t, 10*time.Second, "the slave to copy everything", func() bool {
		return logEnds(slave) == logEnds(master)
	})

	// The slave goes; what the master stores now is never copied.
	slave.stop()
	tailAcked, tailRefused := sendBatches(t, master.srv.Addr().String(), subject+".tail", 20, due)
	if len(tailAcked) != 0 {
		t.Fatalf("%d sends acknowledged without a slave (wait.slave.wrote)", len(tailAcked))
	}
	takeover, oldEnds := logEnds(slave), logEnds(master)
	if oldEnds[0] <= takeover[0] {
		t.Fatalf("the master's message log ends at %d, the slave's at %d: no tail to cut", oldEnds[0], takeover[0])
	}
	master.stop()
	if _, err := admin.New(m.HTTP(), metatest.Token).SwapMasterSlave(context.Background(), delayGroup); err != nil {
		t.Fatalf("SwapMasterSlave: %v", err)
	}
	slave.start(-1)
	slave.waitOnline()
	if !strings.Contains(slave.logs.String(), "master term recorded at the metaserver") {
		t.Fatalf("the new master did not record its term")
	}

	// The former master, now the slave: cuts and stops, then copies.
	var sv supervisor
	master.start(-1)
	sv.restartOnExit(t, master, 20*time.Second)
	if !sv.said("was never replicated and is cut") {
		t.Fatalf("the former master stopped without cutting its tail: %v", sv.exits)
	}
	t.Logf("%d refused sends stored only on the old master; it cut: %s", len(tailRefused), lastLine(master.logs.String(), "cut the tail"))
	testutil.Eventually(t, 20*time.Second, "the former master to copy the new one", func() bool {
		return strings.Contains(master.logs.String(), "caught up with the master")
	})
	testutil.Eventually(t, 20*time.Second, "both logs to end alike", func() bool {
		return logEnds(master) == logEnds(slave)
	})
	files := sameDir(t, slave.root, master.root, "message_log") + sameDir(t, slave.root, master.root, "dispatch_log")
	col.waitFor(t, 30*time.Second, acked...)
	t.Logf("takeover point %v, the old master's ends %v; %d log files byte-identical after the rejoin; all %d acknowledged delivered", takeover, oldEnds, files, len(acked))
}
