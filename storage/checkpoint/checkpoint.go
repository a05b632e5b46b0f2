package checkpoint

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/qmq-go/qmq/storage/vfs"
)

// MessageCheckpoint records how far the message log has been replayed into
// the consumer logs: replay resumes at Offset, and MaxSequences holds each
// subject's largest sequence at that point.
type MessageCheckpoint struct {
	Offset       int64
	MaxSequences map[string]int64
	// Subjects, when set, are MaxSequences's keys in sorted order, kept by
	// a caller that writes checkpoints of tens of thousands of subjects
	// (sorting them for every checkpoint cost tens of milliseconds). It is
	// checked, not trusted: keys out of order, repeated or missing make
	// EncodeMessage sort them itself.
	Subjects []string
}

// ActionCheckpoint records how far the action log has been replayed: replay
// resumes at Offset, and Data is the storage/pulllog table at that point
// (opaque here). Empty Data stands for an empty table.
type ActionCheckpoint struct {
	Offset int64
	Data   []byte
}

const (
	messageVersion = "2"
	actionVersion  = "3"
	crcPrefix      = "#crc32:"
)

// SaveMessage atomically writes cp as the newest message checkpoint in dir
// and keeps the newest retain files (DefaultRetain if retain < 1). Saves must
// not run concurrently.
func SaveMessage(fs vfs.FS, dir string, cp MessageCheckpoint, retain int) error {
	data, err := EncodeMessage(cp)
	if err != nil {
		return fmt.Errorf("save %s: %w", MessageKind, err)
	}
	return save(fs, dir, MessageKind, data, retain)
}

// LoadMessage returns the newest valid message checkpoint in dir. found is
// false with a nil error when there is none at all (a fresh store); when
// files exist but none is valid the error wraps ErrCorrupt.
func LoadMessage(fs vfs.FS, dir string) (cp MessageCheckpoint, found bool, err error) {
	found, err = load(fs, dir, MessageKind, func(b []byte) error {
		var perr error
		cp, perr = DecodeMessage(b)
		return perr
	})
	if !found {
		cp = MessageCheckpoint{}
	}
	return cp, found, err
}

// SaveAction atomically writes cp as the newest action checkpoint in dir and
// keeps the newest retain files (DefaultRetain if retain < 1). Saves must not
// run concurrently.
func SaveAction(fs vfs.FS, dir string, cp ActionCheckpoint, retain int) error {
	return save(fs, dir, ActionKind, EncodeAction(cp), retain)
}

// LoadAction returns the newest valid action checkpoint in dir, with the
// same found/error rules as LoadMessage.
func LoadAction(fs vfs.FS, dir string) (cp ActionCheckpoint, found bool, err error) {
	found, err = load(fs, dir, ActionKind, func(b []byte) error {
		var perr error
		cp, perr = DecodeAction(b)
		return perr
	})
	if !found {
		cp = ActionCheckpoint{}
	}
	return cp, found, err
}

// EncodeMessage renders cp in QMQ's version 2 text format plus our checksum
// line. Subjects are written in sorted order so equal checkpoints produce
// equal files.
func EncodeMessage(cp MessageCheckpoint) ([]byte, error) {
	if len(cp.Subjects) == len(cp.MaxSequences) {
		if b, ok, err := encodeMessage(cp, cp.Subjects); ok || err != nil {
			return b, err
		}
	}
	b, _, err := encodeMessage(cp, slices.Sorted(maps.Keys(cp.MaxSequences)))
	return b, err
}

// encodeMessage writes cp's subjects in the order given, which must be
// strictly increasing and name only subjects of cp (as many as it has):
// ok is false when it does not, checked as the lines are written so that
// each subject is looked up once.
func encodeMessage(cp MessageCheckpoint, subjects []string) (_ []byte, ok bool, _ error) {
	var b bytes.Buffer
	b.Grow(32 + len(subjects)*48)
	num := make([]byte, 0, 20)
	b.WriteString(messageVersion)
	b.WriteByte('\n')
	b.Write(strconv.AppendInt(num, cp.Offset, 10))
	b.WriteByte('\n')
	for i, subject := range subjects {
		seq, found := cp.MaxSequences[subject]
		if !found || (i > 0 && subjects[i-1] >= subject) {
			return nil, false, nil
		}
		if strings.ContainsAny(subject, "\r\n") {
			return nil, false, fmt.Errorf("subject %q contains a line break", subject)
		}
		b.WriteString(subject)
		b.WriteByte('/')
		b.Write(strconv.AppendInt(num, seq, 10))
		b.WriteByte('\n')
	}
	appendCRC(&b)
	return b.Bytes(), true, nil
}

