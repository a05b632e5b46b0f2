package conf

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Reader reads typed values for the keys of one file, applying overrides, and
// collects every invalid value so that start-up can report them all at once.
type Reader struct {
	file    *File
	lookup  Lookup
	errs    []error
	read    map[string]struct{} // every key asked for (CheckKeys)
	ignored map[string]string   // keys accepted without effect -> why (Ignore)
	info    map[string]KeyInfo  // kind, default and bounds of every key read (Described)
}

// NewReader reads keys of f with the overrides of l.
func NewReader(f *File, l Lookup) *Reader { return &Reader{file: f, lookup: l} }

// raw returns the value of key and a description of where it came from.
func (r *Reader) raw(key string) (value, origin string, ok bool) {
	if r.read == nil {
		r.read = map[string]struct{}{}
	}
	r.read[key] = struct{}{}
	if v, ok := r.lookup.Overrides[key]; ok {
		return strings.TrimSpace(v), "--set " + key, true
	}
	if v, ok := r.lookup.env(EnvName(key)); ok {
		return strings.TrimSpace(v), "environment variable " + EnvName(key), true
	}
	if r.file != nil {
		if v, ok := r.file.Get(key); ok {
			return strings.TrimSpace(v), r.file.Path + ": " + key, true
		}
	}
	return "", "", false
}

func (r *Reader) fail(origin, value, want string) {
	r.errs = append(r.errs, fmt.Errorf("%s=%q is not valid: want %s", origin, value, want))
}

// Err returns all invalid values found so far, joined, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// String returns key's value, or def when unset or empty.
func (r *Reader) String(key, def string) string {
	r.describe(KeyInfo{Key: key, Kind: KindString, Default: def})
	v, _, ok := r.raw(key)
	if !ok || v == "" {
		return def
	}
	return v
}

// Int returns key's value as an integer in [min, max].
func (r *Reader) Int(key string, def, min, max int) int {
	r.describe(describeInt(key, KindInteger, def, min, max))
	v, origin, ok := r.raw(key)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail(origin, v, fmt.Sprintf("an integer from %d to %d (default %d)", min, max, def))
		return def
	}
	return n
}

// Int64 returns key's value as a 64-bit integer in [min, max].
func (r *Reader) Int64(key string, def, min, max int64) int64 {
	r.describe(describeInt(key, KindInteger, def, min, max))
	v, origin, ok := r.raw(key)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		r.fail(origin, v, fmt.Sprintf("an integer from %d to %d (default %d)", min, max, def))
		return def
	}
	return n
}

// Port returns key's value as a TCP port (1..65535).
func (r *Reader) Port(key string, def int) int { return r.Int(key, def, 1, 65535) }

// Bool returns key's value as a boolean (true/false, case-insensitive, as Java's Boolean.parseBoolean
// but strict: anything else is an error rather than silently false).
func (r *Reader) Bool(key string, def bool) bool {
	r.describe(KeyInfo{Key: key, Kind: KindBoolean, Default: strconv.FormatBool(def)})
	v, origin, ok := r.raw(key)
	if !ok || v == "" {
		return def
	}
	switch strings.ToLower(v) {
	case "true":
		return true
	case "false":
		return false
	}
	r.fail(origin, v, fmt.Sprintf("true or false (default %t)", def))
	return def
}

// Millis returns key's value, an integer number of milliseconds, as a duration in [min, max].
func (r *Reader) Millis(key string, def, min, max time.Duration) time.Duration {
	n := r.Int64(key, def.Milliseconds(), min.Milliseconds(), max.Milliseconds())
	r.describe(describeDuration(key, KindMillis, time.Millisecond, def, min, max))
	return time.Duration(n) * time.Millisecond
}

// Seconds returns key's value, an integer number of seconds, as a duration in [min, max].
func (r *Reader) Seconds(key string, def, min, max time.Duration) time.Duration {
	n := r.Int64(key, int64(def/time.Second), int64(min/time.Second), int64(max/time.Second))
	r.describe(describeDuration(key, KindSeconds, time.Second, def, min, max))
	return time.Duration(n) * time.Second
}

// OneOf returns key's value, which must be one of choices.
func (r *Reader) OneOf(key, def string, choices ...string) string {
	r.describe(KeyInfo{Key: key, Kind: KindChoice, Default: def, Choices: append([]string(nil), choices...)})
	v, origin, ok := r.raw(key)
	if !ok || v == "" {
		return def
	}
	for _, c := range choices {
		if v == c {
			return v
		}
	}
	r.fail(origin, v, "one of "+strings.Join(choices, ", "))
	return def
}

// HostPort returns key's value, which must be host:port (or empty for def).
func (r *Reader) HostPort(key, def string) string {
	r.describe(KeyInfo{Key: key, Kind: KindHostPort, Default: def})
	v, origin, ok := r.raw(key)
	if !ok || v == "" {
		return def
	}
	if _, p, err := net.SplitHostPort(v); err != nil || p == "" {
		r.fail(origin, v, "host:port, e.g. 127.0.0.1:8500")
		return def
	}
	return v
}

// Float returns key's value as a decimal number in [min, max].
func (r *Reader) Float(key string, def, min, max float64) float64 {
	r.describe(KeyInfo{Key: key, Kind: KindDecimal, Default: strconv.FormatFloat(def, 'g', -1, 64),
		Min: strconv.FormatFloat(min, 'g', -1, 64), Max: strconv.FormatFloat(max, 'g', -1, 64)})
	v, origin, ok := r.raw(key)
	if !ok || v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < min || f > max {
		r.fail(origin, v, fmt.Sprintf("a number from %g to %g (default %g)", min, max, def))
		return def
	}
	return f
}
