package watchdog

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/tx"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testmysql"
	"github.com/qmq-go/qmq/internal/testpostgres"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/schema"
	"github.com/qmq-go/qmq/tests/framework"
)

// env is a metaserver and a broker (tests/framework), a producer for the
// test's probes, and the metaserver's SQLite database, where the test
// registers client databases as `qmq tools AddDb` would.
type env struct {
	cluster *framework.Cluster
	p       *client.Producer
	metaDir string // store.root of the metaserver
	meta    *sql.DB
}

func startEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	cluster := framework.StartCluster(t, framework.ClusterOptions{Groups: 1})
	p, err := client.NewProducer(ctx, cluster.Endpoint(), client.WithRouteRefresh(time.Second), client.WithSendTimeout(2*time.Second),
		client.WithMaxRetries(2), client.WithAppCode("wd-test"), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(cctx)
	})
	e := &env{cluster: cluster, p: p, metaDir: filepath.Join(cluster.Meta().ConfDir, "data")}
	e.meta, err = sql.Open("sqlite", "file:"+filepath.Join(e.metaDir, "metaserver.db")+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.meta.Close() })
	return e
}

// addDB registers a client database in datasource_config (room default).
func (e *env) addDB(t *testing.T, url, user, password string) {
	t.Helper()
	if _, err := e.meta.Exec("INSERT INTO datasource_config (url, user_name, password, status, room) VALUES (?, ?, ?, 0, 'default')", url, user, password); err != nil {
		t.Fatal(err)
	}
}

// settings are a watchdog's settings for the tests: short rounds, the
// metaserver's SQLite database, a free HTTP port.
func (e *env) settings() Settings {
	s := DefaultSettings()
	s.AppCode = "qmq-watchdog-test"
	s.MetaEndpoint = e.cluster.Endpoint()
	s.StoreRoot = e.metaDir
	s.HTTPPort = 0
	s.BindHost = "127.0.0.1"
	s.CheckInterval = 300 * time.Millisecond
	s.RefreshInterval = 300 * time.Millisecond
	s.TaskTimeout = 10 * time.Second
	s.ElectInterval = 100 * time.Millisecond
	s.Lease = 500 * time.Millisecond
	return s
}

