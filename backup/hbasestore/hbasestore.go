package hbasestore

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/dic"
	"github.com/qmq-go/qmq/backup/rowstore"
)

// Store is a backup.Store in HBase.
type Store struct {
	*rowstore.Store
	c *client
}

var _ backup.Store = (*Store)(nil)

// New is a Store on the REST gateway of s with names mapped by dict (the
// metaserver database's qmq_dic, shared with QMQ's Java backup). It does
// not contact the gateway: the first Put or query does, and fails with
// ErrUnavailable if it is down.
func New(s Settings, dict dic.Dictionary) (*Store, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Logger == nil {
		s.Logger = hclog.NewNullLogger()
	}
	c, err := newClient(s)
	if err != nil {
		return nil, err
	}
	return &Store{Store: rowstore.New(tables{c}, dict, rowstore.Options{Location: s.Location, Name: "HBase store at " + s.RestURL}), c: c}, nil
}

// CreateTables creates the tables that do not exist (QMQ's four and
// qmq_backup_detail) and returns the names of those it created.
func (s *Store) CreateTables(ctx context.Context) ([]string, error) {
	return createTables(ctx, s.c)
}

// CreateTablesAt creates the backup's missing tables on the gateway of
// settings (`qmq query create-hbase-tables`), with settings.RetentionDays
// as the families' TTL.
func CreateTablesAt(ctx context.Context, settings Settings) ([]string, error) {
	if err := settings.Validate(); err != nil {
		return nil, err
	}
	c, err := newClient(settings)
	if err != nil {
		return nil, err
	}
	defer c.close()
	return createTables(ctx, c)
}

func createTables(ctx context.Context, c *client) ([]string, error) {
	var created []string
	for _, t := range rowstore.QMQTables {
		ok, err := c.createTable(ctx, t)
		if err != nil {
			return created, fmt.Errorf("create the backup's HBase tables: %w", err)
		}
		if ok {
			created = append(created, c.name(t))
		}
	}
	return created, nil
}

// tables is rowstore.Tables over the REST client.
type tables struct{ c *client }

func (t tables) Put(ctx context.Context, rows []rowstore.Row) error { return t.c.put(ctx, rows) }

func (t tables) Get(ctx context.Context, table rowstore.Table, key []byte) ([]byte, bool, error) {
	return t.c.get(ctx, table, key)
}

func (t tables) Scan(ctx context.Context, s rowstore.Scan, fn func(k, v []byte) bool) error {
	return t.c.scan(ctx, s, fn)
}

// Sync has nothing to do: the REST gateway answers a Put once HBase has
// it in its write-ahead log.
func (t tables) Sync(context.Context) error { return nil }

func (t tables) Close() error {
	t.c.close()
	return nil
}
