package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/deploy"
	"github.com/qmq-go/qmq/internal/testmysql"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/schema"
	"github.com/qmq-go/qmq/tracing"
)

var updateMetricsDoc = flag.Bool("update-metrics-doc", false, "rewrite the generated table of docs/metrics.md from what a running qmq dev exports")

// freeBrokerPortWithSlave returns a broker port p with p+10, p+11 and p+12
// free too (qmq dev --slave puts the slave there).
func freeBrokerPortWithSlave(t *testing.T) int {
	t.Helper()
	for range 50 {
		p := testutil.FreePorts(t, 1)[0]
		ok := true
		var ls []net.Listener
		for _, d := range []int{10, 11, 12} {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+d))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free broker port p with p+10..p+12 free")
	return 0
}

// TestObservabilityDev runs `qmq dev` with everything on (delay server,
// slave, watchdog with a client database) and OTEL_* pointing at an OTLP
// receiver of the test's own, drives messages through it with a traced
// client, and checks:
//   - traces: one trace joins the client's send, the broker's store (with
//     the slave's write), the consumer's pull, handle and ack; a delay
//     message's trace goes through the delay server's schedule and
//     dispatch; a failed message's retry and dead letter continue its
//     trace, and a row the watchdog resends continues the trace its
//     application started;
//   - metrics: docs/metrics.md lists every metric the run exports (and
//     every one the code registers), and every metric the alert rules and
//     the dashboard of deploy/ name is exported.
func TestObservabilityDev(t *testing.T) {
	recv := startOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // export within 0.1 s, not 5 s

	// The watchdog's client database (MariaDB, as the watchdog tests).
	dbName, dsn := testmysql.Database(t, "qmqobs_")
	dbCfg, _ := mysql.ParseDSN(dsn)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	createClientTable(t, db, dbName)
	t.Setenv("QMQ_WATCHDOG_TABLE", dbName+".qmq_msg_queue")

	bp := freeBrokerPortWithSlave(t)
	free := testutil.FreePorts(t, 7)
	ports := [5]int{free[0], free[1], bp, free[2], free[3]}
	wp, backupPort, consolePort := free[4], free[5], free[6]
	dp := freeDelayPort(t)
	data := t.TempDir()
	dev := startDev(t, data, ports, fmt.Sprintf("--delay-port=%d", dp), "--slave", "--watchdog", fmt.Sprintf("--watchdog-http-port=%d", wp),
		fmt.Sprintf("--backup-http=%d", backupPort), fmt.Sprintf("--console=127.0.0.1:%d", consolePort))
	// Its log is copied from the process's stderr as it comes: the line may
	// trail the ready line on stdout.
	testutil.Eventually(t, 5*time.Second, "qmq dev says tracing is on", func() bool {
		return strings.Contains(dev.log.String(), "tracing on")
	})
	host, port, _ := strings.Cut(dbCfg.Addr, ":")
	if out, _, code := runTool(t, "AddDb", fmt.Sprintf("--metaserver=127.0.0.1:%d", ports[0]), "--token="+devToken(t, data),
		"--host="+host, "--port="+port, "--username="+dbCfg.User, "--password="+dbCfg.Passwd); code != 0 || !strings.Contains(out, "register success") {
		t.Fatalf("AddDb: %d %s", code, out)
	}

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const subject, group = "obs.order", "obs"
	p, err := client.NewProducer(ctx, dev.meta, client.WithTracerProvider(tp), client.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	c, err := client.NewConsumer(ctx, dev.meta, subject, group, client.WithTracerProvider(tp), client.WithRegisterer(reg), client.WithPullTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	handled := map[string]int{}
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() {
		runDone <- c.Run(runCtx, func(ctx context.Context, m *client.Message) error {
			mu.Lock()
			handled[m.Property("kind")]++
			mu.Unlock()
			switch {
			case m.Property("kind") == "retry" && m.Times() == 1:
				return errors.New("first try fails")
			case m.Property("kind") == "dead":
				return errors.New("always fails")
			}
			if !trace.SpanContextFromContext(ctx).IsValid() {
				t.Errorf("%s: the handler's context carries no span", m.Property("kind"))
			}
			return nil
		})
	}()
	defer func() {
		stopRun()
		<-runDone
	}()
	time.Sleep(2 * time.Second) // the group's cursor starts before the sends

	// The application's trace: a root span, the sends under it.
	tracer := tp.Tracer("test")
	appCtx, root := tracer.Start(ctx, "app")
	mk := func(kind string) *client.Message { return p.NewMessage(subject).SetProperty("kind", kind) }
	plain, retried, dead, delayed := mk("plain"), mk("retry"), mk("dead").SetMaxRetries(1), mk("delayed").SetDelay(2*time.Second)
	if err := p.Send(appCtx, plain, retried, dead, delayed); err != nil {
		t.Fatal(err)
	}
	root.End()

	// A transactional message the application left in its table, traced.
	_, wdRoot := tracer.Start(ctx, "app-tx")
	wdRoot.End()
	wdID := "261207.120000.10.0.0.1.9.4242"
	content := fmt.Sprintf(`{"messageId":%q,"subject":%q,"tags":[],"storeAtFailed":false,"durable":true,"attrs":{"qmq_createTime":"%d","kind":"watchdog","traceparent":"00-%s-%s-01"}}`,
		wdID, subject, time.Now().UnixMilli(), wdRoot.SpanContext().TraceID(), wdRoot.SpanContext().SpanID())
	if _, err := db.Exec("INSERT INTO "+dbName+".qmq_msg_queue (content, create_time) VALUES (?, NOW())", content); err != nil {
		t.Fatal(err)
	}

	// One message the broker refuses (an illegal subject, BLOCK), as an
	// old or foreign producer could send it: the refusal counter's series.
	sendRaw(t, fmt.Sprintf("127.0.0.1:%d", bp), &protocol.Message{Subject: "not a subject", MessageID: "obs-refused", CreateTime: time.Now().UnixMilli()})

	testutil.EventuallyState(t, 60*time.Second, "every message handled", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return handled["plain"] >= 1 && handled["retry"] >= 2 && handled["dead"] >= 1 && handled["delayed"] >= 1 && handled["watchdog"] >= 1, fmt.Sprint(handled)
	})

	t.Run("traces", func(t *testing.T) {
		local := func(name, id string) []sdktrace.ReadOnlySpan {
			var out []sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.Name() != name {
					continue
				}
				for _, a := range s.Attributes() {
					if string(a.Key) == "messaging.message.id" && a.Value.AsString() == id {
						out = append(out, s)
					}
				}
			}
			return out
		}
		one := func(name, id string) sdktrace.ReadOnlySpan {
			t.Helper()
			var got []sdktrace.ReadOnlySpan
			testutil.Eventually(t, 15*time.Second, name+" of "+id, func() bool { got = local(name, id); return len(got) > 0 })
			return got[0]
		}
		remote := func(name, id string, parent trace.SpanContext) exportedSpan {
			t.Helper()
			var found exportedSpan
			testutil.EventuallyState(t, 15*time.Second, fmt.Sprintf("qmq dev's %s of %s under %s", name, id, parent.SpanID()), func() (bool, string) {
				got := recv.find(name, id)
				for _, s := range got {
					if s.TraceID == parent.TraceID().String() && s.Parent == parent.SpanID().String() {
						found = s
						return true, ""
					}
				}
				return false, fmt.Sprint(got)
			})
			return found
		}
		childOf := func(s sdktrace.ReadOnlySpan, parent trace.SpanContext) {
			t.Helper()
			if s.SpanContext().TraceID() != parent.TraceID() || s.Parent().SpanID() != parent.SpanID() {
				t.Errorf("%s: trace %s parent %s, want trace %s parent %s", s.Name(), s.SpanContext().TraceID(), s.Parent().SpanID(), parent.TraceID(), parent.SpanID())
			}
		}

		// send → store (+ slave wrote) → pull → handle → ack, one trace.
		send := one(tracing.SpanSend, plain.ID())
		childOf(send, root.SpanContext())
		store := remote(tracing.SpanStore, plain.ID(), send.SpanContext())
		if !slices.Contains(store.Events, tracing.EventSlaveWrote) || store.Service != "qmq-dev" {
			t.Errorf("the broker's store span: %v, want the %q event from service qmq-dev", store, tracing.EventSlaveWrote)
		}
		pull := one(tracing.SpanPull, plain.ID())
		childOf(pull, send.SpanContext())
		handle := one(tracing.SpanHandle, plain.ID())
		childOf(handle, pull.SpanContext())
		ack := one(tracing.SpanAck, plain.ID())
		childOf(ack, handle.SpanContext())

		// A delay message: send → schedule, dispatch → store → pull.
		dsend := one(tracing.SpanSend, delayed.ID())
		remote(tracing.SpanDelaySchedule, delayed.ID(), dsend.SpanContext())
		remote(tracing.SpanDelayDispatch, delayed.ID(), dsend.SpanContext())
		remote(tracing.SpanStore, delayed.ID(), dsend.SpanContext())
		childOf(one(tracing.SpanPull, delayed.ID()), dsend.SpanContext())

		// A retry continues the trace: the second delivery is pulled under the retry span.
		retry := one(tracing.SpanRetry, retried.ID())
		var first sdktrace.ReadOnlySpan
		for _, h := range local(tracing.SpanHandle, retried.ID()) {
			if h.SpanContext().SpanID() == retry.Parent().SpanID() {
				first = h
			}
		}
		if first == nil {
			t.Errorf("the retry span's parent is not a handle span of the message")
		}
		testutil.Eventually(t, 15*time.Second, "the retried message pulled under its retry span", func() bool {
			for _, s := range local(tracing.SpanPull, retried.ID()) {
				if s.Parent().SpanID() == retry.SpanContext().SpanID() {
					return true
				}
			}
			return false
		})
		remote(tracing.SpanStore, retried.ID(), retry.SpanContext())

		// A dead letter.
		deadSpan := one(tracing.SpanDeadLetter, dead.ID())
		if deadSpan.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("the dead-letter span is in trace %s, want the application's %s", deadSpan.SpanContext().TraceID(), root.SpanContext().TraceID())
		}

		// The watchdog's resend continues the application's trace.
		resend := remote(tracing.SpanWatchdogResend, wdID, wdRoot.SpanContext())
		var wdSend exportedSpan
		testutil.Eventually(t, 15*time.Second, "the watchdog's producer send under its resend span", func() bool {
			for _, s := range recv.find(tracing.SpanSend, wdID) {
				if s.Parent == resend.SpanID {
					wdSend = s
					return true
				}
			}
			return false
		})
		testutil.Eventually(t, 15*time.Second, "the resent message pulled under the watchdog's send", func() bool {
			for _, s := range local(tracing.SpanPull, wdID) {
				if s.Parent().SpanID().String() == wdSend.SpanID {
					return true
				}
			}
			return false
		})
		if t.Failed() {
			t.Logf("spans qmq dev exported:\n%s", recv.dump())
		}
	})

	t.Run("metrics", func(t *testing.T) {
		endpoints := map[string]string{
			"metaserver":     fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0]),
			"broker":         fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[4]),
			"broker (slave)": fmt.Sprintf("http://127.0.0.1:%d/metrics", bp+12),
			"delay":          fmt.Sprintf("http://127.0.0.1:%d/metrics", dp+2),
			"watchdog":       fmt.Sprintf("http://127.0.0.1:%d/metrics", wp),
			"backup":         fmt.Sprintf("http://127.0.0.1:%d/metrics", backupPort),
			"console":        fmt.Sprintf("http://127.0.0.1:%d/metrics", consolePort),
		}
		// The series that appear once something happened: wait for them.
		rows := map[string]*metricRow{}
		testutil.EventuallyState(t, 30*time.Second, "the labelled series of a busy qmq dev", func() (bool, string) {
			rows = map[string]*metricRow{}
			for comp, url := range endpoints {
				fams, err := scrape(url)
				if err != nil {
					return false, err.Error()
				}
				addFamilies(rows, comp, fams)
			}
			for _, want := range []string{"qmq_broker_consumer_backlog_messages", "qmq_broker_dead_letter_messages", "qmq_watchdog_rows_pending", "qmq_delay_dispatch_lateness_seconds"} {
				if rows[want] == nil {
					return false, want + " not exported yet"
				}
			}
			return true, ""
		})
		cfams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		cmap := map[string]*dto.MetricFamily{}
		for _, f := range cfams {
			cmap[f.GetName()] = f
		}
		addFamilies(rows, "client", cmap)
		// Two components exporting one name must agree on what it is.
		for _, r := range rows {
			slices.Sort(r.Components)
			if r.Components[0] == "broker" && slices.Contains(r.Components, "broker (slave)") {
				r.Components = slices.DeleteFunc(r.Components, func(c string) bool { return c == "broker (slave)" })
			}
		}
		if *updateMetricsDoc {
			writeMetricsDoc(t, rows)
		}
		b, err := os.ReadFile(metricsDoc)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := parseMetricsDoc(string(b))
		if err != nil {
			t.Fatal(err)
		}
		for name, r := range rows {
			d, ok := doc[name]
			switch {
			case !ok:
				t.Errorf("docs/metrics.md does not list %s (%s, exported by %v): run go test ./cmd/qmq -run TestObservabilityDev -update-metrics-doc", name, r.Type, r.Components)
			case d.Type != r.Type || !slices.Equal(d.Labels, r.Labels):
				t.Errorf("docs/metrics.md says %s is a %s with labels %v; %v export a %s with labels %v", name, d.Type, d.Labels, r.Components, r.Type, r.Labels)
			}
		}
		for name, file := range registeredNames(t) {
			if _, ok := doc[name]; !ok {
				t.Errorf("docs/metrics.md does not list %s, registered in %s (add it to the table of metrics a qmq dev run does not show)", name, file)
			}
		}

		exported := func(name string) bool { return rows[name] != nil || standardFamily(name) }
		rules, err := deploy.Rules()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			for _, n := range deploy.MetricNames(r.Expr) {
				if !exported(n) {
					t.Errorf("alert %s reads %s, which qmq dev does not export", r.Alert, n)
				}
			}
		}
		panels, err := deploy.DashboardExprs()
		if err != nil {
			t.Fatal(err)
		}
		for title, exprs := range panels {
			for _, e := range exprs {
				for _, n := range deploy.MetricNames(e) {
					if !exported(n) {
						t.Errorf("dashboard panel %q reads %s, which qmq dev does not export", title, n)
					}
				}
			}
		}
	})
}

// createClientTable creates QMQ's client table (schema.ClientMySQL) in
// database name.
func createClientTable(t *testing.T, db *sql.DB, name string) {
	t.Helper()
	for _, stmt := range strings.Split(strings.ReplaceAll(schema.ClientMySQL, "qmq_produce", name), ";\n") {
		var code []string
		for _, line := range strings.Split(stmt, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "--") {
				code = append(code, line)
			}
		}
		if len(code) > 0 {
			if _, err := db.Exec(strings.Join(code, "\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// sendRaw sends one SEND_MESSAGE holding m to the broker at addr, bypassing
// the client's checks.
func sendRaw(t *testing.T, addr string, m *protocol.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := remoting.Dial(ctx, addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body, err := protocol.AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Call(ctx, protocol.CodeSendMessage, body); err != nil {
		t.Fatal(err)
	}
}
