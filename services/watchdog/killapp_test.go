package watchdog

// The issue's "the application killed with kill -9 between commit and
// send: the watchdog sends it", with a real application process: this
// test binary re-executed as the helper below.

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/tx"
	"github.com/qmq-go/qmq/internal/testutil"
)

// killedAppEnv makes this test binary TestAppKilledBetweenCommitAndSend's
// helper; its value is the helper's settings, | separated: metaserver,
// database/sql driver, DSN, message table, business table, subject.
const killedAppEnv = "QMQ_WATCHDOG_KILLED_APP"

// An application commits a business change and its transactional message
// and is killed with SIGKILL before the message is sent: its producer's
// metaserver is blackholed (a proxy that stops passing bytes) after the
// producer started, so the asynchronous send is still waiting for the
// subject's route when the process dies. The business row and the
// message row are committed; the watchdog resends the message, a consumer
// receives it exactly once with its properties, and the row is deleted.
// On MariaDB and PostgreSQL.
func TestAppKilledBetweenCommitAndSend(t *testing.T) {
	t.Run("MariaDB", func(t *testing.T) {
		db := mariaClient(t)
		testAppKilled(t, db, "mysql", strings.TrimSuffix(db.table, "qmq_msg_queue")+"orders")
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		testAppKilled(t, postgresClient(t), "pgx", "public.orders")
	})
}

func testAppKilled(t *testing.T, db testDB, driver, orders string) {
	e := startEnv(t)
	subject := fmt.Sprintf("wd.killed.%d", time.Now().UnixNano())
	in := e.startInbox(t, subject)
	if _, err := db.db.Exec("CREATE TABLE " + orders + " (id BIGINT PRIMARY KEY, state VARCHAR(16) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	user := "root"
	if db.dialect == tx.PostgreSQL {
		user = "postgres"
	}
	e.addDB(t, db.url, user, "")
	meta := startTCPProxy(t, e.cluster.Meta().TCP())

	cmd := exec.Command(os.Args[0], "-test.run=^TestAppKilledHelper$", "-test.v")
	cmd.Env = append(os.Environ(), killedAppEnv+"="+strings.Join([]string{meta.addr(), driver, db.dsn, db.table, orders, subject}, "|"))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitLine := func(prefix string) string {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the application helper ended before printing %q", prefix)
				}
				if rest, found := strings.CutPrefix(l, prefix); found {
					return strings.TrimSpace(rest)
				}
			case <-timeout:
				t.Fatalf("the application helper did not print %q within 60 s", prefix)
			}
		}
	}
	waitLine("app ready")
	meta.blackhole.Store(true)
	if _, err := fmt.Fprintln(stdin, "go"); err != nil {
		t.Fatal(err)
	}
	msgID := waitLine("app committed ")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	t.Logf("application killed with SIGKILL after committing message %s", msgID)

	var state string
	if err := db.db.QueryRow("SELECT state FROM " + orders + " WHERE id = 42").Scan(&state); err != nil || state != "paid" {
		t.Fatalf("the business change: %q, %v; want committed", state, err)
	}
	var status, errs, n int
	if err := db.db.QueryRow("SELECT COUNT(*), MIN(status), MIN(error) FROM "+db.table).Scan(&n, &status, &errs); err != nil || n != 1 || status != 0 || errs != 0 {
		t.Fatalf("message rows after the kill: %d (status %d, error %d), %v; want one untouched row (status 0, error 0)", n, status, errs, err)
	}
	if in.get(msgID) != nil {
		t.Fatal("the message arrived before the watchdog ran: the helper's send was not blocked")
	}

	start := time.Now()
	w := e.start(t, "wd-a", e.settings())
	testutil.Eventually(t, 30*time.Second, "the watchdog resends the killed application's message", func() bool {
		return in.get(msgID) != nil && db.count(t) == 0
	})
	t.Logf("resent and received %v after the watchdog started", time.Since(start).Round(time.Millisecond))
	if got := in.get(msgID); got.Property("order") != "42" {
		t.Errorf("received message property order = %q, want 42", got.Property("order"))
	}
	time.Sleep(4 * e.settings().CheckInterval) // more rounds: nothing is sent again
	if n := in.dups(); n != 0 {
		t.Errorf("%d messages arrived twice", n)
	}
	if got := w.logs.Count("resent rows left by applications"); got != 1 {
		t.Errorf("%d rounds resent rows, want 1", got)
	}
}

// TestAppKilledHelper is the application of
// TestAppKilledBetweenCommitAndSend: a producer and a tx.Sender on the
// client database; on "go" it pays order 42 and sends order.paid in one
// transaction, commits, prints the message id and waits to be killed.
func TestAppKilledHelper(t *testing.T) {
	v := os.Getenv(killedAppEnv)
	if v == "" {
		t.Skip("helper of TestAppKilledBetweenCommitAndSend")
	}
	parts := strings.Split(v, "|")
	if len(parts) != 6 {
		t.Fatalf("%s=%q: want metaserver|driver|dsn|table|orders|subject", killedAppEnv, v)
	}
	metaAddr, driver, dsn, table, orders, subject := parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]
	ctx := context.Background()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewProducer(ctx, metaAddr, client.WithAppCode("killed-app"), client.WithSendTimeout(time.Minute),
		client.WithRouteRefresh(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	dialect := tx.MySQL
	if driver == "pgx" {
		dialect = tx.PostgreSQL
	}
	sender, err := tx.New(db, p, tx.WithDialect(dialect), tx.WithTable(table), tx.WithRetryDelay(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("app ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	m := p.NewMessage(subject).SetProperty("order", "42")
	err = sender.Run(ctx, nil, func(ctx context.Context, t *tx.Tx) error {
		if _, err := t.ExecContext(ctx, "INSERT INTO "+orders+" (id, state) VALUES (42, 'paid')"); err != nil {
			return err
		}
		return t.Send(ctx, m)
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("app committed %s\n", m.ID())
	time.Sleep(time.Minute)
	t.Fatal("not killed within a minute")
}
