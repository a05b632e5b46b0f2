// Package loadgen is the workload harness behind `qmq bench` and the peer
// comparison in bench/cmd/peer: produce throughput, consume throughput with
// per-message acks, and end-to-end latency at a fixed rate, written against a
// small Backend interface so that the same code drives qmq (NewQMQ) and other
// systems (bench/cmd/peer's NATS JetStream backend).
//
// It is a benchmark harness, not part of the Go SDK, hence internal/. The
// bench module (github.com/qmq-go/qmq/bench) may still import it: Go allows
// an internal package to every importer whose import path lies under the
// internal directory's parent, across module boundaries (as gopls does with
// golang.org/x/tools/internal).
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
)

// ErrBusy says the publisher's queue is full: try again shortly.
var ErrBusy = errors.New("bench: publisher busy")

// Backend is one messaging system under test. Subjects are numbered
// 0..n-1; the backend maps them to its own names.
type Backend interface {
	NewPublisher(ctx context.Context) (Publisher, error)
	// NewSubscriber adds a member to the run's consumer group (or durable).
	// It receives at once; fn is called for every message (stamp < 0 for
	// sentinel/warm-up messages), which is then acknowledged individually.
	NewSubscriber(ctx context.Context, idx int, fn func(subject int, stamp int64)) (Subscriber, error)
}

type Publisher interface {
	// Publish queues one message for asynchronous sending; ErrBusy
	// means the send window is full.
	Publish(subject int, stamp int64) error
	// Acked counts the sends the server acknowledged (ok) or failed.
	Acked() (ok, failed int64)
	// Close waits for outstanding sends (bounded by ctx).
	Close(ctx context.Context) error
}

type Subscriber interface{ Close() error }

// Grouped is a Backend that can read the same subjects as other, independent
// consumer groups (QMQ groups, JetStream durables): Group(0) is the backend
// itself, Group(i) the i-th other group (Config.Groups).
type Grouped interface {
	Group(i int) Backend
}

// groupBackends returns the backends of cfg.Groups consumer groups.
func groupBackends(b Backend, groups int) ([]Backend, error) {
	if groups <= 1 {
		return []Backend{b}, nil
	}
	g, ok := b.(Grouped)
	if !ok {
		return nil, fmt.Errorf("%d consumer groups: this system's harness has only one", groups)
	}
	out := make([]Backend, groups)
	for i := range out {
		out[i] = g.Group(i)
	}
	return out, nil
}

type Config struct {
	Subjects  int
	Size      int
	Producers int
	Consumers int
	Duration  time.Duration
	Rate      int // msg/s over all producers; 0 = as fast as possible
	Count     int // consume: messages to pre-fill (0 = what --duration of produce gives)
	// Groups is the number of consumer groups the consume workload reads
	// the pre-filled messages with, each receiving every message (the
	// backend must implement Grouped when > 1); 0 or 1 = one group.
	Groups int
	// Warmup is an unmeasured produce run before the produce workload, so that
	// one-time costs (connections, routes, and on the server every subject's
	// files: a thousand subjects take seconds to create on a slow disk) stay
	// out of the figures. 0 = none.
	Warmup time.Duration
	// System names the system under test in progress samples (RunModes
	// sets it).
	System string
	// Progress, if set, is called every ProgressInterval (default 1 s)
	// while a workload runs, from a goroutine of its own.
	Progress         func(Sample)
	ProgressInterval time.Duration
}

