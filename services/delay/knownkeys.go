package delay

import (
	"fmt"

	"github.com/qmq-go/qmq/conf"
)

// KnownKeys reads the delay server's configuration in dir as start-up
// does, but with no environment and no overrides other than a placeholder
// meta.server.endpoint, and returns the reader of delay.properties: every
// key the delay server reads, with its kind, default and range, and the
// QMQ keys it accepts without effect. docs/configuration.md is generated
// from it (docs/docs_test.go).
func KnownKeys(dir string) (*conf.Reader, error) {
	l := conf.Lookup{
		Overrides: conf.Overrides{"meta.server.endpoint": "http://127.0.0.1:8080/meta/address"},
		Env:       func(string) (string, bool) { return "", false },
	}
	_, r, err := readSettings(dir, l)
	if err != nil {
		return nil, fmt.Errorf("read the delay server's keys from %s: %w", dir, err)
	}
	return r, nil
}
