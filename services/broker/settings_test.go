package broker

import (
	"context"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testlog"
)

// A misspelled key in broker.properties is not silently ignored: the
// loader reports it, and its report logs a warning naming the file, the key
// and the nearest known key; QMQ's keys without effect here are logged as
// ignored, not as typos.
func TestUnknownKeyWarnedAtStart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, FileBroker), "meta.server.endpoint=http://127.0.0.1:1/meta/address\nbroker.port=0\nsync.port=0\nbroker.http.port=0\n"+
		"brokr.port=20881\naction.checkpoint.interval=100000\nstore.root="+filepath.Join(dir, "store")+"\n")
	logs := &testlog.Buffer{}
	settings, keys, err := LoadSettings(dir, conf.Lookup{Env: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	keys.Log(hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}))
	out := logs.String()
	want := filepath.Join(dir, FileBroker) + ": unknown key 'brokr.port' (did you mean 'broker.port'?)"
	if !strings.Contains(out, "[WARN]") || !strings.Contains(out, want) {
		t.Fatalf("log lacks the warning %q:\n%s", want, out)
	}
	if !strings.Contains(out, "key 'action.checkpoint.interval' is accepted and ignored") || strings.Contains(out, "unknown key 'action.checkpoint.interval'") {
		t.Fatalf("action.checkpoint.interval should be logged as ignored, not unknown:\n%s", out)
	}
	// What the loader produced runs a broker.
	s, err := New(context.Background(), settings, Options{Hostname: "h", Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// An unknown --set key is the operator's own typing: start-up stops.
func TestUnknownSetKeyStopsStart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, FileBroker), "meta.server.endpoint=http://127.0.0.1:1/meta/address\n")
	_, _, err := LoadSettings(dir, conf.Lookup{Env: noEnv,
		Overrides: conf.Overrides{"wait.slave.wrot": "true", "store.root": filepath.Join(dir, "store")}})
	if err == nil || !strings.Contains(err.Error(), "--set: unknown key 'wait.slave.wrot' (did you mean 'wait.slave.wrote'?)") {
		t.Fatalf("got %v", err)
	}
}

// The loader starts from DefaultSettings: an empty broker.properties (but
// for the required endpoint) gives exactly the defaults, so the two cannot
// disagree on what a missing key means.
func TestLoaderDefaultsAreDefaultSettings(t *testing.T) {
	got, _, err := LoadSettings(t.TempDir(), conf.Lookup{Env: noEnv, Overrides: conf.Overrides{"meta.server.endpoint": "http://m:8080/meta/address"}})
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultSettings()
	want.MetaEndpoint = "http://m:8080/meta/address"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded defaults differ from DefaultSettings:\n got %+v\nwant %+v", got, want)
	}
}

// New validates typed settings as the loader does: a program building
// Settings gets the same explanations as an operator writing keys.
func TestNewValidatesSettings(t *testing.T) {
	s := DefaultSettings()
	s.MetaEndpoint = "http://m:8080/meta/address"
	s.Store.Root = t.TempDir()
	s.Failover.Enable = true
	s.OfflineTimeout, s.ForeverTimeout = time.Hour, time.Minute
	_, err := New(context.Background(), s, Options{Hostname: "h", Logger: hclog.NewNullLogger()})
	for _, want := range []string{"failover.enable=true needs wait.slave.wrote=true", "subscriber.forever.offline.timeout.ms (1m0s) is shorter"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v; want an error containing %q", err, want)
		}
	}
	if err := (Settings{}).Validate(); err == nil || !strings.Contains(err.Error(), "meta.server.endpoint is required") {
		t.Errorf("zero Settings: %v", err)
	}
}

// The sample conf/broker.properties and the broker.properties of QMQ's
// install guides hold no key reported as unknown.
func TestSampleAndQMQKeysKnown(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	sample := filepath.Join(filepath.Dir(file), "..", "..", "conf")
	_, rep, err := LoadSettings(sample, conf.Lookup{Env: noEnv})
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
	_, rep, err = LoadSettings(dir, conf.Lookup{Env: noEnv})
	if err != nil || len(rep.Unknown) != 0 {
		t.Fatalf("QMQ's keys: %v, unknown %v", err, rep.Unknown)
	}
	if len(rep.Ignored) != 6 {
		t.Errorf("ignored %d keys, want 6 (action.checkpoint.interval, slave.server.http.port, dispatch.*, segment.scale.minute, smt.retention.hours): %v", len(rep.Ignored), rep.Ignored)
	}
}