type Result struct {
	System      string  `json:"system"`
	Mode        string  `json:"mode"`
	Subjects    int     `json:"subjects"`
	Size        int     `json:"size"`
	Producers   int     `json:"producers"`
	Consumers   int     `json:"consumers"`
	Rate        int     `json:"rate,omitempty"`
	Seconds     float64 `json:"seconds"`
	Messages    int64   `json:"messages"`
	Failed      int64   `json:"failed,omitempty"`
	Missing     int64   `json:"missing,omitempty"`
	MsgPerSec   float64 `json:"msg_per_sec"`
	MiBPerSec   float64 `json:"mib_per_sec"`
	LatencyP50  float64 `json:"latency_p50_ms,omitempty"`
	LatencyP90  float64 `json:"latency_p90_ms,omitempty"`
	LatencyP99  float64 `json:"latency_p99_ms,omitempty"`
	LatencyP999 float64 `json:"latency_p999_ms,omitempty"`
	LatencyMax  float64 `json:"latency_max_ms,omitempty"`
	// Series is the throughput of each second of the run and Percentiles
	// the e2e latency curve, for reports (left out of --json, which stays
	// one line per workload).
	Series      []Point      `json:"-"`
	Percentiles []Percentile `json:"-"`
}

func (r *Result) finish(cfg Config, took time.Duration) {
	r.Subjects, r.Size, r.Producers, r.Consumers = cfg.Subjects, cfg.Size, cfg.Producers, cfg.Consumers
	r.Seconds = took.Seconds()
	if r.Seconds > 0 {
		r.MsgPerSec = float64(r.Messages) / r.Seconds
		r.MiBPerSec = r.MsgPerSec * float64(cfg.Size) / (1 << 20)
	}
}

func (r *Result) String() string {
	s := fmt.Sprintf("%-8s %-7s %9d msgs in %6.2fs = %9.0f msg/s (%6.1f MiB/s)", r.System, r.Mode, r.Messages, r.Seconds, r.MsgPerSec, r.MiBPerSec)
	if r.Mode == "e2e" {
		s += fmt.Sprintf("  latency ms p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f (rate %d/s)", r.LatencyP50, r.LatencyP90, r.LatencyP99, r.LatencyP999, r.LatencyMax, r.Rate)
	}
	if r.Failed > 0 {
		s += fmt.Sprintf("  failed %d", r.Failed)
	}
	if r.Missing > 0 {
		s += fmt.Sprintf("  missing %d", r.Missing)
	}
	return s
}

type benchDispatch struct {
	confirmed []atomic.Bool
	handler   atomic.Pointer[func(subject int, stamp int64)]
}

func newBenchDispatch(subjects int) *benchDispatch {
	return &benchDispatch{confirmed: make([]atomic.Bool, subjects)}
}

func (d *benchDispatch) fn(subject int, stamp int64) {
	if stamp < 0 {
		if subject >= 0 && subject < len(d.confirmed) {
			d.confirmed[subject].Store(true)
		}
		return
	}
	if h := d.handler.Load(); h != nil {
		(*h)(subject, stamp)
	}
}

func (d *benchDispatch) set(h func(subject int, stamp int64)) { d.handler.Store(&h) }

