package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/backoff"
)

const defaultMeta = "http://127.0.0.1:8080/meta/address"

// runSend sends messages from the command line (how a person tries the queue).
func runSend(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmq send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	meta := fs.String("meta", defaultMeta, "meta.server.endpoint: http://host:8080/meta/address, consul://qmq-metaserver or host:port")
	subject := fs.String("subject", "", "subject (required)")
	count := fs.Int("count", 1, "messages to send")
	size := fs.Int("size", 0, "body size in bytes when --body is not given")
	body := fs.String("body", "", "message body")
	delay := fs.Duration("delay", 0, "deliver the messages this long after sending (e.g. 30s, 2h): through a delay group when at least 500ms")
	at := fs.String("at", "", "deliver the messages at this time (RFC 3339, e.g. 2026-12-24T18:00:00Z): through a delay group when at least 500ms ahead")
	var tags, props stringList
	fs.Var(&tags, "tag", "tag (repeatable, at most 10)")
	fs.Var(&props, "prop", "property key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *subject == "" {
		fmt.Fprintln(stderr, "qmq send: --subject is required")
		return 2
	}
	var due time.Time
	switch {
	case *delay != 0 && *at != "":
		fmt.Fprintln(stderr, "qmq send: give --delay or --at, not both")
		return 2
	case *delay < 0:
		fmt.Fprintf(stderr, "qmq send: --delay %v is negative: give how long after sending the messages are due, e.g. --delay 30s\n", *delay)
		return 2
	case *at != "":
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintf(stderr, "qmq send: --at %q is not an RFC 3339 time: write it like 2026-12-24T18:00:00Z or 2026-12-24T19:00:00+01:00\n", *at)
			return 2
		}
		due = t
	}
	text := *body
	if text == "" && *size > 0 {
		text = strings.Repeat("x", *size)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tp, stopTracing, err := setupTracing(ctx, "qmq-send", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "qmq send: %v\n", err)
		return 2
	}
	defer stopTracing()
	p, err := client.NewProducer(ctx, *meta, client.WithAppCode("qmq-cli"), client.WithLogger(quietLogger(stderr)), client.WithTracerProvider(tp))
	if err != nil {
		fmt.Fprintf(stderr, "qmq send: %v\n", err)
		return 1
	}
	defer p.Close(context.Background())
	start := time.Now()
	for i := 0; i < *count; i++ {
		m := p.NewMessage(*subject)
		if text != "" {
			m.SetBody(text)
		}
		for _, t := range tags {
			m.AddTag(t)
		}
		switch {
		case !due.IsZero():
			m.SetDelayUntil(due)
		case *delay > 0:
			m.SetDelay(*delay)
		}
		for _, kv := range props {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				fmt.Fprintf(stderr, "qmq send: --prop %q: want key=value\n", kv)
				return 2
			}
			m.SetProperty(k, v)
		}
		if err := p.Send(ctx, m); err != nil {
			fmt.Fprintf(stderr, "qmq send: message %d (%s): %v\n", i+1, m.ID(), err)
			return 1
		}
		if *count == 1 {
			if d := m.ScheduledAt(); !d.IsZero() {
				fmt.Fprintf(stdout, "sent %s (due %s)\n", m.ID(), d.Format(time.RFC3339Nano))
			} else {
				fmt.Fprintf(stdout, "sent %s\n", m.ID())
			}
		}
	}
	if *count > 1 {
		took := time.Since(start)
		fmt.Fprintf(stdout, "sent %d messages to %s in %s (%.0f msg/s)\n", *count, *subject, took.Round(time.Millisecond), float64(*count)/took.Seconds())
	}
	return 0
}

// consumedJSON is what `qmq consume --json` prints per message.
type consumedJSON struct {
	ID         string            `json:"id"`
	Subject    string            `json:"subject"`
	Tags       []string          `json:"tags"`
	Properties map[string]string `json:"properties"`
	Body       string            `json:"body"`
	Times      int               `json:"times"`
	// ScheduledAt is a delay message's due time (RFC 3339, ms); absent otherwise.
	ScheduledAt string `json:"scheduledAt,omitempty"`
}

// runConsume prints messages of a subject as they arrive and acks them.
func runConsume(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmq consume", flag.ContinueOnError)
	fs.SetOutput(stderr)
	meta := fs.String("meta", defaultMeta, "meta.server.endpoint")
	subject := fs.String("subject", "", "subject (required)")
	group := fs.String("group", "", "consumer group (required unless --broadcast)")
	count := fs.Int("count", 0, "stop after this many messages (0 = until Ctrl-C)")
	broadcast := fs.Bool("broadcast", false, "broadcast: this consumer gets every message")
	mode := fs.String("tag-mode", "or", "how --tag values combine: or (any) or and (all)")
	asJSON := fs.Bool("json", false, "one JSON object per message")
	var tags stringList
	fs.Var(&tags, "tag", "only messages with this tag (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *subject == "" || (*group == "" && !*broadcast) {
		fmt.Fprintln(stderr, "qmq consume: --subject and --group (or --broadcast) are required")
		return 2
	}
	opts := []client.ConsumerOption{client.WithLogger(quietLogger(stderr))}
	if *broadcast {
		opts = append(opts, client.WithBroadcast())
	}
	if len(tags) > 0 {
		tm := client.TagOr
		switch *mode {
		case "or":
		case "and":
			tm = client.TagAnd
		default:
			fmt.Fprintf(stderr, "qmq consume: --tag-mode %q: want and or or\n", *mode)
			return 2
		}
		opts = append(opts, client.WithTags(tm, tags...))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tp, stopTracing, err := setupTracing(ctx, "qmq-consume", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "qmq consume: %v\n", err)
		return 2
	}
	defer stopTracing()
	c, err := client.NewConsumer(ctx, *meta, *subject, *group, append(opts, client.WithTracerProvider(tp))...)
	if err != nil {
		fmt.Fprintf(stderr, "qmq consume: %v\n", err)
		return 1
	}
	defer c.Close()
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	got := 0
	for *count == 0 || got < *count {
		want := 50
		if *count > 0 {
			want = min(want, *count-got)
		}
		msgs, err := c.Pull(ctx, want)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			fmt.Fprintf(stderr, "qmq consume: %v (retrying)\n", err)
			_ = backoff.Sleep(ctx, time.Second) // Ctrl-C ends the wait
			continue
		}
		for _, m := range msgs {
			if *asJSON {
				j := consumedJSON{ID: m.ID(), Subject: m.Subject(), Tags: m.Tags(), Properties: m.Properties(), Body: m.Body(), Times: m.Times()}
				if d := m.ScheduledAt(); !d.IsZero() {
					j.ScheduledAt = d.UTC().Format("2006-01-02T15:04:05.000Z07:00")
				}
				_ = enc.Encode(j)
			} else {
				fmt.Fprintf(stdout, "%s %s %q\n", m.Subject(), m.ID(), m.Body())
			}
			m.Ack(nil)
			got++
		}
	}
	return 0
}

// quietLogger keeps client chatter to warnings on stderr.
func quietLogger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "client", Level: hclog.Warn, Output: w})
}
