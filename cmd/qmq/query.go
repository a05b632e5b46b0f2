package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qmq-go/qmq/backup/hbasestore"
	"github.com/qmq-go/qmq/backup/query"
	"github.com/qmq-go/qmq/protocol"
)

const queryUsage = `qmq query — ask a backup server what it kept (QMQ's backup query API).

Usage:
  qmq query message --subject S [--id ID] [--since T] [--until T] [--len N] [--start NEXT] [--all]
  qmq query dead    --subject S [--group G] [--id ID] [--since T] [--until T] [--len N] [--start NEXT] [--all]
  qmq query retry   --subject S --id ID [--group G] [--since T] [--until T] [--len N] [--all]
                                                     a message's retry copies: each group's sequence
                                                     for detail --group G --retry
  qmq query records --subject S --broker-group BG --sequence N          pulls and acks of a message
  qmq query records --subject S --id ID --retry | --dead                of its retries, or its dead letters
  qmq query detail  --subject S --broker-group BG --sequence N [--group G [--retry]]
                                                     one message with its properties (--group: that
                                                     consumer group's dead letter at BG:N; with
                                                     --retry its retry copy, as records --retry
                                                     --table lists them)
  qmq query create-hbase-tables --rest http://hbase-rest:8080 [--retention-days 30]

Common flags:
  --backup host:port   the backup's HTTP address (default 127.0.0.1:8082)
  --table              a table instead of the API's JSON
  --timeout D          give up after D (default 30s)

Times (--since, --until) are a duration back from now (2h, 30m, 7d) or RFC 3339
(2026-12-07T15:00:00Z). The default range is the backup's: the last 30 days.
--all follows "next" until the last page; without it, pass a page's next as --start.
`

func runQuery(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, queryUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	switch args[0] {
	case "message", "messages", "dead", "retry", "retries":
		err = queryMessages(args[0], args[1:], stdout, stderr)
	case "records":
		err = queryRecords(args[1:], stdout, stderr)
	case "detail":
		err = queryDetail(args[1:], stdout, stderr)
	case "create-hbase-tables":
		err = createHBaseTables(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "qmq query: unknown command %q\n\n%s", args[0], queryUsage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "qmq query %s: %v\n", args[0], err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "qmq query %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

type usageError struct{ error }

// queryClient holds the flags every query command has.
type queryClient struct {
	backup  string
	table   bool
	timeout time.Duration
}

func (c *queryClient) register(fs *flag.FlagSet) {
	fs.StringVar(&c.backup, "backup", "127.0.0.1:8082", "the backup's HTTP address, host:port or a URL")
	fs.BoolVar(&c.table, "table", false, "print a table instead of JSON")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up after this long")
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	return nil
}

func (c *queryClient) baseURL() (string, error) {
	b := strings.TrimRight(c.backup, "/")
	if !strings.Contains(b, "://") {
		b = "http://" + b
	}
	u, err := url.Parse(b)
	if err != nil || u.Host == "" {
		return "", usageError{fmt.Errorf("--backup %q is not host:port or an http URL", c.backup)}
	}
	return b, nil
}

// get asks path?param=<q as JSON> and returns the body of a 200 answer;
// other answers become errors saying what the backup said.
func (c *queryClient) get(path, param string, q any) ([]byte, error) {
	base, err := c.baseURL()
	if err != nil {
		return nil, err
	}
	qj, err := json.Marshal(q)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+param+"="+url.QueryEscape(string(qj)), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("the backup at %s did not answer within %s (--timeout)", c.backup, c.timeout)
		}
		return nil, fmt.Errorf("cannot reach the backup at %s: %v (is the backup server running there? --backup host:port names it)", c.backup, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the backup's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			if e.Field != "" {
				return nil, fmt.Errorf("the backup refused the query (%s, field %s): %s", resp.Status, e.Field, e.Error)
			}
			return nil, fmt.Errorf("the backup answered %s: %s", resp.Status, e.Error)
		}
		return nil, fmt.Errorf("the backup at %s answered %s: %.300s (is it a qmq backup server?)", c.backup, resp.Status, body)
	}
	return body, nil
}

// parseWhen reads a --since/--until value: a duration back from now (with
// a d suffix for days) or RFC 3339.
func parseWhen(flagName, v string, now time.Time) (int64, error) {
	if v == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil && n >= 0 {
			return now.Add(-time.Duration(n * 24 * float64(time.Hour))).UnixMilli(), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d).UnixMilli(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UnixMilli(), nil
	}
	return 0, usageError{fmt.Errorf("--%s %q is neither a duration back from now (2h, 30m, 7d) nor an RFC 3339 time (2026-12-07T15:00:00Z)", flagName, v)}
}

