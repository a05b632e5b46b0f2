package hbasetest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a fake HBase REST gateway.
type Server struct {
	mu       sync.Mutex
	tables   map[string]*table
	scanners map[string]*scanner
	nextID   int
	fail     int
	delay    time.Duration
	requests int

	addr string
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

type table struct {
	families map[string]map[string]string // family → attributes (TTL, VERSIONS…)
	rows     map[string]map[string][]byte // row → "family:qualifier" → value
}

type scanner struct {
	table string
	rows  []kv // the rows of the scan, sorted, filtered
	pos   int
	batch int
}

type kv struct {
	key, column string
	value       []byte
}

// Start runs a server on a free port of 127.0.0.1 until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{tables: map[string]*table{}, scanners: map[string]*scanner{}, addr: ln.Addr().String()}
	s.serve(ln)
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve(ln net.Listener) {
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.done = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		srv.Serve(ln)
	}(s.srv, s.done)
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.addr }

// Close stops the server.
func (s *Server) Close() {
	if s.srv != nil {
		s.srv.Close()
		<-s.done
		s.srv = nil
	}
}

// Down stops accepting connections (clients get "connection refused");
// the data stays.
func (s *Server) Down() { s.Close() }

// Up listens again on the same address.
func (s *Server) Up() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("hbasetest: listen again on %s: %w", s.addr, err)
	}
	s.serve(ln)
	return nil
}

// Fail makes every request answer status (0 to stop).
func (s *Server) Fail(status int) { s.mu.Lock(); s.fail = status; s.mu.Unlock() }

// Delay makes every request wait d before it is answered.
func (s *Server) Delay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// OpenScanners is how many scanners were created and not deleted.
func (s *Server) OpenScanners() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.scanners) }

// Requests is how many requests the server answered.
func (s *Server) Requests() int { s.mu.Lock(); defer s.mu.Unlock(); return s.requests }

// Rows is how many rows table holds (-1 if it does not exist).
func (s *Server) Rows(tableName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[tableName]
	if t == nil {
		return -1
	}
	return len(t.rows)
}

// Family returns the attributes of a table's column family (nil if none).
func (s *Server) Family(tableName, family string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tables[tableName]; t != nil {
		return t.families[family]
	}
	return nil
}

// maxBody bounds a request body, as the gateway's own limits do.
const maxBody = 64 << 20

var b64 = base64.StdEncoding

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	fail, delay := s.fail, s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if fail != 0 {
		http.Error(w, "injected failure", fail)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 2 || parts[0] == "" {
		http.Error(w, "not a table resource: "+r.URL.Path, http.StatusNotFound)
		return
	}
	tableName := parts[0]
	switch {
	case len(parts) == 2 && parts[1] == "schema":
		s.schema(w, r, tableName)
	case len(parts) == 2 && parts[1] == "scanner":
		s.createScanner(w, r, tableName)
	case len(parts) == 3 && parts[1] == "scanner":
		s.scannerOp(w, r, tableName, parts[2])
	case len(parts) == 2 && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		s.putRows(w, r, tableName)
	case len(parts) == 3 && r.Method == http.MethodGet:
		s.getCell(w, r, tableName, parts[1], parts[2])
	default:
		http.Error(w, "unsupported: "+r.Method+" "+r.URL.Path, http.StatusMethodNotAllowed)
	}
}

// readJSON reads a JSON body into v, answering 415/400 itself.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		http.Error(w, "Content-Type must be application/json, not "+r.Header.Get("Content-Type"), http.StatusUnsupportedMediaType)
		return false
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		http.Error(w, "malformed JSON: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func wantsJSON(w http.ResponseWriter, r *http.Request) bool {
	if !strings.Contains(r.Header.Get("Accept"), "application/json") {
		http.Error(w, "this test server answers Accept: application/json only", http.StatusNotAcceptable)
		return false
	}
	return true
}

type columnSchema map[string]string

type tableSchema struct {
	Name         string         `json:"name"`
	ColumnSchema []columnSchema `json:"ColumnSchema"`
}

