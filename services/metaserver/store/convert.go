package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"
)

// ipToInt converts a dotted IPv4 address to the integer stored in broker.ip,
// the value MySQL's INET_ATON returns (a.b.c.d -> a<<24 | b<<16 | c<<8 | d).
// The conversion is done here rather than with INET_ATON so that SQLite stores
// exactly the same value.
func ipToInt(s string) (int64, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("ip %q is not a dotted IPv4 address", s)
	}
	b := a.As4()
	return int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3]), nil
}

// intToIP is the inverse of ipToInt (MySQL's INET_NTOA).
func intToIP(v int64) (string, error) {
	if v < 0 || v > 0xFFFFFFFF {
		return "", fmt.Errorf("broker.ip %d is not an IPv4 address", v)
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String(), nil
}

// encodeGroups renders a route's groups as QMQ stores them in
// subject_route.broker_group_json: a JSON array of names, "[]" when empty.
func encodeGroups(groups []string) (string, error) {
	if groups == nil {
		groups = []string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as Jackson writes it: no \u003c for '<'
	if err := enc.Encode(groups); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// decodeGroups parses subject_route.broker_group_json; the column's default, the empty string,
// means no groups. The result is never nil.
func decodeGroups(s string) ([]string, error) {
	groups := []string{}
	if strings.TrimSpace(s) == "" {
		return groups, nil
	}
	if err := json.Unmarshal([]byte(s), &groups); err != nil {
		return nil, fmt.Errorf("broker_group_json %q is not a JSON array of strings: %w", s, err)
	}
	if groups == nil { // "null"
		groups = []string{}
	}
	return groups, nil
}

// A check tests a value against a limit of the MySQL schema: a VARCHAR length,
// an integer column's range, TIMESTAMP's range. Both backends check values
// before writing, so that SQLite (which has no such limits) rejects what MySQL
// in strict mode would, and MySQL in non-strict mode does not silently truncate.
type check func() error

// varchar checks that v fits VARCHAR(max), counted in characters as MySQL does.
func varchar(column, v string, max int) check {
	return func() error {
		if !utf8.ValidString(v) {
			return fmt.Errorf("%s %q is not valid UTF-8", column, v)
		}
		if n := utf8.RuneCountInString(v); n > max {
			return fmt.Errorf("%s %q is %d characters long, more than the column's %d", column, v, n, max)
		}
		return nil
	}
}

func intRange(column string, v, lo, hi int64) check {
	return func() error {
		if v < lo || v > hi {
			return fmt.Errorf("%s %d is out of the column's range [%d, %d]", column, v, lo, hi)
		}
		return nil
	}
}

// tinyint checks a TINYINT (signed 8-bit) column.
func tinyint(column string, v int) check {
	return intRange(column, int64(v), math.MinInt8, math.MaxInt8)
}

// integer checks an INT (signed 32-bit) column.
func integer(column string, v int) check {
	return intRange(column, int64(v), math.MinInt32, math.MaxInt32)
}

// MySQL's TIMESTAMP range, in UTC.
var (
	minTimestamp = time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)
	maxTimestamp = time.Date(2038, 1, 19, 3, 14, 7, 0, time.UTC)
)

// timestamp checks that a time to be written (after dbTime) fits TIMESTAMP.
func timestamp(column string, t time.Time) check {
	return func() error {
		if t = dbTime(t); t.Before(minTimestamp) || t.After(maxTimestamp) {
			return fmt.Errorf("%s %s is outside the TIMESTAMP range [%s, %s]", column,
				t.Format(time.RFC3339), minTimestamp.Format(time.RFC3339), maxTimestamp.Format(time.RFC3339))
		}
		return nil
	}
}

func validate(checks ...check) error {
	for _, c := range checks {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}