// DecodeMessage parses a message checkpoint written by EncodeMessage or by
// QMQ (without the checksum line).
func DecodeMessage(data []byte) (MessageCheckpoint, error) {
	lines, err := bodyLines(data)
	if err != nil {
		return MessageCheckpoint{}, err
	}
	offset, err := header(lines, messageVersion)
	if err != nil {
		return MessageCheckpoint{}, err
	}
	cp := MessageCheckpoint{Offset: offset, MaxSequences: make(map[string]int64, len(lines)-2)}
	for i, line := range lines[2:] {
		slash := strings.LastIndexByte(line, '/')
		if slash < 0 {
			return MessageCheckpoint{}, fmt.Errorf("line %d: no '/' in %q", i+3, line)
		}
		subject := line[:slash]
		seq, err := strconv.ParseInt(line[slash+1:], 10, 64)
		if err != nil {
			return MessageCheckpoint{}, fmt.Errorf("line %d: max sequence: %w", i+3, err)
		}
		if _, dup := cp.MaxSequences[subject]; dup {
			return MessageCheckpoint{}, fmt.Errorf("line %d: subject %q repeated", i+3, subject)
		}
		cp.MaxSequences[subject] = seq
	}
	return cp, nil
}

// EncodeAction renders cp in our action checkpoint format (see the package
// documentation).
func EncodeAction(cp ActionCheckpoint) []byte {
	var b bytes.Buffer
	b.WriteString(actionVersion)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(cp.Offset, 10))
	b.WriteByte('\n')
	if len(cp.Data) > 0 {
		enc := base64.NewEncoder(base64.StdEncoding, &b)
		_, _ = enc.Write(cp.Data) // writes to a bytes.Buffer cannot fail
		_ = enc.Close()
		b.WriteByte('\n')
	}
	appendCRC(&b)
	return b.Bytes()
}

// DecodeAction parses an action checkpoint written by EncodeAction. QMQ's
// action checkpoints are rejected unless they list no subject at all.
func DecodeAction(data []byte) (ActionCheckpoint, error) {
	lines, err := bodyLines(data)
	if err != nil {
		return ActionCheckpoint{}, err
	}
	offset, err := header(lines, actionVersion)
	if err != nil {
		return ActionCheckpoint{}, err
	}
	cp := ActionCheckpoint{Offset: offset}
	switch len(lines) {
	case 2:
	case 3:
		cp.Data, err = base64.StdEncoding.Strict().DecodeString(lines[2])
		if err != nil {
			return ActionCheckpoint{}, fmt.Errorf("payload: %w", err)
		}
	default:
		return ActionCheckpoint{}, fmt.Errorf("%d lines after the offset, want at most 1 (a QMQ action checkpoint?)", len(lines)-2)
	}
	return cp, nil
}

func appendCRC(b *bytes.Buffer) {
	fmt.Fprintf(b, "%s%08x\n", crcPrefix, crc32.ChecksumIEEE(b.Bytes()))
}

// bodyLines verifies and strips the checksum line when there is one and
// returns the lines of the body up to the first empty line (where QMQ's
// reader stops too). Anything after an empty line is an error, since
// neither writer produces it.
func bodyLines(data []byte) ([]string, error) {
	body := data
	if i := bytes.LastIndex(data, []byte("\n"+crcPrefix)); i >= 0 {
		body = data[:i+1]
		sum := strings.TrimSuffix(string(data[i+1+len(crcPrefix):]), "\n")
		want, err := strconv.ParseUint(sum, 16, 32)
		if err != nil || len(sum) != 8 {
			return nil, fmt.Errorf("malformed checksum line %q", sum)
		}
		if got := crc32.ChecksumIEEE(body); got != uint32(want) {
			return nil, fmt.Errorf("checksum mismatch: file says %08x, content has %08x", want, got)
		}
	}
	lines := strings.Split(string(body), "\n")
	for i, line := range lines {
		if line != "" {
			continue
		}
		for _, rest := range lines[i+1:] {
			if rest != "" {
				return nil, errors.New("content after an empty line")
			}
		}
		lines = lines[:i]
		break
	}
	return lines, nil
}

// header checks the version line and parses the offset line.
func header(lines []string, version string) (int64, error) {
	if len(lines) < 2 {
		return 0, fmt.Errorf("truncated: %d lines, want at least 2", len(lines))
	}
	if lines[0] != version {
		return 0, fmt.Errorf("version %q, want %s", lines[0], version)
	}
	offset, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("offset: %w", err)
	}
	if offset < 0 {
		return 0, fmt.Errorf("negative offset %d", offset)
	}
	return offset, nil
}