func (s *Server) schema(w http.ResponseWriter, r *http.Request, name string) {
	switch r.Method {
	case http.MethodGet:
		if !wantsJSON(w, r) {
			return
		}
		s.mu.Lock()
		t := s.tables[name]
		var ts tableSchema
		if t != nil {
			ts.Name = name
			for f, attrs := range t.families {
				cs := columnSchema{"name": f}
				for k, v := range attrs {
					cs[k] = v
				}
				ts.ColumnSchema = append(ts.ColumnSchema, cs)
			}
		}
		s.mu.Unlock()
		if t == nil {
			http.Error(w, "Not found", http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, ts)
	case http.MethodPut, http.MethodPost:
		var ts tableSchema
		if !readJSON(w, r, &ts) {
			return
		}
		if len(ts.ColumnSchema) == 0 {
			http.Error(w, "a table needs at least one column family", http.StatusBadRequest)
			return
		}
		families := map[string]map[string]string{}
		for _, cs := range ts.ColumnSchema {
			f := cs["name"]
			if f == "" || strings.ContainsAny(f, ":/") {
				http.Error(w, fmt.Sprintf("bad column family name %q", f), http.StatusBadRequest)
				return
			}
			attrs := map[string]string{}
			for k, v := range cs {
				if k == "TTL" {
					if n, err := strconv.Atoi(v); err != nil || n <= 0 {
						http.Error(w, fmt.Sprintf("TTL %q is not a positive number of seconds", v), http.StatusBadRequest)
						return
					}
				}
				if k != "name" {
					attrs[k] = v
				}
			}
			families[f] = attrs
		}
		s.mu.Lock()
		t, exists := s.tables[name]
		if !exists {
			s.tables[name] = &table{families: families, rows: map[string]map[string][]byte{}}
		} else {
			for f, a := range families {
				t.families[f] = a
			}
		}
		s.mu.Unlock()
		if exists {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusCreated)
		}
	default:
		http.Error(w, "unsupported method", http.StatusMethodNotAllowed)
	}
}

type cellSet struct {
	Row []struct {
		Key  string `json:"key"`
		Cell []struct {
			Column    string `json:"column"`
			Timestamp int64  `json:"timestamp,omitempty"`
			Value     string `json:"$"`
		} `json:"Cell"`
	} `json:"Row"`
}

type outCell struct {
	Column    string `json:"column"`
	Timestamp int64  `json:"timestamp"`
	Value     string `json:"$"`
}

type outRow struct {
	Key  string    `json:"key"`
	Cell []outCell `json:"Cell"`
}

type outCellSet struct {
	Row []outRow `json:"Row"`
}