// watchdog is a running watchdog of a test.
type watchdog struct {
	*Server
	logs   *testlog.Buffer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start runs a watchdog until stop or the end of the test.
func (e *env) start(t *testing.T, node string, s Settings) *watchdog {
	t.Helper()
	buf := &testlog.Buffer{}
	log := hclog.New(&hclog.LoggerOptions{Name: node, Output: io.MultiWriter(buf, testlog.Writer(t)), Level: hclog.Info})
	srv, err := New(context.Background(), s, Options{Logger: log, Node: node,
		ProducerOptions: []client.ProducerOption{client.WithRouteRefresh(time.Second), client.WithMaxRetries(2)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchdog{Server: srv, logs: buf, cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- srv.Run(ctx) }()
	t.Cleanup(func() { w.stop(t) })
	return w
}

// stop ends the watchdog and waits for Run to return.
func (w *watchdog) stop(t *testing.T) {
	t.Helper()
	w.once.Do(func() {
		w.cancel()
		select {
		case err := <-w.done:
			if err != nil {
				t.Errorf("watchdog %s: Run: %v", w.node, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("watchdog %s did not stop within 30 s", w.node)
		}
	})
}

// get reads an HTTP endpoint of the watchdog.
func (w *watchdog) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + w.HTTPAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testDB is a client database of a test with QMQ's table.
type testDB struct {
	url     string
	dsn     string // the driver's DSN
	db      *sql.DB
	dialect tx.Dialect
	table   string
	ph      func(int) string
}

// mariaClient creates a MariaDB database holding qmq_msg_queue
// (init_client.sql with the database renamed), registered by url
// mmm://host:port/<database>.
func mariaClient(t *testing.T) testDB {
	t.Helper()
	name, dsn := testmysql.Database(t, "qmqwd_")
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	for _, stmt := range strings.Split(strings.ReplaceAll(schema.ClientMySQL, "qmq_produce", name), ";\n") {
		var code []string
		for _, line := range strings.Split(stmt, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "--") {
				code = append(code, line)
			}
		}
		if len(code) == 0 {
			continue
		}
		if _, err := db.Exec(strings.Join(code, "\n")); err != nil {
			t.Fatalf("apply init_client.sql: %v", err)
		}
	}
	return testDB{url: "mmm://" + cfg.Addr + "/" + name, dsn: dsn, db: db, dialect: tx.MySQL, table: name + ".qmq_msg_queue",
		ph: func(int) string { return "?" }}
}

// postgresClient creates a PostgreSQL database with
// init_client_postgres.sql, registered by url postgresql://host:port/<db>.
func postgresClient(t *testing.T) testDB {
	t.Helper()
	db, dsn := testpostgres.Database(t, "qmqwd_")
	if _, err := db.Exec(schema.ClientPostgres); err != nil {
		t.Fatalf("apply init_client_postgres.sql: %v", err)
	}
	name := dsn[strings.LastIndex(dsn, "dbname=")+len("dbname="):]
	return testDB{url: "postgresql://127.0.0.1:5432/" + name, dsn: dsn, db: db, dialect: tx.PostgreSQL, table: "qmq_produce.qmq_msg_queue",
		ph: func(i int) string { return fmt.Sprintf("$%d", i) }}
}

// insert writes a row as QMQ's Java client leaves it when the application
// died after commit: status 0, untouched for two minutes. It returns the
// row's id.
func (c testDB) insert(t *testing.T, content string) int64 {
	t.Helper()
	old := time.Now().Add(-2 * time.Minute).UTC()
	if c.dialect == tx.PostgreSQL {
		var id int64
		err := c.db.QueryRow("INSERT INTO "+c.table+" (content, create_time, update_time) VALUES ($1, $2, $2) RETURNING id", content, old).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	res, err := c.db.Exec("INSERT INTO "+c.table+" (content, create_time, update_time) VALUES (?, NOW() - INTERVAL 2 MINUTE, NOW() - INTERVAL 2 MINUTE)", content)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return id
}

// row is a row's state; ok is false when it is gone.
func (c testDB) row(t *testing.T, id int64) (status, errs int, ok bool) {
	t.Helper()
	err := c.db.QueryRow("SELECT status, error FROM "+c.table+" WHERE id = "+c.ph(1), id).Scan(&status, &errs)
	if err == sql.ErrNoRows {
		return 0, 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return status, errs, true
}

func (c testDB) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := c.db.QueryRow("SELECT COUNT(*) FROM " + c.table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// javaContent is a message as QMQ's Java client writes it in the content
// column: Gson's form of BaseMessage, longs as strings.
func javaContent(id, subject string, tags []string, attrs map[string]string) string {
	now := time.Now().UnixMilli()
	var b strings.Builder
	fmt.Fprintf(&b, `{"messageId":%q,"subject":%q,"tags":[`, id, subject)
	for i, tg := range tags {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", tg)
	}
	fmt.Fprintf(&b, `],"storeAtFailed":false,"durable":true,"attrs":{"qmq_createTime":"%d","qmq_expireTime":"%d","qmq_appCode":"java-app"`, now, now+15*60*1000)
	for k, v := range attrs {
		fmt.Fprintf(&b, ",%q:%q", k, v)
	}
	b.WriteString("}}")
	return b.String()
}

// inbox is a consumer collecting what it receives, by message id, with
// how many times each arrived.
type inbox struct {
	mu    sync.Mutex
	msgs  map[string]*client.Message
	times map[string]int
}

func (b *inbox) get(id string) *client.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.msgs[id]
}

func (b *inbox) dups() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.times {
		n += c - 1
	}
	return n
}

// startInbox runs a consumer of subject and returns once it receives
// messages (a new group starts at the newest message when its first pull
// reaches the broker, so probes are sent until one arrives).
func (e *env) startInbox(t *testing.T, subject string) *inbox {
	t.Helper()
	ctx := context.Background()
	c, err := client.NewConsumer(ctx, e.cluster.Endpoint(), subject, "wdtest",
		client.WithPullTimeout(400*time.Millisecond), client.WithHeartbeat(300*time.Millisecond),
		client.WithAckFlushInterval(100*time.Millisecond), client.WithRouteRefresh(time.Second), client.WithCloseWait(3*time.Second),
		client.WithLogger(testlog.Logger(t, "consumer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	in := &inbox{msgs: map[string]*client.Message{}, times: map[string]int{}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(runCtx, func(_ context.Context, m *client.Message) error {
			in.mu.Lock()
			in.msgs[m.ID()] = m
			in.times[m.ID()]++
			in.mu.Unlock()
			return nil
		}); err != nil {
			t.Errorf("consumer Run: %v", err)
		}
	}()
	t.Cleanup(func() { stop(); <-done })
	testutil.Eventually(t, 30*time.Second, "the consumer receives a probe", func() bool {
		probe := e.p.NewMessage(subject).SetProperty("probe", "1")
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := e.p.Send(sctx, probe); err != nil {
			return false
		}
		time.Sleep(300 * time.Millisecond)
		return in.get(probe.ID()) != nil
	})
	return in
}
