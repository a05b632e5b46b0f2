package backup

import (
	"fmt"

	"github.com/qmq-go/qmq/conf"
)

// KnownKeys reads the backup's configuration in dir as start-up does, but
// with no environment and a placeholder meta.server.endpoint, and returns
// the readers of backup.properties and hbase.properties: every key the
// backup reads, with its kind, default and range, and the QMQ keys it
// accepts without effect (for docs/configuration.md).
func KnownKeys(dir string) ([]*conf.Reader, error) {
	l := conf.Lookup{
		Overrides: conf.Overrides{"meta.server.endpoint": "http://127.0.0.1:8080/meta/address"},
		Env:       func(string) (string, bool) { return "", false },
	}
	_, rs, err := readSettings(dir, l)
	if err != nil {
		return nil, fmt.Errorf("read the backup's keys from %s: %w", dir, err)
	}
	// datasource.properties' keys are the metaserver's (the backup reads
	// the same database's qmq_dic), documented once, under the metaserver.
	return rs[:2], nil
}