// backupQuery is what the CLI sends: QMQ's backupQuery fields it uses.
type backupQuery struct {
	Subject            string `json:"subject"`
	MessageID          string `json:"messageId,omitempty"`
	ConsumerGroup      string `json:"consumerGroup,omitempty"`
	MsgCreateTimeBegin int64  `json:"msgCreateTimeBegin,omitempty"`
	MsgCreateTimeEnd   int64  `json:"msgCreateTimeEnd,omitempty"`
	IsDelay            bool   `json:"isDelay"`
	Len                int    `json:"len"`
	Start              string `json:"start,omitempty"`
	BrokerGroup        string `json:"brokerGroup,omitempty"`
	Sequence           int64  `json:"sequence,omitempty"`
}

func queryMessages(cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("qmq query "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c queryClient
	c.register(fs)
	var q backupQuery
	var since, until string
	var all bool
	fs.StringVar(&q.Subject, "subject", "", "the subject (required)")
	fs.StringVar(&q.MessageID, "id", "", "only this message id")
	fs.StringVar(&since, "since", "", "oldest create time: a duration back from now (2h, 7d) or RFC 3339")
	fs.StringVar(&until, "until", "", "newest create time, as --since (default now)")
	fs.IntVar(&q.Len, "len", 20, "page size, 1..1000")
	fs.StringVar(&q.Start, "start", "", "continue after a page: its next")
	fs.BoolVar(&all, "all", false, "follow next to the last page")
	retry := cmd == "retry" || cmd == "retries"
	switch {
	case cmd == "dead":
		fs.StringVar(&q.ConsumerGroup, "group", "", "only this consumer group's dead letters")
	case retry:
		fs.StringVar(&q.ConsumerGroup, "group", "", "only this consumer group's retry copies")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if q.Subject == "" {
		return usageError{errors.New("--subject is required")}
	}
	if retry && q.MessageID == "" {
		return usageError{errors.New("--id is required: retry copies are listed per message")}
	}
	now := time.Now()
	var err error
	if q.MsgCreateTimeBegin, err = parseWhen("since", since, now); err != nil {
		return err
	}
	if q.MsgCreateTimeEnd, err = parseWhen("until", until, now); err != nil {
		return err
	}
	path := "/api/message"
	switch {
	case cmd == "dead":
		path = "/api/message/dead"
	case retry:
		path = "/api/message/retry"
	}
	var rows []query.MessageMeta
	for pages := 0; ; pages++ {
		body, err := c.get(path, "backupQuery", q)
		if err != nil {
			return err
		}
		var l query.MessageList
		if err := json.Unmarshal(body, &l); err != nil {
			return fmt.Errorf("the backup's answer is not a message list: %w", err)
		}
		if !c.table && !all {
			_, err := stdout.Write(body)
			return err
		}
		rows = append(rows, l.List...)
		if !all || l.Next == nil || pages >= 100_000 {
			if c.table {
				printMessages(stdout, rows, cmd == "dead" || retry, l.Next)
				return nil
			}
			return json.NewEncoder(stdout).Encode(query.MessageList{List: rows, Next: l.Next})
		}
		q.Start = *l.Next
	}
}

func printMessages(w io.Writer, rows []query.MessageMeta, dead bool, next *string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "CREATE TIME\tMESSAGE ID\tBROKER GROUP\tSEQUENCE"
	if dead {
		head += "\tCONSUMER GROUP"
	}
	fmt.Fprintln(tw, head)
	for _, m := range rows {
		line := fmt.Sprintf("%s\t%s\t%s\t%d", time.UnixMilli(m.CreateTime).Format("2006-01-02 15:04:05.000"), m.MessageID, m.BrokerGroup, m.Sequence)
		if dead {
			line += "\t" + m.ConsumerGroup
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if next != nil {
		fmt.Fprintf(w, "more: --start %s\n", *next)
	}
}

func queryRecords(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("qmq query records", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c queryClient
	c.register(fs)
	var q query.RecordQuery
	var retry, dead bool
	fs.StringVar(&q.Subject, "subject", "", "the subject (required)")
	fs.StringVar(&q.BrokerGroup, "broker-group", "", "the message's broker group (the list's brokerGroup)")
	fs.Int64Var(&q.Sequence, "sequence", -1, "the message's sequence (the list's sequence)")
	fs.StringVar(&q.MessageID, "id", "", "the message id (with --retry or --dead)")
	fs.BoolVar(&retry, "retry", false, "records of the message's retries")
	fs.BoolVar(&dead, "dead", false, "the message's dead letters")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case q.Subject == "":
		return usageError{errors.New("--subject is required")}
	case retry && dead:
		return usageError{errors.New("--retry and --dead exclude each other")}
	case retry || dead:
		if q.MessageID == "" {
			return usageError{errors.New("--retry and --dead need --id")}
		}
		q.RecordCode = 1
		if dead {
			q.RecordCode = 2
		}
		q.Sequence = 0
	default:
		if q.BrokerGroup == "" || q.Sequence < 0 {
			return usageError{errors.New("--broker-group and --sequence are required (or --id with --retry or --dead)")}
		}
	}
	body, err := c.get("/api/message/records", "recordQuery", q)
	if err != nil {
		return err
	}
	if !c.table {
		_, err := stdout.Write(body)
		return err
	}
	var rl query.RecordList
	if err := json.Unmarshal(body, &rl); err != nil {
		return fmt.Errorf("the backup's answer is not a record list: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	// A retry record's broker group and sequence, with its consumer group,
	// name the retry copy for `qmq query detail --group G --retry`.
	fmt.Fprintln(tw, "TIME\tACTION\tCONSUMER GROUP\tCONSUMER ID\tBROKER GROUP\tSEQUENCE")
	for _, r := range rl.Records {
		action := map[int]string{0: "pull", 1: "ack", -2: "dead"}[r.Action]
		if action == "" {
			action = strconv.Itoa(r.Action)
		}
		bg := r.BrokerGroup
		if bg == "" {
			bg = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", time.UnixMilli(r.Timestamp).Format("2006-01-02 15:04:05.000"), action, r.ConsumerGroup, r.ConsumerID, bg, r.Sequence)
	}
	return tw.Flush()
}

func queryDetail(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("qmq query detail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c queryClient
	c.register(fs)
	var q backupQuery
	fs.StringVar(&q.Subject, "subject", "", "the subject (required)")
	fs.StringVar(&q.BrokerGroup, "broker-group", "", "the message's broker group (required)")
	fs.Int64Var(&q.Sequence, "sequence", -1, "the message's sequence (required)")
	fs.StringVar(&q.ConsumerGroup, "group", "", "a dead letter's consumer group, as `qmq query dead` lists it: each group's dead letters are numbered in their own log, so BG:N also names a normal message")
	var retry bool
	fs.BoolVar(&retry, "retry", false, "with --group: that group's retry copy at BG:N (%RETRY%<subject>%<group>'s sequence, as `qmq query records --retry` lists it)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if q.Subject == "" || q.BrokerGroup == "" || q.Sequence < 0 {
		return usageError{errors.New("--subject, --broker-group and --sequence are required")}
	}
	if retry {
		if q.ConsumerGroup == "" {
			return usageError{errors.New("--retry needs --group: each consumer group's retry copies are numbered in their own log")}
		}
		// The backupQuery has no kind: a retry copy is named by the subject
		// its group's log holds it under, as QMQ's detail query does.
		q.Subject, q.ConsumerGroup = protocol.RetrySubject(q.Subject, q.ConsumerGroup), ""
	}
	body, err := c.get("/api/message/detail", "backupQuery", q)
	if err != nil {
		return err
	}
	if !c.table {
		_, err := stdout.Write(body)
		return err
	}
	var d query.Detail
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("the backup's answer is not a message: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "subject\t%s\nmessage id\t%s\nbroker group\t%s\nsequence\t%d\ncreate time\t%s\ntags\t%s\n",
		d.Subject, d.MessageID, d.BrokerGroup, d.Sequence, time.UnixMilli(d.CreateTime).Format(time.RFC3339Nano), strings.Join(d.Tags, ","))
	if d.ConsumerGroup != "" {
		fmt.Fprintf(tw, "consumer group\t%s\n", d.ConsumerGroup)
	}
	for k, v := range d.Attrs {
		fmt.Fprintf(tw, "attr %s\t%s\n", k, v)
	}
	return tw.Flush()
}

func createHBaseTables(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("qmq query create-hbase-tables", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := hbasestore.DefaultSettings()
	fs.StringVar(&s.RestURL, "rest", "", "the HBase REST gateway's URL, e.g. http://hbase-rest:8080 (required)")
	fs.IntVar(&s.RetentionDays, "retention-days", s.RetentionDays, "the column families' TTL in days (backup.retention.days; 0 keeps forever)")
	fs.DurationVar(&s.Timeout, "timeout", 30*time.Second, "per request")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if s.RestURL == "" {
		return usageError{errors.New("--rest is required")}
	}
	if err := s.Validate(); err != nil {
		return usageError{err}
	}
	created, err := hbasestore.CreateTablesAt(context.Background(), s)
	if err != nil {
		return err
	}
	if len(created) == 0 {
		fmt.Fprintln(stdout, "all the backup's tables exist already; nothing created")
		return nil
	}
	fmt.Fprintf(stdout, "created %s\n", strings.Join(created, ", "))
	return nil
}
