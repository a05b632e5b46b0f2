package hbasestore

import (
	"fmt"
	"net/url"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Settings of an HBase store.
type Settings struct {
	// RestURL is the REST gateway's base URL (backup.hbase.rest.url),
	// e.g. http://hbase-rest:8080.
	RestURL string
	// Timeout bounds each REST request (backup.hbase.timeout.ms); a slower
	// answer is ErrUnavailable.
	Timeout time.Duration
	// MaxConnections bounds the connections to the gateway.
	MaxConnections int
	// ScanBatch is how many cells one scanner GET asks for at most.
	ScanBatch int
	// RetentionDays is the column families' TTL given to tables that
	// CreateTables makes (0: keep forever).
	RetentionDays int
	// Location is the zone of the row keys' times (nil: time.Local).
	Location *time.Location
	Logger   hclog.Logger
}

// DefaultSettings: 10 s per request, 16 connections, 30 days.
func DefaultSettings() Settings {
	return Settings{Timeout: 10 * time.Second, MaxConnections: 16, ScanBatch: 1000, RetentionDays: 30}
}

// Validate checks s.
func (s Settings) Validate() error {
	u, err := url.Parse(s.RestURL)
	switch {
	case s.RestURL == "":
		return fmt.Errorf("hbase store: no REST gateway URL (backup.hbase.rest.url), e.g. http://hbase-rest:8080")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("hbase store: REST gateway URL %q is not an http(s)://host:port URL", s.RestURL)
	case s.Timeout < 10*time.Millisecond:
		return fmt.Errorf("hbase store: request timeout %s is under 10ms", s.Timeout)
	case s.MaxConnections < 1:
		return fmt.Errorf("hbase store: max connections %d is under 1", s.MaxConnections)
	case s.ScanBatch < 1 || s.ScanBatch > 100_000:
		return fmt.Errorf("hbase store: scan batch %d is not 1..100000", s.ScanBatch)
	case s.RetentionDays < 0:
		return fmt.Errorf("hbase store: retention %d days is negative", s.RetentionDays)
	}
	return nil
}
