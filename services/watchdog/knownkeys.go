package watchdog

import (
	"fmt"

	"github.com/qmq-go/qmq/conf"
)

// KnownKeys reads the watchdog's configuration in dir as start-up does,
// but with no environment and no overrides other than placeholders for the
// required keys, and returns the readers of watchdog.properties and
// datasource.properties: every key the watchdog reads, with its kind,
// default and range. docs/configuration.md is generated from them
// (docs/docs_test.go).
func KnownKeys(dir string) ([]*conf.Reader, error) {
	l := conf.Lookup{
		Overrides: conf.Overrides{
			"meta.server.endpoint": "http://127.0.0.1:8080/meta/address",
			"appCode":              "qmq-watchdog",
		},
		Env: func(string) (string, bool) { return "", false },
	}
	_, rs, err := readSettings(dir, l)
	if err != nil {
		return nil, fmt.Errorf("read the watchdog's keys from %s: %w", dir, err)
	}
	return rs, nil
}
