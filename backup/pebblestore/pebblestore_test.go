package pebblestore

import (
	"testing"

	"github.com/qmq-go/qmq/backup"
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
