package protocol

import (
	"bytes"
	"reflect"
	"testing"
)

// goldenPullRequestV9 is a PULL_MESSAGE body written out by hand from Java's
// PullRequestSerde.write: one TAG filter (AND, two tags) and one
// SUB_ENV_ISOLATION filter.
var goldenPullRequestV9 = []byte{
	0x00, 0x03, 's', 'u', 'b',
	0x00, 0x02, 'g', '1',
	0x00, 0x02, 'c', '1',
	0x00, 0x00, 0x00, 0x20, // requestNum 32
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // offset -1
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // pullOffsetBegin 5
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // pullOffsetLast 9
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x13, 0x88, // timeout 5000
	0x01,                   // broadcast
	0x00, 0x00, 0x00, 0x02, // filter count
	0x00, 0x01, // TAG
	0x00, 0x02, // AND
	0x02, // 2 tags
	0x00, 0x01, 'a',
	0x00, 0x02, 'b', 'c',
	0x00, 0x02, // SUB_ENV_ISOLATION
	0x00, 0x03, 'd', 'e', 'v',
	0x00, 0x01, 'x',
}

var goldenPullRequestStruct = PullRequest{
	Subject: "sub", ConsumerGroup: "g1", ConsumerID: "c1",
	RequestNum: 32, Offset: -1, PullOffsetBegin: 5, PullOffsetLast: 9, TimeoutMillis: 5000, Broadcast: true,
	Filters: []PullFilter{
		{Type: PullFilterTag, TagType: TagTypeAnd, Tags: []string{"a", "bc"}},
		{Type: PullFilterSubEnvIsolation, Env: "dev", SubEnv: "x"},
	},
}

func TestPullRequestGolden(t *testing.T) {
	got := AppendPullRequest(nil, &goldenPullRequestStruct, Version9)
	if !bytes.Equal(got, goldenPullRequestV9) {
		t.Fatalf("encoded\n got % x\nwant % x", got, goldenPullRequestV9)
	}
	r, err := DecodePullRequest(goldenPullRequestV9, Version9)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, goldenPullRequestStruct) {
		t.Fatalf("decoded %+v\nwant %+v", r, goldenPullRequestStruct)
	}
}

func TestPullRequestVersions(t *testing.T) {
	fixed := goldenPullRequestV9[:len(goldenPullRequestV9)-26] // up to and including broadcast
	if fixed[len(fixed)-1] != 0x01 {
		t.Fatalf("fixture slicing is off: % x", fixed)
	}
	// Version 7: no filters at all.
	got := AppendPullRequest(nil, &goldenPullRequestStruct, Version7)
	if !bytes.Equal(got, fixed) {
		t.Fatalf("v7\n got % x\nwant % x", got, fixed)
	}
	r, err := DecodePullRequest(fixed, Version7)
	if err != nil || r.Filters != nil || r.Subject != "sub" || !r.Broadcast {
		t.Fatalf("v7 decode %+v %v", r, err)
	}
	// Version 8: exactly one tag filter, no type field.
	v8 := append(bytes.Clone(fixed), 0x00, 0x02, 0x02, 0x00, 0x01, 'a', 0x00, 0x02, 'b', 'c')
	got = AppendPullRequest(nil, &goldenPullRequestStruct, Version8)
	if !bytes.Equal(got, v8) {
		t.Fatalf("v8\n got % x\nwant % x", got, v8)
	}
	r, err = DecodePullRequest(v8, Version8)
	if err != nil || !reflect.DeepEqual(r.Filters, goldenPullRequestStruct.Filters[:1]) {
		t.Fatalf("v8 decode %+v %v", r.Filters, err)
	}
	// Version 8 without a tag filter writes NO_TAG with no tags.
	noTag := goldenPullRequestStruct
	noTag.Filters = nil
	got = AppendPullRequest(nil, &noTag, Version8)
	if want := append(bytes.Clone(fixed), 0, 0, 0); !bytes.Equal(got, want) {
		t.Fatalf("v8 no tag\n got % x\nwant % x", got, want)
	}
	// Version 9 with no filters: count 0.
	got = AppendPullRequest(nil, &noTag, Version9)
	if want := append(bytes.Clone(fixed), 0, 0, 0, 0); !bytes.Equal(got, want) {
		t.Fatalf("v9 none\n got % x\nwant % x", got, want)
	}
}