// publishRetry publishes, waiting while the publisher is busy.
func publishRetry(ctx context.Context, p Publisher, subject int, stamp int64) error {
	for {
		err := p.Publish(subject, stamp)
		if !errors.Is(err, ErrBusy) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func waitAcked(ctx context.Context, p Publisher, want int64) error {
	for {
		ok, failed := p.Acked()
		if ok+failed >= want {
			if failed > 0 {
				return fmt.Errorf("%d warm-up sends failed", failed)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("warm-up: %d of %d sends acknowledged: %w", ok, want, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// confirmGroup sends sentinels to every subject until the running
// subscribers have seen one on each: then the consumer group exists on the
// server and sees every later message (QMQ starts new groups at the current
// end of the log).
func confirmGroup(ctx context.Context, p Publisher, d *benchDispatch) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		pending := 0
		for i := range d.confirmed {
			if !d.confirmed[i].Load() {
				pending++
				if err := publishRetry(ctx, p, i, -1); err != nil {
					return err
				}
			}
		}
		if pending == 0 {
			return nil
		}
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			all := true
			for i := range d.confirmed {
				if !d.confirmed[i].Load() {
					all = false
					break
				}
			}
			if all {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("consumer group not ready: %w", ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

type produceOutcome struct {
	res     Result
	totalOK int64 // acknowledged by the time the publishers closed
}

// benchProduce runs cfg.Producers publishers for cfg.Duration (at cfg.Rate
// msg/s in total when > 0, else flat out) after a warm-up of one message
// per subject and publisher; it counts the sends acknowledged by the end of
// the duration, then waits for the rest.
//
// metered says this run is the produce workload itself (not a warm-up or a
// pre-fill): only then are progress samples and the series taken.
func benchProduce(ctx context.Context, b Backend, cfg Config, count int, metered bool) (produceOutcome, error) {
	pubs := make([]Publisher, 0, cfg.Producers)
	closeAll := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, p := range pubs {
			_ = p.Close(cctx)
		}
	}
	for i := 0; i < cfg.Producers; i++ {
		p, err := b.NewPublisher(ctx)
		if err != nil {
			closeAll()
			return produceOutcome{}, err
		}
		pubs = append(pubs, p)
	}
	// Warm-up: routes for every subject, connections.
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	for _, p := range pubs {
		for s := 0; s < cfg.Subjects; s++ {
			if err := publishRetry(wctx, p, s, -1); err != nil {
				wcancel()
				closeAll()
				return produceOutcome{}, err
			}
		}
	}
	for _, p := range pubs {
		if err := waitAcked(wctx, p, int64(cfg.Subjects)); err != nil {
			wcancel()
			closeAll()
			return produceOutcome{}, err
		}
	}
	wcancel()
	base := make([]int64, len(pubs))
	for i, p := range pubs {
		base[i], _ = p.Acked()
	}
	var published atomic.Int64
	start := time.Now()
	var m *meter
	if metered {
		m = startMeter(cfg, "produce", func() int64 {
			var n int64
			for i, p := range pubs {
				ok, _ := p.Acked()
				n += ok - base[i]
			}
			return n
		}, nil)
	}
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subject := i % cfg.Subjects
			next := func() int {
				s := subject
				subject++
				if subject == cfg.Subjects {
					subject = 0
				}
				return s
			}
			limit := -1
			if count > 0 {
				limit = count / cfg.Producers
				if i < count%cfg.Producers {
					limit++
				}
			}
			sent := 0
			if cfg.Rate <= 0 {
				for (limit < 0 && time.Now().Before(deadline)) || (limit >= 0 && sent < limit) {
					if publishRetry(ctx, p, next(), time.Now().UnixNano()) != nil {
						return
					}
					sent++
				}
				published.Add(int64(sent))
				return
			}
			rate := float64(cfg.Rate) / float64(cfg.Producers)
			// A quarter of the interval between two messages, at least 200 µs:
			// a thousand producers each at 10 msg/s would otherwise wake 5
			// million times a second and the harness would measure itself.
			// Stamps are taken when a message is published, so the sleep
			// adds nothing to the latency measured.
			tick := max(200*time.Microsecond, min(20*time.Millisecond, time.Duration(float64(time.Second)/rate/4)))
			for ctx.Err() == nil {
				el := time.Since(start)
				if el >= cfg.Duration || (limit >= 0 && sent >= limit) {
					break
				}
				target := int(el.Seconds() * rate)
				for sent < target && (limit < 0 || sent < limit) {
					if publishRetry(ctx, p, next(), time.Now().UnixNano()) != nil {
						published.Add(int64(sent))
						return
					}
					sent++
				}
				time.Sleep(tick)
			}
			published.Add(int64(sent))
		}()
	}
	var atDeadline, failedAtDeadline int64
	var took time.Duration
	if count > 0 {
		wg.Wait()
	} else {
		select {
		case <-time.After(time.Until(deadline)):
		case <-ctx.Done():
		}
	}
	took = time.Since(start)
	var series []Point
	if m != nil {
		series = m.finish()
	}
	for i, p := range pubs {
		ok, failed := p.Acked()
		atDeadline += ok - base[i]
		failedAtDeadline += failed
	}
	wg.Wait()
	closeAll()
	var total, failed int64
	for i, p := range pubs {
		ok, f := p.Acked()
		total += ok - base[i]
		failed += f
	}
	out := produceOutcome{totalOK: total}
	out.res.Mode = "produce"
	out.res.Rate = cfg.Rate
	out.res.Messages = atDeadline
	if count > 0 {
		out.res.Messages = total
		took = time.Since(start)
	}
	out.res.Failed = failed
	out.res.Series = series
	out.res.finish(cfg, took)
	if err := ctx.Err(); err != nil {
		return out, err
	}
	return out, nil
}

func newSubscribers(ctx context.Context, b Backend, n int, fn func(int, int64)) ([]Subscriber, func(), error) {
	var subs []Subscriber
	closeAll := func() {
		for _, s := range subs {
			_ = s.Close()
		}
	}
	for i := 0; i < n; i++ {
		s, err := b.NewSubscriber(ctx, i, fn)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		subs = append(subs, s)
	}
	return subs, closeAll, nil
}

// benchConsume creates the consumer group (confirmed with sentinels), stops
// its members, pre-fills the subjects, then measures how fast fresh members
// of the group receive and acknowledge every message. With cfg.Groups > 1
// every group does so at once, and the figure is deliveries (messages times
// groups) per second.
func benchConsume(ctx context.Context, b Backend, cfg Config) (Result, error) {
	groups, err := groupBackends(b, cfg.Groups)
	if err != nil {
		return Result{}, err
	}
	p, err := b.NewPublisher(ctx)
	if err != nil {
		return Result{}, err
	}
	for _, gb := range groups {
		d := newBenchDispatch(cfg.Subjects)
		_, closeSubs, err := newSubscribers(ctx, gb, cfg.Consumers, d.fn)
		if err == nil {
			err = confirmGroup(ctx, p, d)
			closeSubs()
		}
		if err != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = p.Close(cctx)
			cancel()
			return Result{}, err
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_ = p.Close(cctx)
	cancel()
	fill, err := benchProduce(ctx, b, cfg, cfg.Count, false)
	if err != nil {
		return Result{}, fmt.Errorf("pre-fill: %w", err)
	}
	want := fill.totalOK * int64(len(groups))
	var got atomic.Int64
	done := make(chan struct{})
	var doneOnce sync.Once
	start := time.Now()
	m := startMeter(cfg, "consume", got.Load, nil)
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, gb := range groups {
		d2 := newBenchDispatch(cfg.Subjects)
		d2.set(func(int, int64) {
			if got.Add(1) >= want {
				doneOnce.Do(func() { close(done) })
			}
		})
		_, closeSubs, err := newSubscribers(ctx, gb, cfg.Consumers, d2.fn)
		if err != nil {
			m.finish()
			closeAll()
			return Result{}, err
		}
		closers = append(closers, closeSubs)
	}
	limit := max(60*time.Second, 4*cfg.Duration)
	if want == 0 {
		doneOnce.Do(func() { close(done) })
	}
	select {
	case <-done:
	case <-time.After(limit):
	case <-ctx.Done():
	}
	took := time.Since(start)
	n := got.Load()
	series := m.finish()
	closeAll()
	res := Result{Mode: "consume", Messages: n, Missing: max(want-n, 0), Series: series}
	res.finish(cfg, took)
	return res, ctx.Err()
}

// benchE2E measures produce→consume latency at cfg.Rate msg/s: the
// producer stamps the send time, the consumer computes now - stamp.
func benchE2E(ctx context.Context, b Backend, cfg Config) (Result, error) {
	if cfg.Rate <= 0 {
		cfg.Rate = 10000
	}
	d := newBenchDispatch(cfg.Subjects)
	var mu sync.Mutex
	lat := make([]int64, 0, int(float64(cfg.Rate)*cfg.Duration.Seconds())+16)
	var got atomic.Int64
	d.set(func(_ int, stamp int64) {
		l := time.Now().UnixNano() - stamp
		mu.Lock()
		lat = append(lat, l)
		mu.Unlock()
		got.Add(1)
	})
	_, closeSubs, err := newSubscribers(ctx, b, cfg.Consumers, d.fn)
	if err != nil {
		return Result{}, err
	}
	defer closeSubs()
	p, err := b.NewPublisher(ctx)
	if err != nil {
		return Result{}, err
	}
	err = confirmGroup(ctx, p, d)
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_ = p.Close(cctx)
	cancel()
	if err != nil {
		return Result{}, err
	}
	m := startMeter(cfg, "e2e", got.Load, func() []int64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(lat)
	})
	out, err := benchProduce(ctx, b, cfg, 0, false)
	if err != nil {
		m.finish()
		return Result{}, err
	}
	// Wait for the tail.
	tail := time.Now().Add(10 * time.Second)
	for got.Load() < out.totalOK && time.Now().Before(tail) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	series := m.finish()
	mu.Lock()
	sorted := slices.Clone(lat)
	mu.Unlock()
	slices.Sort(sorted)
	res := Result{Mode: "e2e", Rate: cfg.Rate, Messages: int64(len(sorted)), Failed: out.res.Failed, Missing: max(out.totalOK-int64(len(sorted)), 0),
		Series: series}
	res.finish(cfg, time.Duration(out.res.Seconds*float64(time.Second)))
	if len(sorted) > 0 {
		res.LatencyP50, res.LatencyP90 = percentileOf(sorted, 0.50), percentileOf(sorted, 0.90)
		res.LatencyP99, res.LatencyP999 = percentileOf(sorted, 0.99), percentileOf(sorted, 0.999)
		res.LatencyMax = float64(sorted[len(sorted)-1]) / 1e6
		for _, q := range reportQuantiles {
			res.Percentiles = append(res.Percentiles, Percentile{Quantile: q, Millis: percentileOf(sorted, q)})
		}
	}
	return res, ctx.Err()
}

// RunModes runs the workloads named in modes ("all" = produce, consume, e2e).
func RunModes(ctx context.Context, b Backend, system string, cfg Config, modes []string, each func(Result)) error {
	cfg.System = system
	for _, m := range modes {
		var res Result
		var err error
		switch m {
		case "produce":
			// The warm-up precedes the produce workload only: its messages
			// would be a backlog for the consume and e2e workloads' groups.
			if cfg.Warmup > 0 {
				w := cfg
				w.Duration, w.Rate = cfg.Warmup, 0
				if _, err := benchProduce(ctx, b, w, 0, false); err != nil {
					return fmt.Errorf("%s warm-up: %w", system, err)
				}
			}
			var out produceOutcome
			out, err = benchProduce(ctx, b, cfg, 0, true)
			res = out.res
		case "consume":
			res, err = benchConsume(ctx, b, cfg)
		case "e2e":
			res, err = benchE2E(ctx, b, cfg)
		default:
			return fmt.Errorf("unknown mode %q (want produce, consume, e2e or all)", m)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", system, m, err)
		}
		res.System = system
		each(res)
	}
	return nil
}

func Modes(mode string) ([]string, error) {
	if mode == "all" {
		return []string{"produce", "consume", "e2e"}, nil
	}
	var out []string
	for _, m := range strings.Split(mode, ",") {
		switch m = strings.TrimSpace(m); m {
		case "produce", "consume", "e2e":
			out = append(out, m)
		default:
			return nil, fmt.Errorf("--mode %q: want produce, consume, e2e or all", m)
		}
	}
	return out, nil
}

// The qmq backend.

// benchStampKey carries the send time (Unix nanoseconds) of a bench message.
const benchStampKey = "bench_ts"

type QMQ struct {
	meta     string
	subjects []string
	group    string
	body     string
	log      hclog.Logger
	// Delay, when positive, sends every message with this delay (SetDelay):
	// producers route them to the delay groups, and the produce workload
	// measures how fast delay servers receive (qmq bench --delay).
	Delay time.Duration
	// Extra options for the producers and consumers the workloads create.
	ProducerOptions []client.ProducerOption
	ConsumerOptions []client.ConsumerOption
}

// QMQSubjectPrefix starts every subject a QMQ workload creates
// (qmq.bench.<runID>.s<N>), so that they are told apart from an
// application's subjects in ListSubjectRoutes and under store.root.
const QMQSubjectPrefix = "qmq.bench."

func NewQMQ(meta, runID string, subjects, size int, log hclog.Logger) *QMQ {
	b := &QMQ{meta: meta, group: "bench_" + runID, body: strings.Repeat("x", size), log: log}
	for i := 0; i < subjects; i++ {
		b.subjects = append(b.subjects, fmt.Sprintf("%s%s.s%d", QMQSubjectPrefix, runID, i))
	}
	return b
}

// Group returns a view of b that consumes as the i-th consumer group of
// the run (i = 0: b itself).
func (b *QMQ) Group(i int) Backend {
	if i == 0 {
		return b
	}
	c := *b
	c.group = fmt.Sprintf("%s_g%d", b.group, i)
	return &c
}

type qmqBenchPublisher struct {
	b      *QMQ
	p      *client.Producer
	ok     atomic.Int64
	failed atomic.Int64
	done   func(*client.Message, error)
}

func (b *QMQ) NewPublisher(ctx context.Context) (Publisher, error) {
	opts := append([]client.ProducerOption{client.WithAppCode("qmq-bench"), client.WithLogger(b.log)}, b.ProducerOptions...)
	p, err := client.NewProducer(ctx, b.meta, opts...)
	if err != nil {
		return nil, err
	}
	q := &qmqBenchPublisher{b: b, p: p}
	q.done = func(_ *client.Message, err error) {
		if err != nil {
			q.failed.Add(1)
		} else {
			q.ok.Add(1)
		}
	}
	return q, nil
}

func (q *qmqBenchPublisher) Publish(subject int, stamp int64) error {
	m := q.p.NewMessage(q.b.subjects[subject])
	m.SetBody(q.b.body)
	m.SetProperty(benchStampKey, strconv.FormatInt(stamp, 10))
	if q.b.Delay > 0 {
		m.SetDelay(q.b.Delay)
	}
	err := q.p.SendAsync(m, q.done)
	if errors.Is(err, client.ErrQueueFull) {
		return ErrBusy
	}
	return err
}

func (q *qmqBenchPublisher) Acked() (int64, int64) { return q.ok.Load(), q.failed.Load() }

func (q *qmqBenchPublisher) Close(ctx context.Context) error { return q.p.Close(ctx) }

type qmqBenchSubscriber struct {
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	consumers []*client.Consumer
}

func (b *QMQ) NewSubscriber(ctx context.Context, idx int, fn func(int, int64)) (Subscriber, error) {
	rctx, cancel := context.WithCancel(context.Background())
	s := &qmqBenchSubscriber{cancel: cancel}
	opts := append([]client.ConsumerOption{client.WithLogger(b.log), client.WithAppCode("qmq-bench"), client.WithPullTimeout(time.Second)}, b.ConsumerOptions...)
	for i, subject := range b.subjects {
		c, err := client.NewConsumer(ctx, b.meta, subject, b.group, opts...)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.consumers = append(s.consumers, c)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for rctx.Err() == nil {
				msgs, err := c.Pull(rctx, 100)
				if err != nil {
					if rctx.Err() == nil && !errors.Is(err, client.ErrClosed) {
						b.log.Warn("bench pull failed", "subject", subject, "error", err)
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				for _, m := range msgs {
					stamp, err := strconv.ParseInt(m.Property(benchStampKey), 10, 64)
					if err != nil {
						stamp = -1
					}
					fn(i, stamp)
					m.Ack(nil)
				}
			}
		}()
	}
	return s, nil
}

func (s *qmqBenchSubscriber) Close() error {
	s.cancel()
	s.wg.Wait()
	var errs []error
	for _, c := range s.consumers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
