package conf

import (
	"reflect"
	"testing"
	"time"
)

// TestDescribed: every getter records the key's kind, default and bounds
// as it was asked for them, whether or not the key is set, so that the
// configuration reference can be generated from the loaders.
func TestDescribed(t *testing.T) {
	f := &File{Name: "x.properties", Path: "/conf/x.properties", values: map[string]string{"i": "3"}, keys: []string{"i"}}
	r := NewReader(f, Lookup{Env: func(string) (string, bool) { return "", false }})
	r.String("s", "v")
	r.Int("i", 1, 0, 10)
	r.Int64("i64", 1<<20, 1<<10, 1<<30)
	r.Port("p", 8080)
	r.Bool("b", true)
	r.Millis("ms", 3*time.Second, 100*time.Millisecond, time.Hour)
	r.Seconds("sec", time.Minute, time.Second, 24*time.Hour)
	r.OneOf("c", "random", "random", "other")
	r.HostPort("h", "")
	r.Float("f", 0.9, 0.1, 0.99)
	r.Ignore("old", "not used")
	want := []KeyInfo{
		{Key: "b", Kind: KindBoolean, Default: "true"},
		{Key: "c", Kind: KindChoice, Default: "random", Choices: []string{"random", "other"}},
		{Key: "f", Kind: KindDecimal, Default: "0.9", Min: "0.1", Max: "0.99"},
		{Key: "h", Kind: KindHostPort},
		{Key: "i", Kind: KindInteger, Default: "1", Min: "0", Max: "10"},
		{Key: "i64", Kind: KindInteger, Default: "1048576", Min: "1024", Max: "1073741824"},
		{Key: "ms", Kind: KindMillis, Default: "3000", Min: "100", Max: "3600000"},
		{Key: "p", Kind: KindInteger, Default: "8080", Min: "1", Max: "65535"},
		{Key: "s", Kind: KindString, Default: "v"},
		{Key: "sec", Kind: KindSeconds, Default: "60", Min: "1", Max: "86400"},
	}
	if got := r.Described(); !reflect.DeepEqual(got, want) {
		t.Errorf("Described:\n got %+v\nwant %+v", got, want)
	}
	if got := r.Ignored(); !reflect.DeepEqual(got, map[string]string{"old": "not used"}) {
		t.Errorf("Ignored: %v", got)
	}
	if r.FileName() != "x.properties" || NewReader(nil, Lookup{}).FileName() != "" {
		t.Errorf("FileName: %q", r.FileName())
	}
	// Reading still works as before, and the key counts as read for CheckKeys.
	if r.Err() != nil || !r.known("i") {
		t.Errorf("err %v, known(i) %v", r.Err(), r.known("i"))
	}
}
