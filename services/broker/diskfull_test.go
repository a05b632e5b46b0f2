package broker

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/vfs"
)

// fakeDisk is the OS's file system with a free space the test sets, and
// block allocation failing with ENOSPC while full is set.
type fakeDisk struct {
	free atomic.Int64
	full atomic.Bool
}

func (d *fakeDisk) fs() vfs.FS {
	fs := vfs.NewErrorFS(vfs.Default(), func(op, path string) error {
		if op == vfs.OpAllocate && d.full.Load() {
			return syscall.ENOSPC
		}
		return nil
	})
	return vfs.NewUsageFS(fs, func(string) (vfs.Usage, error) { return vfs.Usage{Total: 1 << 30, Free: d.free.Load()}, nil })
}

// startBrokerOn is startBroker with the store on fs.
func startBrokerOn(t *testing.T, m *metaHarness, fs vfs.FS, sets ...string) *brokerHarness {
	t.Helper()
	dir := t.TempDir()
	b := &brokerHarness{t: t, meta: m, dir: dir, base: harnessKeys(m), root: filepath.Join(dir, "store"), hostname: testHost, group: "g1", sets: sets, fs: fs}
	b.start(true, true)
	t.Cleanup(b.stop)
	return b
}

func getHealth(t *testing.T, b *brokerHarness) (int, healthReport) {
	t.Helper()
	resp, err := http.Get("http://" + b.srv.HTTPAddr().String() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h healthReport
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, h
}

// TestDiskFullIsVisible: when the disk cannot take the next message-log
// segment, or its free space falls below disk.free.min.bytes, every send
// gets BROKER_READ_ONLY with the reason (group, address, path, free and
// needed space, what to do), /health degrades, the metaserver stops giving
// the group to producers and the refusals are logged once per period; when
// space returns the broker takes messages again by itself.
func TestDiskFullIsVisible(t *testing.T) {
	m := startMeta(t)
	disk := &fakeDisk{}
	disk.free.Store(100 << 20)
	b := startBrokerOn(t, m, disk.fs(), "messagelog.segment.size=1048576", "disk.free.min.bytes=1048576", "disk.check.interval.ms=20")
	c := b.dial()
	k := newConsumer(c, "disk.subject", "cg", "c1")
	k.pull(1, -1, false) // a new group starts at the latest message
	c.mustSend(msg("disk.subject", "before"))
	producerGroups := func() int {
		groups, err := m.register("disk.subject")
		if err != nil {
			return 0
		}
		return len(groups)
	}
	if n := producerGroups(); n != 1 {
		t.Fatalf("producers see %d groups before the disk fills, want 1", n)
	}

	// The next segment cannot be allocated: send until the first one is full.
	disk.full.Store(true)
	disk.free.Store(1536 << 10)
	big := strings.Repeat("x", 30<<10)
	var refusal protocol.SendResult
	for i := 0; refusal.Code == 0; i++ {
		if i == 200 {
			t.Fatal("200 sends of 30 KiB into 1 MiB segments and no refusal")
		}
		mm := msg("disk.subject", "fill-"+string(rune('a'+i%26))+strings.Repeat("-", i/26))
		mm.Attrs = append(mm.Attrs, protocol.Attr{Key: "big", Value: big})
		if rs := c.send(mm); len(rs) > 0 {
			refusal = rs[0]
		}
	}
	t.Logf("refusal: %s %s", protocol.SendCodeName(refusal.Code), refusal.Remark)
	addr := *b.srv.inst().advertised.Load()
	wantPrefix := "disk full on broker g1 (" + addr + "): " + filepath.Join(b.root, "messagelog") + " has 1.5 MiB free"
	if refusal.Code != protocol.SendBrokerReadOnly || !strings.HasPrefix(refusal.Remark, wantPrefix) ||
		!strings.Contains(refusal.Remark, "needs 1.0 MiB for a new segment (messagelog.segment.size)") || !strings.HasSuffix(refusal.Remark, "; free space or add a group") {
		t.Fatalf("refusal %s %q, want BROKER_READ_ONLY %q…", protocol.SendCodeName(refusal.Code), refusal.Remark, wantPrefix)
	}
	// Producers keep trying: one log line for all of them.
	for i := 0; i < 30; i++ {
		if rs := c.send(msg("disk.subject", "retry")); len(rs) != 1 || !protocol.IsDiskFullRemark(rs[0].Remark) {
			t.Fatalf("send while full: %+v", rs)
		}
	}
	if n := b.logs.Count("refusing messages: disk full"); n != 1 {
		t.Fatalf("%d log lines for 31 refused sends, want 1 (rate-limited)", n)
	}
	if n := b.logs.Count("store append failed"); n != 0 {
		t.Fatalf("%d 'store append failed' lines for a full disk", n)
	}
	code, h := getHealth(t, b)
	if code != http.StatusServiceUnavailable || h.Status != "degraded" || h.State != "R" || !strings.Contains(h.DiskFull, "messagelog.segment.size") {
		t.Fatalf("/health while the disk is full: %d %+v", code, h)
	}
	testutil.Eventually(t, 5*time.Second, "the metaserver to stop giving the full group to producers", func() bool { return producerGroups() == 0 })

	// Space comes back: the broker recovers by itself.
	disk.full.Store(false)
	disk.free.Store(100 << 20)
	testutil.Eventually(t, 5*time.Second, "the broker to take messages again", func() bool {
		code, h := getHealth(t, b)
		return code == http.StatusOK && h.Status == "ok" && h.State == "RW" && h.DiskFull == ""
	})
	testutil.Eventually(t, 5*time.Second, "the metaserver to give the group to producers again", func() bool { return producerGroups() == 1 })
	c.mustSend(msg("disk.subject", "after"))

	// Below disk.free.min.bytes: refused before the disk is completely full.
	disk.free.Store(512 << 10)
	testutil.Eventually(t, 5*time.Second, "the low watermark to refuse sends", func() bool {
		rs := c.send(msg("disk.subject", "low"))
		return len(rs) == 1 && rs[0].Code == protocol.SendBrokerReadOnly && strings.Contains(rs[0].Remark, "has 512.0 KiB free") &&
			strings.Contains(rs[0].Remark, "disk.free.min.bytes")
	})
	disk.free.Store(100 << 20)
	testutil.Eventually(t, 5*time.Second, "the broker to take messages again", func() bool { return len(c.send(msg("disk.subject", "last"))) == 0 })

	// Everything accepted is there.
	var got []string
	for batch := k.pull(100, -1, false); batch != nil; batch = k.pull(100, -1, false) {
		got = append(got, batch...)
	}
	if len(got) == 0 || got[0] != "before" || !slices.Contains(got, "after") || !slices.Contains(got, "last") || slices.Contains(got, "retry") {
		t.Fatalf("pulled %v", got)
	}
}
