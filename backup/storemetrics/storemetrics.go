package storemetrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/internal/metricsutil"
)

// Store is a backup.Store that measures another.
type Store struct {
	backup.Store
	seconds *prometheus.HistogramVec
	entries *prometheus.CounterVec
	reg     prometheus.Registerer
}

// Wrap measures s as store type typ ("pebble", "hbase") on reg; Close
// closes s and unregisters the series.
func Wrap(s backup.Store, typ string, reg prometheus.Registerer) (*Store, error) {
	m := &Store{
		Store: s,
		reg:   reg,
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "qmq_backup_store_operation_seconds",
			Help:        "How long backup store operations took, by operation and result (ok, not_found, bad_query, unavailable, error).",
			ConstLabels: prometheus.Labels{"store": typ},
			Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op", "result"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "qmq_backup_store_written_total",
			Help:        "Entries written to the backup store, by kind (message, retry, dead, record).",
			ConstLabels: prometheus.Labels{"store": typ},
		}, []string{"kind"}),
	}
	if err := metricsutil.RegisterAll(reg, m.seconds, m.entries); err != nil {
		return nil, err
	}
	return m, nil
}

func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, backup.ErrNotFound):
		return "not_found"
	case errors.Is(err, backup.ErrBadQuery):
		return "bad_query"
	case errors.Is(err, backup.ErrUnavailable):
		return "unavailable"
	}
	return "error"
}

func (m *Store) observe(op string, start time.Time, err error) {
	m.seconds.WithLabelValues(op, result(err)).Observe(time.Since(start).Seconds())
}

var kindNames = map[backup.Kind]string{backup.KindNormal: "message", backup.KindRetry: "retry", backup.KindDead: "dead"}

func (m *Store) PutMessages(ctx context.Context, msgs []backup.Message) error {
	start := time.Now()
	err := m.Store.PutMessages(ctx, msgs)
	m.observe("put_messages", start, err)
	if err == nil {
		for _, msg := range msgs {
			m.entries.WithLabelValues(kindNames[msg.Kind]).Inc()
		}
	}
	return err
}

func (m *Store) PutRecords(ctx context.Context, recs []backup.Record) error {
	start := time.Now()
	err := m.Store.PutRecords(ctx, recs)
	m.observe("put_records", start, err)
	if err == nil {
		m.entries.WithLabelValues("record").Add(float64(len(recs)))
	}
	return err
}

func (m *Store) FindMessages(ctx context.Context, q backup.MessageQuery) (backup.MessagePage, error) {
	start := time.Now()
	p, err := m.Store.FindMessages(ctx, q)
	m.observe("find_messages", start, err)
	return p, err
}

func (m *Store) FindDeadLetters(ctx context.Context, q backup.MessageQuery) (backup.MessagePage, error) {
	start := time.Now()
	p, err := m.Store.FindDeadLetters(ctx, q)
	m.observe("find_dead_letters", start, err)
	return p, err
}

func (m *Store) FindRetries(ctx context.Context, q backup.MessageQuery) (backup.MessagePage, error) {
	start := time.Now()
	p, err := m.Store.FindRetries(ctx, q)
	m.observe("find_retries", start, err)
	return p, err
}

func (m *Store) FindMessage(ctx context.Context, ref backup.MessageRef) (backup.Message, error) {
	start := time.Now()
	msg, err := m.Store.FindMessage(ctx, ref)
	m.observe("find_message", start, err)
	return msg, err
}

func (m *Store) Sync(ctx context.Context) error {
	start := time.Now()
	err := m.Store.Sync(ctx)
	m.observe("sync", start, err)
	return err
}

func (m *Store) FindRecords(ctx context.Context, q backup.RecordQuery) ([]backup.Record, error) {
	start := time.Now()
	r, err := m.Store.FindRecords(ctx, q)
	m.observe("find_records", start, err)
	return r, err
}

// Close closes the store and unregisters the series.
func (m *Store) Close() error {
	metricsutil.UnregisterAll(m.reg, m.seconds, m.entries)
	return m.Store.Close()
}
