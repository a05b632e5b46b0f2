package conf

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// A Reader knows more of each key than that it was read: the kind of value,
// the default and the accepted range it was asked for. Described hands that
// out so that the configuration reference (docs/configuration.md) is
// generated from the loaders themselves and cannot drift from them.

// Kinds of value, as KeyInfo.Kind.
const (
	KindString   = "string"
	KindInteger  = "integer"
	KindBoolean  = "boolean"
	KindMillis   = "milliseconds"
	KindSeconds  = "seconds"
	KindDecimal  = "decimal"
	KindHostPort = "host:port"
	KindChoice   = "choice"
)

// KeyInfo describes one key a Reader read.
type KeyInfo struct {
	Key     string
	Kind    string // one of the Kind constants
	Default string // the default as a file would spell it; "" when empty
	// Min and Max bound integers, durations and decimals ("" otherwise);
	// Choices lists the values of a KindChoice key.
	Min, Max string
	Choices  []string
}

// describe records k for its key; a later call for the same key wins, so
// that Millis, which reads through Int64, is described as milliseconds.
func (r *Reader) describe(k KeyInfo) {
	if r.info == nil {
		r.info = map[string]KeyInfo{}
	}
	r.info[k.Key] = k
}

func describeInt[T int | int64](key, kind string, def, min, max T) KeyInfo {
	return KeyInfo{Key: key, Kind: kind, Default: fmt.Sprint(def), Min: fmt.Sprint(min), Max: fmt.Sprint(max)}
}

func describeDuration(key, kind string, unit time.Duration, def, min, max time.Duration) KeyInfo {
	f := func(d time.Duration) string { return strconv.FormatInt(int64(d/unit), 10) }
	return KeyInfo{Key: key, Kind: kind, Default: f(def), Min: f(min), Max: f(max)}
}

// Described returns every key read so far, sorted by key.
func (r *Reader) Described() []KeyInfo {
	out := make([]KeyInfo, 0, len(r.info))
	for _, k := range r.info {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Ignored returns the keys declared with Ignore and why each has no effect.
func (r *Reader) Ignored() map[string]string {
	m := make(map[string]string, len(r.ignored))
	for k, v := range r.ignored {
		m[k] = v
	}
	return m
}

// FileName is the base name of the file this Reader reads ("" for none).
func (r *Reader) FileName() string {
	if r.file == nil {
		return ""
	}
	return r.file.Name
}
