package pebblestore

import (
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/rowkey"
	"github.com/qmq-go/qmq/backup/rowstore"
	"github.com/qmq-go/qmq/backup/storetest"
)

func open(t *testing.T, dir string, mod func(*Settings)) *Store {
	t.Helper()
	s := DefaultSettings()
	s.Dir = dir
	if mod != nil {
		mod(&s)
	}
	st, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) backup.Store { return open(t, t.TempDir(), nil) })
}

func TestConformanceWithoutIDIndex(t *testing.T) {
	storetest.Run(t, func(t *testing.T) backup.Store {
		return open(t, t.TempDir(), func(s *Settings) { s.IDIndex = false; s.Sync = false })
	})
}

// A QMQ-style id goes to the ordered index, an id with a space to the md5
// index, and a store written before the ordered index (the id under its
// md5 only) still answers by id.
func TestIDQueriesBothIndexes(t *testing.T) {
	st := open(t, t.TempDir(), func(s *Settings) { s.Sync = false })
	defer st.Close()
	at := time.Now().Add(-time.Minute)
	msgs := []backup.Message{
		{Subject: "s", MessageID: "261207.184233.10.0.0.5.4242.1", BrokerGroup: "bg", Sequence: 1, CreateTime: at},
		{Subject: "s", MessageID: "id with spaces", BrokerGroup: "bg", Sequence: 2, CreateTime: at},
	}
	if err := st.PutMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	// Written as before the ordered index: the md5 index row only.
	sid, _, _ := st.Dictionary().Lookup(ctx, "s")
	bg, _, _ := st.Dictionary().Lookup(ctx, "bg")
	old := "261207.184233.10.0.0.5.4242.2"
	iv, err := rowkey.IndexValue{Sequence: 3, CreateTimeMs: at.UnixMilli(), BrokerGroup: "bg", MessageID: old}.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := rowkey.SeqKey(3)
	tk := rowkey.TimeKey(at, time.Local)
	if err := st.tables.Put(ctx, []rowstore.Row{{Table: rowstore.IDIndex, Key: rowkey.IDIndexKey(sid, rowkey.MD5Key(old), tk, bg, seq), Value: iv, Time: at}}); err != nil {
		t.Fatal(err)
	}
	for id, seq := range map[string]int64{msgs[0].MessageID: 1, msgs[1].MessageID: 2, old: 3} {
		p, err := st.FindMessages(ctx, backup.MessageQuery{Subject: "s", MessageID: id, Len: 10, CreateTimeBegin: at.Add(-time.Hour)})
		if err != nil || len(p.Messages) != 1 || p.Messages[0].Sequence != seq {
			t.Errorf("by id %q: %+v, %v; want sequence %d", id, p, err, seq)
		}
	}
	var ordered, md5 int
	it, _ := st.tables.db.NewIter(nil)
	for ok := it.First(); ok; ok = it.Next() {
		switch it.Key()[0] {
		case tablePrefix[rowstore.IDOrdered]:
			ordered++
		case tablePrefix[rowstore.IDIndex]:
			md5++
		}
	}
	it.Close()
	if ordered != 1 || md5 != 2 {
		t.Errorf("%d ordered and %d md5 index rows, want 1 and 2", ordered, md5)
	}
}
