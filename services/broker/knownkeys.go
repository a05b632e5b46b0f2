package broker

import (
	"fmt"

	"github.com/qmq-go/qmq/conf"
)

// KnownKeys reads the broker's configuration in dir as start-up does, but
// with no environment and no overrides other than a placeholder
// meta.server.endpoint (required, and not part of any default), and returns
// the reader of broker.properties: it knows every key the broker reads, with
// its kind, default and range (conf.Reader.Described), and the QMQ keys it
// accepts without effect (conf.Reader.Ignored). Given an empty directory the
// values are the built-in defaults; docs/configuration.md is generated from
// them (docs/docs_test.go), so the reference cannot drift from the loader.
func KnownKeys(dir string) (*conf.Reader, error) {
	l := conf.Lookup{
		Overrides: conf.Overrides{"meta.server.endpoint": "http://127.0.0.1:8080/meta/address"},
		Env:       func(string) (string, bool) { return "", false },
	}
	_, r, err := readSettings(dir, l)
	if err != nil {
		return nil, fmt.Errorf("read the broker's keys from %s: %w", dir, err)
	}
	return r, nil
}
