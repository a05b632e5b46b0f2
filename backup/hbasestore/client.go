package hbasestore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/rowstore"
)

// maxResponse bounds what one REST answer may be (a scanner batch of
// ScanBatch cells of a few KiB each).
const maxResponse = 256 << 20

// cellSet is the REST gateway's CellSet in JSON: keys, columns and values
// base64 (the "$" field is the value).
type cellSet struct {
	Row []cellRow `json:"Row"`
}

type cellRow struct {
	Key  string `json:"key"`
	Cell []cell `json:"Cell"`
}

type cell struct {
	Column    string `json:"column"`
	Timestamp int64  `json:"timestamp,omitempty"`
	Value     string `json:"$"`
}

// scannerSpec is a ScannerModel in JSON; Filter is a JSON document in a
// string.
type scannerSpec struct {
	StartRow string   `json:"startRow,omitempty"`
	EndRow   string   `json:"endRow,omitempty"`
	Column   []string `json:"column,omitempty"`
	Batch    int      `json:"batch"`
	Filter   string   `json:"filter,omitempty"`
}

// tableSchema is a TableSchemaModel in JSON; attributes are strings.
type tableSchema struct {
	Name         string         `json:"name"`
	ColumnSchema []columnSchema `json:"ColumnSchema"`
}

type columnSchema struct {
	Name        string `json:"name"`
	TTL         string `json:"TTL,omitempty"`
	VERSIONS    string `json:"VERSIONS,omitempty"`
	COMPRESSION string `json:"COMPRESSION,omitempty"`
}

var b64 = base64.StdEncoding

// client talks to one REST gateway.
type client struct {
	base *url.URL
	http *http.Client
	s    Settings
}

func newClient(s Settings) (*client, error) {
	u, err := url.Parse(strings.TrimRight(s.RestURL, "/"))
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: s.Timeout}).DialContext,
		MaxConnsPerHost:       s.MaxConnections,
		MaxIdleConnsPerHost:   s.MaxConnections,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: s.Timeout,
	}
	return &client{base: u, http: &http.Client{Transport: tr, Timeout: s.Timeout}, s: s}, nil
}

func (c *client) close() { c.http.CloseIdleConnections() }

// unavailable wraps err as backup.ErrUnavailable with what was tried.
func (c *client) unavailable(what string, err error) error {
	return fmt.Errorf("HBase REST gateway %s: %s: %w: %w", c.base.Host, what, backup.ErrUnavailable, err)
}