func TestPullRequestBad(t *testing.T) {
	for name, b := range map[string][]byte{
		"truncated":      goldenPullRequestV9[:20],
		"unknown filter": append(bytes.Clone(goldenPullRequestV9[:len(goldenPullRequestV9)-26]), 0, 0, 0, 1, 0, 9),
		"huge count":     append(bytes.Clone(goldenPullRequestV9[:len(goldenPullRequestV9)-26]), 0x7F, 0, 0, 0, 0, 1),
		"negative tags":  append(bytes.Clone(goldenPullRequestV9[:len(goldenPullRequestV9)-26]), 0, 0, 0, 1, 0, 1, 0, 1, 0xFF),
	} {
		if _, err := DecodePullRequest(b, Version9); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// goldenPullResponse: offset 100, consumer offset -1, then the tagged golden
// message and the plain golden message, each without its CRC.
func goldenPullResponse() []byte {
	b := []byte{0, 0, 0, 0, 0, 0, 0, 100, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	b = append(b, goldenTaggedMessage[8:]...)
	return append(b, goldenPlainMessage[8:]...)
}

func TestPullResponseGolden(t *testing.T) {
	want := goldenPullResponse()
	got := AppendPullResponse(nil, 100, [][]byte{goldenTaggedMessage[8:], goldenPlainMessage[8:]}, Version9)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n got % x\nwant % x", got, want)
	}
	r, err := DecodePullResponse(want, Version9)
	if err != nil {
		t.Fatal(err)
	}
	if r.FirstPullLogOffset != 100 || r.ConsumerOffset != -1 || len(r.Messages) != 2 {
		t.Fatalf("decoded %+v", r)
	}
	if !reflect.DeepEqual(r.Messages[0].Message, goldenTaggedStruct) || r.Messages[0].PullOffset != 100 {
		t.Fatalf("message 0: %+v", r.Messages[0])
	}
	if !bytes.Equal(r.Messages[0].Payload, goldenTaggedMessage[8:]) || !bytes.Equal(r.Messages[1].Payload, goldenPlainMessage[8:]) {
		t.Fatal("payloads differ")
	}
	if r.Messages[1].PullOffset != 101 || r.Messages[1].Message.MessageID == "" {
		t.Fatalf("message 1: %+v", r.Messages[1])
	}
	if r, err := DecodePullResponse(nil, Version9); err != nil || len(r.Messages) != 0 {
		t.Fatalf("empty: %+v %v", r, err)
	}
	if _, err := DecodePullResponse(want[:len(want)-1], Version9); err == nil {
		t.Fatal("truncated: no error")
	}
}

func TestPullResponseOldClientStripsTags(t *testing.T) {
	got := AppendPullResponse(nil, 7, [][]byte{goldenTaggedMessage[8:]}, Version7)
	// flag..messageId kept (tag bit still set), tag list removed, rest kept.
	p := goldenTaggedMessage[8:]
	tagsAt := 1 + 16 + 2 + 13 + 2 + 5
	want := AppendPullResponseHeader(nil, 7)
	want = append(want, p[:tagsAt]...)
	want = append(want, p[tagsAt+1+5+4:]...)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n got % x\nwant % x", got, want)
	}
	r, err := DecodePullResponse(got, Version7)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Messages[0].Message
	if m.Tags != nil || m.Flag != MessageFlagTags || !reflect.DeepEqual(m.Attrs, goldenTaggedStruct.Attrs) || m.MessageID != "msg-1" {
		t.Fatalf("decoded %+v", m)
	}
}

var goldenAckRequestV9 = []byte{
	0x00, 0x03, 's', 'u', 'b',
	0x00, 0x02, 'g', '1',
	0x00, 0x02, 'c', '1',
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
	0x00,
}

func TestAckRequestGolden(t *testing.T) {
	a := AckRequest{Subject: "sub", ConsumerGroup: "g1", ConsumerID: "c1", PullOffsetBegin: 5, PullOffsetLast: 9}
	if got := AppendAckRequest(nil, &a, Version9); !bytes.Equal(got, goldenAckRequestV9) {
		t.Fatalf("encoded\n got % x\nwant % x", got, goldenAckRequestV9)
	}
	d, err := DecodeAckRequest(goldenAckRequestV9, Version9)
	if err != nil || !reflect.DeepEqual(d, a) || d.IsHeartbeat() {
		t.Fatalf("decoded %+v %v", d, err)
	}
	v7 := goldenAckRequestV9[:len(goldenAckRequestV9)-1]
	if got := AppendAckRequest(nil, &a, Version7); !bytes.Equal(got, v7) {
		t.Fatalf("v7\n got % x\nwant % x", got, v7)
	}
	if d, err := DecodeAckRequest(v7, Version7); err != nil || !reflect.DeepEqual(d, a) {
		t.Fatalf("v7 decoded %+v %v", d, err)
	}
	if _, err := DecodeAckRequest(v7, Version9); err == nil {
		t.Fatal("missing broadcast byte at v9: no error")
	}
	hb := a
	hb.PullOffsetBegin, hb.PullOffsetLast, hb.Broadcast = -1, -1, true
	d, err = DecodeAckRequest(AppendAckRequest(nil, &hb, Version9), Version9)
	if err != nil || !d.IsHeartbeat() || !d.Broadcast {
		t.Fatalf("heartbeat %+v %v", d, err)
	}
}

func FuzzDecodePullRequest(f *testing.F) {
	f.Add(goldenPullRequestV9, int16(9))
	f.Add(goldenPullRequestV9[:len(goldenPullRequestV9)-26], int16(7))
	f.Add(AppendPullRequest(nil, &goldenPullRequestStruct, Version8), int16(8))
	f.Fuzz(func(t *testing.T, data []byte, version int16) {
		var r PullRequest
		var err error
		checkAlloc(t, len(data), 16, func() { r, err = DecodePullRequest(data, version) })
		if err != nil {
			return
		}
		again, err := DecodePullRequest(AppendPullRequest(nil, &r, version), version)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if version >= Version9 && !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip\n got %+v\nwant %+v", again, r)
		}
	})
}

