package loadgen

import (
	"errors"
	"flag"
	"time"

	"github.com/qmq-go/qmq/client"
)

// Flags are the workload flags `qmq bench` and the NATS peer share, so that
// both describe a run the same way.
type Flags struct {
	subjects, size, producers, consumers, count *int
	groups                                      *int
	batch, senders, pullBatch                   *int
	duration, warmup                            *time.Duration
	mode                                        *string
}

// RegisterFlags defines the shared workload flags on fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	return &Flags{
		subjects:  fs.Int("subjects", 1, "subjects the messages are spread over (a consumer per subject per --consumers)"),
		size:      fs.Int("size", 1024, "message body size in bytes"),
		producers: fs.Int("producers", 1, "producers (each with its own connections)"),
		consumers: fs.Int("consumers", 1, "members of the consumer group / durable (each subscribes to every subject)"),
		groups:    fs.Int("groups", 1, "consume: consumer groups reading every message (the figure is deliveries per second)"),
		count:     fs.Int("count", 0, "consume: messages to pre-fill (0 = what --duration of producing gives)"),
		duration:  fs.Duration("duration", 5*time.Second, "length of each workload"),
		warmup:    fs.Duration("warmup", time.Second, "unmeasured produce run before the produce workload (0 = none)"),
		mode:      fs.String("mode", "all", "produce, consume, e2e, a comma-separated list, or all"),
		batch:     fs.Int("batch", 0, "qmq producer batch size (default the client's)"),
		senders:   fs.Int("senders", 0, "qmq producer sender goroutines (default the client's)"),
		pullBatch: fs.Int("pull-batch", 0, "qmq consumer pull batch (default the client's)"),
	}
}

// Config returns the parsed workload and modes, or what is wrong with them.
func (f *Flags) Config() (Config, []string, error) {
	modes, err := Modes(*f.mode)
	if err != nil {
		return Config{}, nil, err
	}
	c := Config{Subjects: *f.subjects, Size: *f.size, Producers: *f.producers, Consumers: *f.consumers,
		Duration: *f.duration, Count: *f.count, Warmup: *f.warmup, Groups: *f.groups}
	if c.Subjects < 1 || c.Size < 0 || c.Producers < 1 || c.Consumers < 1 || c.Duration <= 0 || c.Count < 0 || c.Warmup < 0 || c.Groups < 1 {
		return Config{}, nil, errors.New("--subjects, --producers, --consumers, --groups and --duration must be positive; --size, --count and --warmup not negative")
	}
	return c, modes, nil
}

// TuneQMQ applies --batch, --senders and --pull-batch to b.
func (f *Flags) TuneQMQ(b *QMQ) {
	if *f.batch > 0 {
		b.ProducerOptions = append(b.ProducerOptions, client.WithBatchSize(*f.batch))
	}
	if *f.senders > 0 {
		b.ProducerOptions = append(b.ProducerOptions, client.WithSenders(*f.senders))
	}
	if *f.pullBatch > 0 {
		b.ConsumerOptions = append(b.ConsumerOptions, client.WithPullBatch(*f.pullBatch))
	}
}
