package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
)

// DetailSource fetches a message's stored bytes (the broker's payload,
// without CRC) from elsewhere — the group's slave, as QMQ does — when the
// store keeps only its index. It returns an error wrapping
// backup.ErrNotFound if the message is gone or cannot be located.
type DetailSource func(ctx context.Context, req DetailRequest) ([]byte, error)

// DetailRequest names the message a DetailSource fetches.
type DetailRequest struct {
	// Subject is the subject the group's log holds the message under: for
	// a dead letter %DEAD_RETRY%<subject>%<group>.
	Subject     string
	BrokerGroup string
	Sequence    int64
	// LogOffset is where the group's message log holds it, when the store
	// knows (Located).
	LogOffset int64
	Located   bool
}

// Options of the handler.
type Options struct {
	// Detail, if set, serves /api/message/detail for messages whose content
	// the store does not keep.
	Detail DetailSource
	// Timeout bounds one query (store and detail source).
	Timeout time.Duration
	// MaxConcurrent bounds the queries running at once (QMQ's
	// max.query.threads); more wait up to Timeout, then get 503.
	MaxConcurrent int
	// MaxParamBytes bounds backupQuery/recordQuery.
	MaxParamBytes int
	Logger        hclog.Logger
}

// DefaultOptions: 10 s per query, 8 at once, 4 KiB of query JSON.
func DefaultOptions() Options {
	return Options{Timeout: 10 * time.Second, MaxConcurrent: 8, MaxParamBytes: 4 << 10}
}

type handler struct {
	store backup.Store
	opts  Options
	sem   chan struct{}
	mux   *http.ServeMux
}

// NewHandler serves QMQ's query paths over store. Zero Options fields take
// DefaultOptions' values.
func NewHandler(store backup.Store, opts Options) http.Handler {
	d := DefaultOptions()
	if opts.Timeout <= 0 {
		opts.Timeout = d.Timeout
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = d.MaxConcurrent
	}
	if opts.MaxParamBytes <= 0 {
		opts.MaxParamBytes = d.MaxParamBytes
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	h := &handler{store: store, opts: opts, sem: make(chan struct{}, opts.MaxConcurrent), mux: http.NewServeMux()}
	h.mux.HandleFunc("/api/message", h.wrap("backupQuery", h.messages))
	h.mux.HandleFunc("/api/message/dead", h.wrap("backupQuery", h.dead))
	h.mux.HandleFunc("/api/message/detail", h.wrap("backupQuery", h.detail))
	h.mux.HandleFunc("/api/message/records", h.wrap("recordQuery", h.records))
	h.mux.HandleFunc("/api/message/retry", h.wrap("backupQuery", h.retries))
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// apiError is an answer other than 200.
type apiError struct {
	status int
	field  string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

// wrap parses the JSON parameter param, runs fn under the concurrency
// limit and timeout, and writes its result or error.
func (h *handler) wrap(param string, fn func(ctx context.Context, raw []byte) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			writeError(w, &apiError{status: http.StatusMethodNotAllowed, msg: "use GET with ?" + param + "={…}"})
			return
		}
		raw := r.URL.Query().Get(param)
		if raw == "" {
			writeError(w, badRequest(param, "parameter %s is missing: pass the query as JSON, e.g. ?%s={\"subject\":\"order.changed\",\"len\":20}", param, param))
			return
		}
		if len(raw) > h.opts.MaxParamBytes {
			writeError(w, badRequest(param, "parameter %s is %d bytes long; the limit is %d", param, len(raw), h.opts.MaxParamBytes))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
		defer cancel()
		select {
		case h.sem <- struct{}{}:
			defer func() { <-h.sem }()
		case <-ctx.Done():
			writeError(w, &apiError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("%d queries are running; none finished within %s — try again", h.opts.MaxConcurrent, h.opts.Timeout)})
			return
		}
		v, err := fn(ctx, []byte(raw))
		if err != nil {
			h.fail(w, r, ctx, err)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		json.NewEncoder(w).Encode(v)
	}
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(errorBody{Error: e.msg, Field: e.field})
}

// fail maps err to a status: the store's bad query 400, not found 404,
// unavailable 503, out of time 504, anything else 500 (logged).
func (h *handler) fail(w http.ResponseWriter, r *http.Request, ctx context.Context, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae)
		return
	}
	var fe interface{ Field() string }
	field := ""
	if errors.As(err, &fe) {
		field = fe.Field()
	}
	switch {
	case errors.Is(err, backup.ErrBadQuery):
		writeError(w, &apiError{status: http.StatusBadRequest, field: field, msg: err.Error()})
	case errors.Is(err, backup.ErrNotFound):
		writeError(w, &apiError{status: http.StatusNotFound, field: field, msg: err.Error()})
	case errors.Is(err, backup.ErrUnavailable):
		h.opts.Logger.Warn("backup query: store unavailable", "path", r.URL.Path, "error", err)
		writeError(w, &apiError{status: http.StatusServiceUnavailable, msg: err.Error()})
	case ctx.Err() != nil && r.Context().Err() == nil:
		writeError(w, &apiError{status: http.StatusGatewayTimeout, msg: fmt.Sprintf("the query took longer than %s: narrow its time range or lower len", h.opts.Timeout)})
	default:
		h.opts.Logger.Error("backup query failed", "path", r.URL.Path, "error", err)
		writeError(w, &apiError{status: http.StatusInternalServerError, msg: err.Error()})
	}
}

