package metaserver

import (
	"errors"
	"fmt"

	"github.com/qmq-go/qmq/conf"
)

// KnownKeys reads the metaserver's configuration in dir as LoadSettings does,
// without environment overrides (CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN,
// which provide two defaults, are still read from the process), and returns
// the readers of metaserver.properties and datasource.properties: they know
// every key the metaserver reads, with its kind, default and range
// (conf.Reader.Described), and the keys accepted without effect
// (conf.Reader.Ignored). The map-like files (tokens, client log switches,
// broker HTTP ports) have no fixed keys and are not described. Given an
// empty directory the values are the built-in defaults;
// docs/configuration.md is generated from them (docs/docs_test.go).
func KnownKeys(dir string) ([]*conf.Reader, error) {
	mf, err := conf.LoadFile(dir, FileMetaserver)
	if err != nil {
		return nil, err
	}
	df, err := conf.LoadFile(dir, FileDatasource)
	if err != nil {
		return nil, err
	}
	l := conf.Lookup{Env: noEnv}
	r, dr := conf.NewReader(mf, l), conf.NewReader(df, l)
	readSettings(r, dr)
	_, _ = readDelayAdminSecret(r)
	if _, _, err := readDynamic(dir, r); err != nil {
		return nil, err
	}
	if err := errors.Join(r.Err(), dr.Err()); err != nil {
		return nil, fmt.Errorf("read the metaserver's keys from %s: %w", dir, err)
	}
	return []*conf.Reader{r, dr}, nil
}