func (s *Server) putRows(w http.ResponseWriter, r *http.Request, name string) {
	var cs cellSet
	if !readJSON(w, r, &cs) {
		return
	}
	type put struct {
		row, column string
		value       []byte
	}
	var puts []put
	for _, row := range cs.Row {
		k, err := b64.DecodeString(row.Key)
		if err != nil || len(k) == 0 {
			http.Error(w, fmt.Sprintf("row key %q is not base64 of a non-empty key", row.Key), http.StatusBadRequest)
			return
		}
		if len(row.Cell) == 0 {
			http.Error(w, "a row without cells", http.StatusBadRequest)
			return
		}
		for _, c := range row.Cell {
			col, err1 := b64.DecodeString(c.Column)
			v, err2 := b64.DecodeString(c.Value)
			if err1 != nil || err2 != nil {
				http.Error(w, "a column or value is not base64", http.StatusBadRequest)
				return
			}
			puts = append(puts, put{string(k), string(col), v})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[name]
	if t == nil {
		http.Error(w, "Not found: table "+name, http.StatusNotFound)
		return
	}
	for _, p := range puts {
		fam, _, ok := strings.Cut(p.column, ":")
		if _, has := t.families[fam]; !ok || !has {
			http.Error(w, fmt.Sprintf("column %q: table %s has no such column family", p.column, name), http.StatusBadRequest)
			return
		}
	}
	for _, p := range puts {
		if t.rows[p.row] == nil {
			t.rows[p.row] = map[string][]byte{}
		}
		t.rows[p.row][p.column] = p.value
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) getCell(w http.ResponseWriter, r *http.Request, name, row, column string) {
	if !wantsJSON(w, r) {
		return
	}
	s.mu.Lock()
	t := s.tables[name]
	var v []byte
	var ok bool
	if t != nil {
		v, ok = t.rows[row][column]
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, "Not found", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, outCellSet{Row: []outRow{{Key: b64.EncodeToString([]byte(row)), Cell: []outCell{{Column: b64.EncodeToString([]byte(column)), Timestamp: 1, Value: b64.EncodeToString(v)}}}}})
}

type scannerSpec struct {
	StartRow string   `json:"startRow"`
	EndRow   string   `json:"endRow"`
	Column   []string `json:"column"`
	Batch    int      `json:"batch"`
	Filter   string   `json:"filter"`
}

type filterSpec struct {
	Type       string `json:"type"`
	Op         string `json:"op"`
	Value      string `json:"value"`
	Comparator *struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"comparator"`
}

// rowFilter compiles the filters the store uses: RowFilter EQUAL with a
// RegexStringComparator (value: the regexp as is), and PrefixFilter
// (value: base64).
func rowFilter(spec string) (func(string) bool, error) {
	var f filterSpec
	if err := json.Unmarshal([]byte(spec), &f); err != nil {
		return nil, fmt.Errorf("filter is not JSON: %w", err)
	}
	switch f.Type {
	case "RowFilter":
		if f.Op != "EQUAL" || f.Comparator == nil || f.Comparator.Type != "RegexStringComparator" {
			return nil, fmt.Errorf("this test server supports RowFilter EQUAL with a RegexStringComparator only")
		}
		re, err := regexp.Compile(f.Comparator.Value)
		if err != nil {
			return nil, fmt.Errorf("regexp %q: %w", f.Comparator.Value, err)
		}
		return re.MatchString, nil
	case "PrefixFilter":
		p, err := b64.DecodeString(f.Value)
		if err != nil {
			return nil, fmt.Errorf("PrefixFilter value is not base64")
		}
		return func(k string) bool { return strings.HasPrefix(k, string(p)) }, nil
	}
	return nil, fmt.Errorf("filter type %q is not supported by this test server", f.Type)
}

func (s *Server) createScanner(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		http.Error(w, "create a scanner with PUT or POST", http.StatusMethodNotAllowed)
		return
	}
	var spec scannerSpec
	if !readJSON(w, r, &spec) {
		return
	}
	start, err1 := b64.DecodeString(spec.StartRow)
	end, err2 := b64.DecodeString(spec.EndRow)
	if err1 != nil || err2 != nil {
		http.Error(w, "startRow or endRow is not base64", http.StatusBadRequest)
		return
	}
	columns := map[string]bool{}
	for _, c := range spec.Column {
		col, err := b64.DecodeString(c)
		if err != nil {
			http.Error(w, "a column is not base64", http.StatusBadRequest)
			return
		}
		columns[string(col)] = true
	}
	keep := func(string) bool { return true }
	if spec.Filter != "" {
		f, err := rowFilter(spec.Filter)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		keep = f
	}
	batch := spec.Batch
	if batch <= 0 {
		batch = 100 // ScannerModel's default batch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[name]
	if t == nil {
		http.Error(w, "Not found: table "+name, http.StatusNotFound)
		return
	}
	var rows []kv
	for k, cells := range t.rows {
		if k < string(start) || (len(end) > 0 && k >= string(end)) || !keep(k) {
			continue
		}
		for col, v := range cells {
			if len(columns) == 0 || columns[col] {
				rows = append(rows, kv{k, col, v})
			}
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].key != rows[j].key {
			return rows[i].key < rows[j].key
		}
		return rows[i].column < rows[j].column
	})
	s.nextID++
	id := strconv.Itoa(s.nextID) + strconv.FormatInt(time.Now().UnixNano(), 36)
	s.scanners[id] = &scanner{table: name, rows: rows, batch: batch}
	w.Header().Set("Location", "http://"+r.Host+"/"+name+"/scanner/"+id)
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) scannerOp(w http.ResponseWriter, r *http.Request, name, id string) {
	s.mu.Lock()
	sc := s.scanners[id]
	if sc == nil || sc.table != name {
		s.mu.Unlock()
		http.Error(w, "Not found: scanner "+id, http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodDelete:
		delete(s.scanners, id)
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		if !wantsJSON(w, r) {
			s.mu.Unlock()
			return
		}
		if sc.pos >= len(sc.rows) {
			s.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		end := min(sc.pos+sc.batch, len(sc.rows))
		var out outCellSet
		for _, c := range sc.rows[sc.pos:end] {
			cell := outCell{Column: b64.EncodeToString([]byte(c.column)), Timestamp: 1, Value: b64.EncodeToString(c.value)}
			key := b64.EncodeToString([]byte(c.key))
			if n := len(out.Row); n > 0 && out.Row[n-1].Key == key {
				out.Row[n-1].Cell = append(out.Row[n-1].Cell, cell)
			} else {
				out.Row = append(out.Row, outRow{Key: key, Cell: []outCell{cell}})
			}
		}
		sc.pos = end
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	default:
		s.mu.Unlock()
		http.Error(w, "unsupported method", http.StatusMethodNotAllowed)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