// do sends one request; it returns the status and body of a 2xx or 404
// answer, ErrUnavailable for a network error, a timeout or a 5xx, and an
// error for any other status.
func (c *client) do(ctx context.Context, method, target string, body any, what string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := target
	if !strings.HasPrefix(target, "http://") && !strings.HasPrefix(target, "https://") {
		u = c.base.String() + target
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
			return 0, nil, nil, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return 0, nil, nil, c.unavailable(what, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return 0, nil, nil, c.unavailable(what+": reading the answer", err)
	}
	if len(data) > maxResponse {
		return 0, nil, nil, fmt.Errorf("%s: the answer is over %d bytes; lower the scan batch", what, maxResponse)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300, resp.StatusCode == http.StatusNotFound:
		return resp.StatusCode, resp.Header, data, nil
	case resp.StatusCode >= 500:
		return 0, nil, nil, c.unavailable(what, fmt.Errorf("%s: %s", resp.Status, clip(data)))
	default:
		return 0, nil, nil, fmt.Errorf("HBase REST gateway %s: %s: %s: %s", c.base.Host, what, resp.Status, clip(data))
	}
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func tablePath(t rowstore.Table) string { return "/" + url.PathEscape(string(t)) }

func column(t rowstore.Table) string { return rowstore.Family(t) + ":" + rowstore.Qualifier(t) }

// createTable creates t with its QMQ column family, with a TTL when
// retention is set; an existing table is left as it is.
func (c *client) createTable(ctx context.Context, t rowstore.Table) (created bool, err error) {
	what := "create table " + string(t)
	status, _, _, err := c.do(ctx, http.MethodGet, tablePath(t)+"/schema", nil, "look up table "+string(t))
	if err != nil {
		return false, err
	}
	if status == http.StatusOK {
		return false, nil
	}
	cs := columnSchema{Name: rowstore.Family(t), VERSIONS: "1"}
	if c.s.RetentionDays > 0 {
		cs.TTL = strconv.Itoa(c.s.RetentionDays * 24 * 3600)
	}
	status, _, _, err = c.do(ctx, http.MethodPut, tablePath(t)+"/schema", tableSchema{Name: string(t), ColumnSchema: []columnSchema{cs}}, what)
	if err != nil {
		return false, err
	}
	if status == http.StatusNotFound {
		return false, fmt.Errorf("HBase REST gateway %s: %s: 404", c.base.Host, what)
	}
	return true, nil
}

// put writes rows, one request per table.
func (c *client) put(ctx context.Context, rows []rowstore.Row) error {
	byTable := map[rowstore.Table]*cellSet{}
	var order []rowstore.Table
	for _, r := range rows {
		cs := byTable[r.Table]
		if cs == nil {
			cs = &cellSet{}
			byTable[r.Table] = cs
			order = append(order, r.Table)
		}
		cs.Row = append(cs.Row, cellRow{Key: b64.EncodeToString(r.Key), Cell: []cell{{Column: b64.EncodeToString([]byte(column(r.Table))), Value: b64.EncodeToString(r.Value)}}})
	}
	for _, t := range order {
		what := fmt.Sprintf("put %d rows into %s", len(byTable[t].Row), t)
		status, _, _, err := c.do(ctx, http.MethodPut, tablePath(t)+"/fakerow", byTable[t], what)
		if err != nil {
			return err
		}
		if status == http.StatusNotFound {
			return fmt.Errorf("HBase REST gateway %s: %s: table %s does not exist; create the tables (qmq query create-hbase-tables, or schema/init_backup_hbase.sql in hbase shell)", c.base.Host, what, t)
		}
	}
	return nil
}

// get reads one cell.
func (c *client) get(ctx context.Context, t rowstore.Table, key []byte) ([]byte, bool, error) {
	what := fmt.Sprintf("get row %q of %s", key, t)
	status, _, body, err := c.do(ctx, http.MethodGet, tablePath(t)+"/"+url.PathEscape(string(key))+"/"+column(t), nil, what)
	if err != nil {
		return nil, false, err
	}
	if status == http.StatusNotFound {
		return nil, false, nil
	}
	var cs cellSet
	if err := json.Unmarshal(body, &cs); err != nil {
		return nil, false, fmt.Errorf("HBase REST gateway %s: %s: the answer is not a CellSet: %w", c.base.Host, what, err)
	}
	for _, r := range cs.Row {
		for _, cl := range r.Cell {
			v, err := b64.DecodeString(cl.Value)
			if err != nil {
				return nil, false, fmt.Errorf("HBase REST gateway %s: %s: a value is not base64: %w", c.base.Host, what, err)
			}
			return v, true, nil
		}
	}
	return nil, false, nil
}

// regexFilter is QMQ's row-key filter in the REST gateway's filter JSON.
func regexFilter(re string) string {
	b, _ := json.Marshal(map[string]any{
		"type": "RowFilter", "op": "EQUAL",
		"comparator": map[string]string{"type": "RegexStringComparator", "value": re},
	})
	return string(b)
}

// scan runs a scanner over s, calling fn per row; the scanner is deleted
// however the scan ends.
func (c *client) scan(ctx context.Context, s rowstore.Scan, fn func(k, v []byte) bool) error {
	batch := s.Batch
	if batch <= 0 || batch > c.s.ScanBatch {
		batch = c.s.ScanBatch
	}
	spec := scannerSpec{
		StartRow: b64.EncodeToString(s.Start), EndRow: b64.EncodeToString(s.Stop),
		Column: []string{b64.EncodeToString([]byte(column(s.Table)))}, Batch: batch,
	}
	if s.Regexp != "" {
		spec.Filter = regexFilter(s.Regexp)
	}
	what := "open a scanner on " + string(s.Table)
	status, hdr, _, err := c.do(ctx, http.MethodPut, tablePath(s.Table)+"/scanner", spec, what)
	if err != nil {
		return err
	}
	loc := hdr.Get("Location")
	if status != http.StatusCreated || loc == "" {
		return fmt.Errorf("HBase REST gateway %s: %s: status %d, Location %q; want 201 and the scanner's URI", c.base.Host, what, status, loc)
	}
	defer c.deleteScanner(loc)
	for {
		status, _, body, err := c.do(ctx, http.MethodGet, loc, nil, "read scanner "+loc)
		if err != nil {
			return err
		}
		switch status {
		case http.StatusNoContent:
			return nil
		case http.StatusNotFound:
			// The gateway expired the scanner (idle too long) or restarted.
			return c.unavailable("read scanner "+loc, errors.New("the scanner is gone (404)"))
		}
		var cs cellSet
		if err := json.Unmarshal(body, &cs); err != nil {
			return fmt.Errorf("HBase REST gateway %s: read scanner %s: the answer is not a CellSet: %w", c.base.Host, loc, err)
		}
		if len(cs.Row) == 0 {
			return nil
		}
		for _, r := range cs.Row {
			k, err := b64.DecodeString(r.Key)
			if err != nil {
				return fmt.Errorf("HBase REST gateway %s: scanner %s: a row key is not base64: %w", c.base.Host, loc, err)
			}
			for _, cl := range r.Cell {
				v, err := b64.DecodeString(cl.Value)
				if err != nil {
					return fmt.Errorf("HBase REST gateway %s: scanner %s: a value is not base64: %w", c.base.Host, loc, err)
				}
				if !fn(k, v) {
					return nil
				}
			}
		}
	}
}

// deleteScanner releases a scanner on the gateway, with a context of its
// own: the scan's may be the reason it ended.
func (c *client) deleteScanner(loc string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.Timeout)
	defer cancel()
	if _, _, _, err := c.do(ctx, http.MethodDelete, loc, nil, "delete scanner "+loc); err != nil && c.s.Logger != nil {
		c.s.Logger.Warn("could not delete an HBase REST scanner; the gateway expires it", "scanner", loc, "error", err)
	}
}
