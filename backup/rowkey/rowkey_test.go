package rowkey

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTimeKeyIsQMQsReversedDate(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	ts := time.Date(2019, 6, 3, 15, 38, 9, 123e6, shanghai)
	// 999999999999 - 190603153809
	if got, want := TimeKey(ts, shanghai), "809396846190"; got != want {
		t.Fatalf("TimeKey = %s, want %s", got, want)
	}
	// The same instant in UTC is 07:38:09.
	if got, want := TimeKey(ts, time.UTC), "809396926190"; got != want {
		t.Fatalf("TimeKey(UTC) = %s, want %s", got, want)
	}
	back, err := ParseTimeKey("809396846190", shanghai)
	if err != nil || !back.Equal(ts.Truncate(time.Second)) {
		t.Fatalf("ParseTimeKey = %v, %v; want %v", back, err, ts.Truncate(time.Second))
	}
	// Newer sorts first.
	if !(TimeKey(ts.Add(time.Second), time.UTC) < TimeKey(ts, time.UTC)) {
		t.Fatal("a newer time key does not sort before an older one")
	}
	if _, err := ParseTimeKey("80939684619x", time.UTC); err == nil {
		t.Fatal("ParseTimeKey accepted a non-digit")
	}
}

func TestMD5AndSeqKeys(t *testing.T) {
	if got := MD5Key("abc"); got != "900150983cd24fb0d6963f7d28e17f72" {
		t.Fatalf("MD5Key(abc) = %s", got)
	}
	if got, _ := SeqKey(42); got != "0000000000000000042" {
		t.Fatalf("SeqKey(42) = %s", got)
	}
	if _, err := SeqKey(-1); err == nil {
		t.Fatal("SeqKey(-1) gave no error")
	}
}

func TestKeysRoundTrip(t *testing.T) {
	tk := TimeKey(time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC), time.UTC)
	md := MD5Key("190603.153809.100.80.128.160.12812.0")
	seq, _ := SeqKey(1234567)

	mk := MessageKey("012345", tk, md)
	if len(mk) != MessageKeyLen {
		t.Fatalf("message key length %d", len(mk))
	}
	mp, err := ParseMessageKey(mk)
	if err != nil || mp != (MessageKeyParts{"012345", tk, md}) {
		t.Fatalf("ParseMessageKey = %+v, %v", mp, err)
	}

	rk := RetryKey("000001", md, tk, "000002", "000003", seq)
	rp, err := ParseRetryKey(rk)
	if err != nil || rp != (RetryKeyParts{"000001", md, tk, "000002", "000003", 1234567}) || len(rk) != RetryKeyLen {
		t.Fatalf("ParseRetryKey = %+v, %v", rp, err)
	}

	dk := DeadKey("000001", "000004", tk, md)
	dp, err := ParseDeadKey(dk)
	if err != nil || dp != (DeadKeyParts{"000001", "000004", tk, md}) || len(dk) != DeadKeyLen {
		t.Fatalf("ParseDeadKey = %+v, %v", dp, err)
	}

	ck := RecordKey("000001", seq, "000002", "000003", 1)
	if want := "000001" + seq + "000002" + "000003" + "1"; string(ck) != want {
		t.Fatalf("RecordKey = %s, want %s", ck, want)
	}
	cp, err := ParseRecordKey(ck)
	if err != nil || cp != (RecordKeyParts{"000001", 1234567, "000002", "000003", 1}) {
		t.Fatalf("ParseRecordKey = %+v, %v", cp, err)
	}
	if got := DeadRecordKey("000009", md, "000003"); len(got) != DeadRecordKeyLen {
		t.Fatalf("dead record key length %d", len(got))
	}

	for _, bad := range [][]byte{nil, []byte("x"), append([]byte("A"), mk[1:]...)} {
		if _, err := ParseMessageKey(bad); err == nil {
			t.Errorf("ParseMessageKey(%q) gave no error", bad)
		}
	}
}

func TestSplitSubject(t *testing.T) {
	cases := []struct{ in, prefix, subject, group string }{
		{"order.changed", "", "order.changed", ""},
		{"%RETRY%order.changed%billing", RetryPrefix, "order.changed", "billing"},
		{"%DEAD_RETRY%order.changed%billing", DeadRetryPrefix, "order.changed", "billing"},
		{"%RETRY%order.changed", "", "%RETRY%order.changed", ""},
		{"%OTHER%a%b", "", "%OTHER%a%b", ""},
	}
	for _, c := range cases {
		p, s, g := SplitSubject(c.in)
		if p != c.prefix || s != c.subject || g != c.group {
			t.Errorf("SplitSubject(%q) = %q %q %q, want %q %q %q", c.in, p, s, g, c.prefix, c.subject, c.group)
		}
	}
	if RetrySubject("a.b") != "%RETRY%a.b" || DeadRetrySubject("a.b") != "%DEAD_RETRY%a.b" {
		t.Fatal("retry subject names differ from QMQ's")
	}
}

