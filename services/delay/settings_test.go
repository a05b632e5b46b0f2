package delay

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/protocol"
)

func noEnv(string) (string, bool) { return "", false }

func writeConf(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileDelay), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLoadSettingsMapsQMQKeys: delay.properties as QMQ's dist ships it
// (its keys, plus ours) becomes typed Settings; QMQ keys without effect are
// reported as ignored, unknown keys as unknown.
func TestLoadSettingsMapsQMQKeys(t *testing.T) {
	dir := writeConf(t, `meta.server.endpoint=http://meta:8080/meta/address
broker.port=20801
sync.port=20802
store.root=/var/qmq/delay
segment.scale.minute=30
dispatch.log.keep.hour=48
schedule.clean.before.dispatch.hour=12
messagelog.retention.hours=96
log.expired.delete.enable=true
wait.slave.wrote=false
delay.send.batch.thread.size=4
Receiver.RejectIllegalSubject=false
delay.http.port=18082
no.such.key=1
`)
	s, report, err := LoadSettings(dir, conf.Lookup{Env: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if s.Port != 20801 || s.SyncPort != 20802 || s.HTTPPort != 18082 || s.MetaEndpoint != "http://meta:8080/meta/address" {
		t.Errorf("ports/endpoint: %+v", s)
	}
	st := s.Store
	if st.Root != "/var/qmq/delay" || st.SegmentScale != 30*time.Minute || st.LoadAhead != 15*time.Minute ||
		st.DispatchLogKeep != 48*time.Hour || st.ScheduleCleanAfter != 12*time.Hour || st.MessageLogRetention != 96*time.Hour || !st.DeleteExpired {
		t.Errorf("store settings: %+v", st)
	}
	text := fmt.Sprint(report.Unknown, report.Ignored)
	for _, want := range []string{"no.such.key", "delay.send.batch.thread.size", "Receiver.RejectIllegalSubject"} {
		if !strings.Contains(text, want) {
			t.Errorf("key report does not name %s:\n%s", want, text)
		}
	}
}

// TestLoadSettingsRefuses: what the delay server cannot run with is
// refused with the key and what to do.
func TestLoadSettingsRefuses(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"broker.port=1\n", "meta.server.endpoint is required"},
		{"meta.server.endpoint=x:1\nsegment.scale.minute=90\n", "segment.scale.minute"},
		{"meta.server.endpoint=x:1\nsegment.scale.minute=2\n", "segment.scale.minute"},
		{"meta.server.endpoint=x:1\nper.message.size=100000000\n", "per.message.size"},
	} {
		_, _, err := LoadSettings(writeConf(t, c.body), conf.Lookup{Env: noEnv})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one naming %q", c.body, err, c.want)
		}
	}
}

// TestDefaultsAreQMQs: an empty delay.properties (but for the endpoint)
// gives QMQ's delay defaults.
func TestDefaultsAreQMQs(t *testing.T) {
	s, _, err := LoadSettings(writeConf(t, "meta.server.endpoint=x:1\n"), conf.Lookup{Env: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if s.Port != 20801 || s.SyncPort != 20802 || s.Store.SegmentScale != time.Hour || s.Store.LoadAhead != 30*time.Minute ||
		s.Store.DispatchLogKeep != 72*time.Hour || s.Store.ScheduleCleanAfter != 24*time.Hour || s.Store.DeleteExpired {
		t.Errorf("defaults: %+v", s)
	}
}

// TestScheduleTime follows QMQ's receive filters.
func TestScheduleTime(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	ms := now.UnixMilli()
	for _, c := range []struct {
		name string
		m    protocol.Message
		want int64
	}{
		{"future", protocol.Message{Flag: protocol.MessageFlagDelay, ExpireOrScheduleTime: ms + 5000}, ms + 5000},
		{"past is now", protocol.Message{Flag: protocol.MessageFlagDelay, ExpireOrScheduleTime: ms - 5000}, ms},
		{"zero is now", protocol.Message{Flag: protocol.MessageFlagDelay}, ms},
		{"negative is now", protocol.Message{Flag: protocol.MessageFlagDelay, ExpireOrScheduleTime: -1}, ms},
		{"beyond two years", protocol.Message{Flag: protocol.MessageFlagDelay, ExpireOrScheduleTime: ms + 3*MaxDelay.Milliseconds()}, ms + MaxDelay.Milliseconds()},
		{"no delay flag: ten seconds", protocol.Message{ExpireOrScheduleTime: ms + 99_000}, ms + 10_000},
	} {
		if got := scheduleTime(&c.m, now); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// The sample conf/delay.properties and QMQ's dist delay.properties (plus
// its other delay keys) hold no key reported as unknown.
func TestSampleAndQMQKeysKnown(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	sample := filepath.Join(filepath.Dir(file), "..", "..", "conf")
	_, rep, err := LoadSettings(sample, conf.Lookup{Env: noEnv})
	if err != nil || len(rep.Unknown) != 0 {
		t.Fatalf("sample conf: %v, unknown %v", err, rep.Unknown)
	}
	qmq := []string{"meta.server.endpoint=http://127.0.0.1:8080/meta/address", "broker.port=20801", "sync.port=20802", "store.root=/data",
		"wait.slave.wrote=false", "sync.batch.size=100000", "slave.sync.timeout=3000", "message.sync.timeout.ms=10", "dispatch.sync.timeout.ms=10",
		"segment.scale.minute=60", "load.in.advance.min=30", "load.blocking.exit.sec=60", "load.segment.delay.min=1", "dispatch.log.keep.hour=72",
		"schedule.clean.before.dispatch.hour=24", "messagelog.retention.hours=72", "log.expired.delete.enable=false",
		"log.retention.check.interval.seconds=60", "per.segment.file.size=1073741824", "per.message.size=4194304",
		"delay.send.batch.thread.size=4", "delay.send.wait.time=10", "delay.send.threads=1", "delay.send.batch.executor.sleep.min.millis=500",
		"add.wheel.exception.sleep.millis=500", "Receiver.RejectIllegalSubject=false"}
	dir := writeConf(t, strings.Join(qmq, "\n")+"\n")
	_, rep, err = LoadSettings(dir, conf.Lookup{Env: noEnv})
	if err != nil || len(rep.Unknown) != 0 {
		t.Fatalf("QMQ's keys: %v, unknown %v", err, rep.Unknown)
	}
	if len(rep.Ignored) != len(ignoredKeys) {
		t.Errorf("ignored %d keys, want %d: %v", len(rep.Ignored), len(ignoredKeys), rep.Ignored)
	}
}
