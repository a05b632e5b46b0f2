package delaystore

import (
	"bytes"
	"testing"
)

func encodeForTest(m Message, seq int64) []byte {
	b := make([]byte, recordSize(m.Subject, m.MessageID, m.Payload))
	encodeRecord(b, &m, seq)
	return b
}

// FuzzDecodeRecord: the record decoder never panics, and what it accepts is
// consistent and re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeForTest(Message{ScheduleTime: 1700000000000, Subject: "order", MessageID: "id-1", Payload: []byte("payload")}, 4096))
	eof := make([]byte, 20)
	fillEOF(eof)
	f.Add(eof)
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord(b, true)
		hdr, herr := decodeRecord(b, false)
		if err == nil && herr != nil {
			t.Fatalf("valid with CRC, invalid without: %v", herr)
		}
		if err != nil {
			return
		}
		if rec.size > len(b) || rec.size < recHeaderSize || hdr.size != rec.size {
			t.Fatalf("size %d of %d bytes", rec.size, len(b))
		}
		if rec.attr == attrEOF {
			return
		}
		m := Message{ScheduleTime: rec.scheduleTime, Subject: string(rec.subject), MessageID: string(rec.msgID), Payload: rec.payload}
		if again := encodeForTest(m, rec.seq); !bytes.Equal(again, b[:rec.size]) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzDecodeDispatch: likewise for dispatch records.
func FuzzDecodeDispatch(f *testing.F) {
	b := make([]byte, dispRecordSize)
	encodeDisp(b, dispRecord{kind: kindDispatched, seq: 77, scheduleTime: 1700000000000, at: 1700000000001})
	f.Add(b)
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeDisp(b)
		if err != nil {
			return
		}
		again := make([]byte, dispRecordSize)
		encodeDisp(again, r)
		if !bytes.Equal(again, b[:dispRecordSize]) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzAppendRaw: replicated bytes are validated before anything is
// appended: arbitrary bytes never panic, never leave an invalid record
// behind, and a reopened store recovers to the same end.
func FuzzAppendRaw(f *testing.F) {
	valid := encodeForTest(Message{ScheduleTime: 1700000000000, Subject: "s", MessageID: "1", Payload: []byte("p")}, 0)
	f.Add(valid, false)
	f.Add(append(valid, valid[:10]...), false)
	disp := make([]byte, dispRecordSize)
	encodeDisp(disp, dispRecord{kind: kindDispatched, seq: 0, scheduleTime: 1700000000000, at: 1})
	f.Add(disp, true)
	f.Fuzz(func(t *testing.T, b []byte, dispatch bool) {
		c := newClock(t0)
		cfg := testConfig(t, t.TempDir(), c)
		cfg.MessageSegmentSize = 160 << 10
		cfg.MaxMessageSize = 1 << 10
		s := mustOpen(t, cfg)
		kind := MessageLog
		if dispatch {
			kind = DispatchLog
		}
		end, err := s.AppendRaw(kind, 0, b)
		if err != nil && end != 0 {
			t.Fatalf("error %v with end %d", err, end)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = mustOpen(t, cfg)
		defer s.Close()
		if got := s.LogEnd(kind); got != end {
			t.Fatalf("recovered end %d, appended to %d", got, end)
		}
	})
}