// TestIndexValueIsQMQsLayout checks the bytes against the layout QMQ's
// MessageIndexBatchBackup writes (Bytes.setLong/setInt, big-endian).
func TestIndexValueIsQMQsLayout(t *testing.T) {
	v := IndexValue{Sequence: 7, CreateTimeMs: 0x0102030405060708, BrokerGroup: "dev", MessageID: "m1"}
	b, err := v.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("0000000000000007" + "0102030405060708" + "00000003" + hex.EncodeToString([]byte("dev")) + hex.EncodeToString([]byte("m1")))
	if !bytes.Equal(b, want) {
		t.Fatalf("index value %x, want %x", b, want)
	}
	got, err := DecodeIndexValue(b)
	if err != nil || got != v {
		t.Fatalf("DecodeIndexValue = %+v, %v", got, err)
	}
	if _, err := (IndexValue{BrokerGroup: string(make([]byte, 201))}).Encode(nil); err == nil {
		t.Fatal("a 201-byte broker group was accepted")
	}
}

func TestRecordValuesRoundTrip(t *testing.T) {
	r := RecordValue{TimestampMs: 1700000000000, ConsumerID: "host-1@pid", ConsumerGroup: "billing"}
	b, err := r.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 12+len(r.ConsumerID)+len(r.ConsumerGroup) {
		t.Fatalf("record value is %d bytes", len(b))
	}
	if got, err := DecodeRecordValue(b); err != nil || got != r {
		t.Fatalf("DecodeRecordValue = %+v, %v", got, err)
	}
	if _, err := DecodeRecordValue(b[:len(b)-1]); err == nil {
		t.Fatal("a truncated record value decoded")
	}
	d := DeadRecordValue{Sequence: 9, TimestampMs: 1700000000500, ConsumerGroup: "billing"}
	if got, err := DecodeDeadRecordValue(d.Encode(nil)); err != nil || got != d {
		t.Fatalf("DecodeDeadRecordValue = %+v, %v", got, err)
	}
	dv := DetailValue{CreateTimeMs: 5, Kind: 2, MessageID: "id", ConsumerGroup: "g", Content: []byte{1, 2, 3}}
	b, err = dv.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeDetailValue(b); err != nil || !reflect.DeepEqual(got, dv) {
		t.Fatalf("DecodeDetailValue = %+v, %v", got, err)
	}
	// With the log offset (a message kept without content); a row written
	// before offsets were recorded still decodes (above).
	located := DetailValue{CreateTimeMs: 5, Kind: 0, LogOffset: 1 << 40, Located: true, MessageID: "id"}
	if b, err = located.Encode(nil); err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeDetailValue(b); err != nil || !reflect.DeepEqual(got, located) {
		t.Fatalf("DecodeDetailValue with an offset = %+v, %v", got, err)
	}
}

func FuzzDecodeValues(f *testing.F) {
	iv, _ := IndexValue{Sequence: 1, CreateTimeMs: 2, BrokerGroup: "g", MessageID: "m"}.Encode(nil)
	rv, _ := RecordValue{TimestampMs: 1, ConsumerID: "c", ConsumerGroup: "g"}.Encode(nil)
	dv, _ := DetailValue{CreateTimeMs: 1, Kind: 2, MessageID: "m", ConsumerGroup: "g", Content: []byte("x")}.Encode(nil)
	lv, _ := DetailValue{CreateTimeMs: 1, Kind: 0, LogOffset: 77, Located: true, MessageID: "m"}.Encode(nil)
	for _, s := range [][]byte{iv, rv, dv, lv, nil, {0xff}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := DecodeIndexValue(b); err == nil {
			again, err := v.Encode(nil)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("index value %x decoded to %+v re-encodes to %x (%v)", b, v, again, err)
			}
		}
		if v, err := DecodeRecordValue(b); err == nil {
			again, err := v.Encode(nil)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("record value %x re-encodes to %x (%v)", b, again, err)
			}
		}
		if v, err := DecodeDetailValue(b); err == nil {
			again, err := v.Encode(nil)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("detail value %x re-encodes to %x (%v)", b, again, err)
			}
		}
		_, _ = DecodeDeadRecordValue(b)
	})
}

