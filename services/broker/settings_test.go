package broker

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testlog"
)

// A misspelled key in broker.properties is not silently ignored: New logs a
// warning naming the file, the key and the nearest known key; QMQ's keys
// without effect here are logged as ignored, not as typos.
func TestUnknownKeyWarnedAtStart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, FileBroker), "meta.server.endpoint=http://127.0.0.1:1/meta/address\nbroker.port=0\nsync.port=0\nbroker.http.port=0\n"+
		"brokr.port=20881\naction.checkpoint.interval=100000\nstore.root="+filepath.Join(dir, "store")+"\n")
	logs := &testlog.Buffer{}
	s, err := New(context.Background(), Options{ConfDir: dir, Env: noEnv, Hostname: "h",
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := logs.String()
	want := filepath.Join(dir, FileBroker) + ": unknown key 'brokr.port' (did you mean 'broker.port'?)"
	if !strings.Contains(out, "[WARN]") || !strings.Contains(out, want) {
		t.Fatalf("log lacks the warning %q:\n%s", want, out)
	}
	if !strings.Contains(out, "key 'action.checkpoint.interval' is accepted and ignored") || strings.Contains(out, "unknown key 'action.checkpoint.interval'") {
		t.Fatalf("action.checkpoint.interval should be logged as ignored, not unknown:\n%s", out)
	}
}

// An unknown --set key is the operator's own typing: start-up stops.
func TestUnknownSetKeyStopsStart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, FileBroker), "meta.server.endpoint=http://127.0.0.1:1/meta/address\n")
	_, err := New(context.Background(), Options{ConfDir: dir, Env: noEnv, Hostname: "h",
		Overrides: conf.Overrides{"wait.slave.wrot": "true", "store.root": filepath.Join(dir, "store")}})
	if err == nil || !strings.Contains(err.Error(), "--set: unknown key 'wait.slave.wrot' (did you mean 'wait.slave.wrote'?)") {
		t.Fatalf("got %v", err)
	}
}

// The sample conf/broker.properties and the broker.properties of QMQ's
// install guides hold no key reported as unknown.
func TestSampleAndQMQKeysKnown(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	sample := filepath.Join(filepath.Dir(file), "..", "..", "conf")
	_, rep, err := loadSettings(sample, conf.Lookup{Env: noEnv})
	if err != nil || len(rep.Unknown) != 0 {
		t.Fatalf("sample conf: %v, unknown %v", err, rep.Unknown)
	}
	// The keys QMQ's guides put in broker.properties (and delay.properties,
	// often copied from it).
	qmq := []string{"meta.server.endpoint=http://127.0.0.1:8080/meta/address", "broker.port=20881", "sync.port=20882", "store.root=/data",
		"wait.slave.wrote=false", "sync.batch.size=100000", "slave.sync.timeout=3000", "message.sync.timeout.ms=10",
		"messagelog.retention.hours=72", "consumerlog.retention.hours=72", "pulllog.retention.hours=72", "log.expired.delete.enable=true",
		"log.retention.check.interval.seconds=60", "checkpoint.retain.count=5", "action.checkpoint.interval=100000",
		"message.checkpoint.interval=100000", "put_need_retry_message.limiter=50", "message.retry.delay.seconds=5",
		"receive.queue.size=50000", "slave.message.lag.time.max.seconds=5", "slave.message.lag.mark_readonly=false",
		"slave.server.http.port=8080", "dispatch.sync.timeout.ms=10", "dispatch.log.keep.hour=72", "segment.scale.minute=60",
		"smt.retention.hours=72", "sub_env_isolation_filter.enable=false"}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, FileBroker), strings.Join(qmq, "\n")+"\n")
	_, rep, err = loadSettings(dir, conf.Lookup{Env: noEnv})
	if err != nil || len(rep.Unknown) != 0 {
		t.Fatalf("QMQ's keys: %v, unknown %v", err, rep.Unknown)
	}
	if len(rep.Ignored) != 6 {
		t.Errorf("ignored %d keys, want 6 (action.checkpoint.interval, slave.server.http.port, dispatch.*, segment.scale.minute, smt.retention.hours): %v", len(rep.Ignored), rep.Ignored)
	}
}