func FuzzDecodePullResponse(f *testing.F) {
	f.Add(goldenPullResponse(), int16(9))
	f.Add(AppendPullResponse(nil, 7, [][]byte{goldenTaggedMessage[8:]}, Version7), int16(7))
	f.Add([]byte{}, int16(9))
	f.Fuzz(func(t *testing.T, data []byte, version int16) {
		var r PullResponse
		var err error
		checkAlloc(t, len(data), 16, func() { r, err = DecodePullResponse(data, version) })
		if err != nil || len(data) == 0 {
			return
		}
		payloads := make([][]byte, len(r.Messages))
		for i := range r.Messages {
			payloads[i] = r.Messages[i].Payload
		}
		if version >= Version8 {
			if got := AppendPullResponse(nil, r.FirstPullLogOffset, payloads, version); !bytes.Equal(got[16:], data[16:]) {
				t.Fatalf("re-encode differs")
			}
		}
	})
}

func FuzzDecodeAckRequest(f *testing.F) {
	f.Add(goldenAckRequestV9, int16(9))
	f.Add(goldenAckRequestV9[:len(goldenAckRequestV9)-1], int16(7))
	f.Fuzz(func(t *testing.T, data []byte, version int16) {
		var a AckRequest
		var err error
		checkAlloc(t, len(data), 4, func() { a, err = DecodeAckRequest(data, version) })
		if err != nil {
			return
		}
		again, err := DecodeAckRequest(AppendAckRequest(nil, &a, version), version)
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("round trip %+v %v, want %+v", again, err, a)
		}
	})
}