func FuzzParseKeys(f *testing.F) {
	seq, _ := SeqKey(3)
	f.Add(MessageKey("000001", "809396846190", MD5Key("a")))
	f.Add(RetryKey("000001", MD5Key("a"), "809396846190", "000002", "000003", seq))
	f.Add(DeadKey("000001", "000002", "809396846190", MD5Key("a")))
	f.Add(RecordKey("000001", seq, "000002", "000003", 0))
	f.Fuzz(func(t *testing.T, k []byte) {
		if p, err := ParseMessageKey(k); err == nil && !bytes.Equal(MessageKey(p.SubjectID, p.TimeKey, p.MD5), k) {
			t.Fatalf("message key %q does not rebuild", k)
		}
		if p, err := ParseDeadKey(k); err == nil && !bytes.Equal(DeadKey(p.SubjectID, p.ConsumerGroupID, p.TimeKey, p.MD5), k) {
			t.Fatalf("dead key %q does not rebuild", k)
		}
		if p, err := ParseRecordKey(k); err == nil {
			s, _ := SeqKey(p.Sequence)
			if !bytes.Equal(RecordKey(p.SubjectID, s, p.BrokerGroupID, p.ConsumerGroupID, p.Action), k) {
				t.Fatalf("record key %q does not rebuild", k)
			}
		}
		if p, err := ParseRetryKey(k); err == nil {
			s, _ := SeqKey(p.Sequence)
			if !bytes.Equal(RetryKey(p.SubjectID, p.MD5, p.TimeKey, p.BrokerGroupID, p.ConsumerGroupID, s), k) {
				t.Fatalf("retry key %q does not rebuild", k)
			}
		}
	})
}

// TestDetailKeys: a normal message, a retry copy and a dead letter at the
// same broker group and sequence are three rows, the copies' per group.
func TestDetailKeys(t *testing.T) {
	seq, _ := SeqKey(7)
	keys := map[string]bool{}
	for _, k := range [][]byte{
		DetailKey("000001", "000002", seq),
		RetryDetailKey("000001", "000002", seq, "000003"),
		RetryDetailKey("000001", "000002", seq, "000004"),
		DeadDetailKey("000001", "000002", seq, "000003"),
	} {
		if keys[string(k)] {
			t.Fatalf("key %q twice", k)
		}
		keys[string(k)] = true
	}
	if k := RetryDetailKey("000001", "000002", seq, "000003"); string(k) != "000001000002"+seq+"1000003" || len(k) != DetailKeyLen+IDLen {
		t.Fatalf("RetryDetailKey = %q", k)
	}
}

func TestOrderedIDIndexKey(t *testing.T) {
	for _, id := range []string{"", "has space", "tab\there", "ünïcode", strings.Repeat("x", MaxOrderedIDLen+1)} {
		if _, ok := OrderedID(id); ok {
			t.Errorf("OrderedID(%q) accepted", id)
		}
	}
	sid, tk, bg, seq := "000042", "261207184233", "000007", "0000000000000000123"
	id := "261207.184233.10.0.0.5.4242.17"
	oid, ok := OrderedID(id)
	if !ok {
		t.Fatalf("OrderedID(%q) refused", id)
	}
	k := OrderedIDIndexKey(sid, oid, tk, bg, seq)
	gotSid, gotID, gotTk, err := ParseOrderedIDIndexKey(k)
	if err != nil || gotSid != sid || gotID != id || gotTk != tk {
		t.Fatalf("parse %q: %q %q %q %v", k, gotSid, gotID, gotTk, err)
	}
	// The keys of one id sort together, before those of a longer id it begins.
	longer, _ := OrderedID(id + "0")
	if string(OrderedIDIndexKey(sid, oid, "999999999999", bg, seq)) >= string(OrderedIDIndexKey(sid, longer, "000000000000", bg, seq)) {
		t.Fatal("an id's keys do not sort before a longer id's")
	}
	for _, bad := range []string{string(k[:len(k)-1]), "000042 " + tk + bg + seq, strings.Replace(string(k), " ", "_", 1), "x" + string(k[1:])} {
		if _, _, _, err := ParseOrderedIDIndexKey([]byte(bad)); err == nil {
			t.Errorf("ParseOrderedIDIndexKey(%q) accepted", bad)
		}
	}
}