// decode unmarshals raw into v strictly: unknown fields and wrong types
// are 400 naming the field.
func decode(param string, raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return badRequest(param, "%s must be a JSON object of the query's fields, not a %s", param, te.Value)
		case errors.As(err, &te):
			return badRequest(te.Field, "%s: is a JSON %s; it must be a %s", te.Field, te.Value, jsonKind(te.Type.Kind().String()))
		case errors.As(err, &se):
			return badRequest(param, "%s is not valid JSON (at byte %d): %v", param, se.Offset, err)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			if f == "" {
				return badRequest(param, "%s has a field with an empty name", param)
			}
			return badRequest(f, "%s: no such field in %s", f, param)
		}
		var fe *fieldErr
		if errors.As(err, &fe) {
			return badRequest(fe.field, "%s: %v", fe.field, fe.err)
		}
		return badRequest(param, "%s is not a JSON object of the query's fields: %v", param, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest(param, "%s has data after its JSON object", param)
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "uint8", "int8":
		return "number"
	case "bool":
		return "boolean (true or false)"
	}
	return k
}

// fieldErr is a parse error of one field.
type fieldErr struct {
	field string
	err   error
}

func (e *fieldErr) Error() string { return e.field + ": " + e.err.Error() }

// Time is a QMQ Date: milliseconds since the epoch, or an RFC 3339 or
// "2006-01-02 15:04:05" (local time) string.
type Time struct{ time.Time }

func (t *Time) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		t.Time = time.UnixMilli(ms)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("%s is neither milliseconds since the epoch nor a time string", s)
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if v, err := time.ParseInLocation(layout, str, time.Local); err == nil {
			t.Time = v
			return nil
		}
	}
	return fmt.Errorf("%q is not a time: use milliseconds since the epoch, RFC 3339 (2026-12-07T15:04:05Z) or \"2026-12-07 15:04:05\"", str)
}

// MarshalJSON writes milliseconds since the epoch, as QMQ's Dates.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, t.UnixMilli(), 10), nil
}

// beginTime and endTime name their field in parse errors.
type beginTime struct{ Time }
type endTime struct{ Time }

func (t *beginTime) UnmarshalJSON(b []byte) error {
	if err := t.Time.UnmarshalJSON(b); err != nil {
		return &fieldErr{"msgCreateTimeBegin", err}
	}
	return nil
}

func (t *endTime) UnmarshalJSON(b []byte) error {
	if err := t.Time.UnmarshalJSON(b); err != nil {
		return &fieldErr{"msgCreateTimeEnd", err}
	}
	return nil
}
