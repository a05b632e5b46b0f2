package protocol

import (
	"reflect"
	"testing"
)

// sharedPullBodies are pull responses for DecodePullResponseShared tests.
func sharedPullBodies() map[string]struct {
	body    []byte
	version int16
} {
	noAttrs := &Message{Subject: "s", MessageID: "no-attrs", Tags: []string{"t"}}
	plain, _ := AppendMessage(nil, noAttrs)
	return map[string]struct {
		body    []byte
		version int16
	}{
		"golden":            {goldenPullResponse(), Version9},
		"golden v8":         {goldenPullResponse(), Version8},
		"tags stripped v7":  {AppendPullResponse(nil, 7, [][]byte{goldenTaggedMessage[8:], goldenPlainMessage[8:]}, Version7), Version7},
		"no attributes":     {AppendPullResponse(nil, 3, [][]byte{plain[8:], goldenTaggedMessage[8:]}, Version9), Version9},
		"empty":             {nil, Version9},
		"header only":       {AppendPullResponseHeader(nil, 5), Version9},
		"truncated":         {goldenPullResponse()[:len(goldenPullResponse())-1], Version9},
		"truncated header":  {goldenPullResponse()[:10], Version9},
		"truncated message": {goldenPullResponse()[:30], Version9},
	}
}

func TestDecodePullResponseSharedMatches(t *testing.T) {
	for name, c := range sharedPullBodies() {
		want, wantErr := DecodePullResponse(c.body, c.version)
		got, err := DecodePullResponseShared(c.body, c.version)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%s: error %v, DecodePullResponse says %v", name, err, wantErr)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

func FuzzDecodePullResponseShared(f *testing.F) {
	for _, c := range sharedPullBodies() {
		f.Add(c.body, c.version)
	}
	f.Fuzz(func(t *testing.T, data []byte, version int16) {
		var got PullResponse
		var err error
		checkAlloc(t, len(data), 16, func() { got, err = DecodePullResponseShared(data, version) })
		want, wantErr := DecodePullResponse(data, version)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("error %v, DecodePullResponse says %v", err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("\n got %+v\nwant %+v", got, want)
		}
	})
}
