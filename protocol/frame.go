package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// Header is the fixed frame header. The magic number is not stored: it is
// checked on read and always written.
type Header struct {
	Code        int16 // request code, or response status
	Version     int16
	Opaque      int32 // request id, echoed in the response
	Flag        int32 // FlagRequest or FlagResponse
	RequestCode int16 // for responses: the code of the request answered
}

// Frame is one decoded frame. Body aliases no caller memory after ReadFrame.
type Frame struct {
	Header Header
	Body   []byte
}

// IsResponse reports whether the frame is a response.
func (f Frame) IsResponse() bool { return f.Header.Flag&FlagResponse != 0 }

// FrameError reports a frame that violates the protocol (or a frame cut short
// by the peer closing the connection, in which case Err is
// io.ErrUnexpectedEOF). Any FrameError leaves the stream unusable.
type FrameError struct {
	Msg string
	Err error // underlying cause, if any (io.ErrUnexpectedEOF for truncation)
}

func (e *FrameError) Error() string { return e.Msg }

// Unwrap returns the underlying cause.
func (e *FrameError) Unwrap() error { return e.Err }

// prefixLen is what ReadFrame reads before validating anything: total i32,
// headerSize i16 and the magic. Every legal frame is at least 24 bytes long,
// so this never blocks on a well-formed peer, and it is shorter than any
// HTTP request line, so a confused HTTP client is diagnosed at once.
const prefixLen = 4 + 2 + 4

// Body buffers grow only with the bytes that arrived: a peer that declares
// a large frame and sends little costs little. The first buffer holds what
// the reader has already buffered (all of a small frame, usually), at least
// minBodyChunk; each further one at most what has arrived so far, and never
// more than maxLookAhead. A body that took more than one buffer is joined
// at the end (one extra copy, for bodies beyond the reader's buffer only).
const (
	minBodyChunk = 4 << 10
	maxLookAhead = 1 << 20
)

// ReadOptions are the limits of ReadFrameWith.
type ReadOptions struct {
	// MaxFrameSize bounds total; <= 0 means DefaultMaxFrameSize, larger
	// values are clamped to it.
	MaxFrameSize int
	// Reserve, if set, is called before each body buffer is allocated with
	// its size n (first: the frame's first buffer). A non-nil error ends the
	// read and is returned unchanged; the bytes of the refused call are not
	// reserved. The caller owns what Reserve granted: the body's length
	// when ReadFrameWith succeeds, the sum of the granted calls otherwise.
	Reserve func(n int, first bool) error
}

// effectiveMax clamps a caller-supplied frame limit to (0, DefaultMaxFrameSize].
func effectiveMax(maxFrameSize int) int {
	if maxFrameSize <= 0 || maxFrameSize > DefaultMaxFrameSize {
		return DefaultMaxFrameSize
	}
	return maxFrameSize
}

// ReadFrame reads one frame: total i32 (bytes after the field) | headerSize i16
// | header | body. maxFrameSize bounds total (<= 0 means DefaultMaxFrameSize,
// larger values are clamped to it). Header bytes beyond the 18 we know are
// skipped.
//
// A clean end of stream before the first byte returns io.EOF. A protocol
// violation or a frame cut short returns a *FrameError (wrapping
// io.ErrUnexpectedEOF in the latter case). Other read errors (timeouts,
// resets) are returned unchanged.
func ReadFrame(r io.Reader, maxFrameSize int) (Frame, error) {
	return ReadFrameWith(r, ReadOptions{MaxFrameSize: maxFrameSize})
}

// ReadFrameWith is ReadFrame with the limits in o.
func ReadFrameWith(r io.Reader, o ReadOptions) (Frame, error) {
	limit := effectiveMax(o.MaxFrameSize)

	var hdr [prefixLen + HeaderSize - 4]byte // one buffer: it escapes to the heap
	pre, rest := hdr[:prefixLen], hdr[prefixLen:]
	if n, err := io.ReadFull(r, pre); err != nil {
		if n == 0 && err == io.EOF {
			return Frame{}, io.EOF
		}
		return Frame{}, truncated(err, "frame prefix", n, prefixLen)
	}
	total := int32(binary.BigEndian.Uint32(pre[0:4]))
	headerSize := int16(binary.BigEndian.Uint16(pre[4:6]))
	if magic := binary.BigEndian.Uint32(pre[6:10]); magic != Magic {
		return Frame{}, &FrameError{Msg: badMagicMessage(magic, pre)}
	}
	if total < 2+HeaderSize {
		return Frame{}, &FrameError{Msg: fmt.Sprintf(
			"frame length %d is below the minimum %d (2-byte header size + %d-byte header)",
			total, 2+HeaderSize, HeaderSize)}
	}
	if int64(total) > int64(limit) {
		return Frame{}, &FrameError{Msg: fmt.Sprintf(
			"frame length %d exceeds the limit of %d bytes", total, limit)}
	}
	if headerSize < HeaderSize || int32(headerSize) > total-2 {
		return Frame{}, &FrameError{Msg: fmt.Sprintf(
			"header size %d is invalid for a frame of length %d (must be between %d and %d)",
			headerSize, total, HeaderSize, total-2)}
	}

	if n, err := io.ReadFull(r, rest); err != nil {
		return Frame{}, truncated(err, "frame header", prefixLen+n, prefixLen+len(rest))
	}
	h := Header{
		Code:        int16(binary.BigEndian.Uint16(rest[0:2])),
		Version:     int16(binary.BigEndian.Uint16(rest[2:4])),
		Opaque:      int32(binary.BigEndian.Uint32(rest[4:8])),
		Flag:        int32(binary.BigEndian.Uint32(rest[8:12])),
		RequestCode: int16(binary.BigEndian.Uint16(rest[12:14])),
	}
	if h.Flag != FlagRequest && h.Flag != FlagResponse {
		return Frame{}, &FrameError{Msg: fmt.Sprintf(
			"header flag %d is neither 0 (request) nor 1 (response); code=%d opaque=%d",
			h.Flag, h.Code, h.Opaque)}
	}
	if extra := int64(headerSize) - HeaderSize; extra > 0 {
		if n, err := io.CopyN(io.Discard, r, extra); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, truncated(err, "extended frame header", int(n), int(extra))
		}
	}

	bodyLen := int(total) - 2 - int(headerSize)
	body, err := readBody(r, bodyLen, o.Reserve)
	if err != nil {
		return Frame{}, err
	}
	return Frame{Header: h, Body: body}, nil
}

// buffered is implemented by readers that hold bytes already received
// (*bufio.Reader).
type buffered interface{ Buffered() int }

// readBody reads exactly n bytes, allocating only as data arrives (see
// minBodyChunk) and asking reserve, if set, before each allocation.
func readBody(r io.Reader, n int, reserve func(n int, first bool) error) ([]byte, error) {
	avail := 0
	if b, ok := r.(buffered); ok {
		avail = b.Buffered()
	}
	size := min(n, max(minBodyChunk, avail))
	if reserve != nil {
		if err := reserve(size, true); err != nil {
			return nil, err
		}
	}
	first := make([]byte, size)
	if m, err := io.ReadFull(r, first); err != nil {
		return nil, truncated(err, "frame body", m, n)
	}
	if size == n {
		return first, nil
	}
	chunks := [][]byte{first}
	got := size
	for got < n {
		size = min(n-got, max(minBodyChunk, min(got, maxLookAhead)))
		if reserve != nil {
			if err := reserve(size, false); err != nil {
				return nil, err
			}
		}
		c := make([]byte, size)
		m, err := io.ReadFull(r, c)
		got += m
		if err != nil {
			return nil, truncated(err, "frame body", got, n)
		}
		chunks = append(chunks, c)
	}
	body := make([]byte, 0, n)
	for i, c := range chunks {
		body = append(body, c...)
		chunks[i] = nil // let the collector take each part once copied
	}
	return body, nil
}

// truncated converts an io.ReadFull failure into the error ReadFrame reports.
func truncated(err error, what string, got, want int) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &FrameError{
			Msg: fmt.Sprintf("truncated frame: stream ended after %d of %d bytes of the %s", got, want, what),
			Err: io.ErrUnexpectedEOF,
		}
	}
	return err
}

// badMagicMessage explains a bad magic number, guessing what the peer is.
func badMagicMessage(magic uint32, first []byte) string {
	var hint string
	s := string(first)
	switch {
	case looksLikeHTTP(s):
		hint = "the peer is not speaking the QMQ protocol (an HTTP client on a TCP port?)"
	case len(first) >= 2 && first[0] == 0x16 && first[1] == 0x03:
		hint = "the peer is not speaking the QMQ protocol (a TLS client on a plain TCP port?)"
	default:
		hint = "the peer is not speaking the QMQ protocol or the stream is out of sync"
	}
	return fmt.Sprintf("bad magic 0x%08X (expected 0x%08X): %s; first bytes %s",
		magic, Magic, hint, quoteBytes(first))
}

var httpPrefixes = []string{"GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ", "PRI * HTTP", "HTTP/"}

func looksLikeHTTP(s string) bool {
	for _, p := range httpPrefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// quoteBytes renders bytes as a Go-quoted string if mostly printable, hex otherwise.
func quoteBytes(b []byte) string {
	printable := 0
	for _, c := range b {
		if c >= 0x20 && c < 0x7f || c == '\r' || c == '\n' || c == '\t' {
			printable++
		}
	}
	if printable*4 >= len(b)*3 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("% x", b)
}

// AppendFrame appends the encoding of one frame with an 18-byte header and
// returns the extended slice. Bodies longer than DefaultMaxFrameSize produce
// frames no QMQ peer of ours will accept; WriteFrame refuses them.
func AppendFrame(dst []byte, h Header, body []byte) []byte {
	dst = appendHeader(dst, h, len(body))
	return append(dst, body...)
}

// AppendFrameHeader appends the frame prefix and header of a frame whose body
// is bodyLen bytes long, for a writer that sends the body itself.
func AppendFrameHeader(dst []byte, h Header, bodyLen int) []byte {
	return appendHeader(dst, h, bodyLen)
}

func appendHeader(dst []byte, h Header, bodyLen int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(2+HeaderSize+bodyLen))
	dst = binary.BigEndian.AppendUint16(dst, HeaderSize)
	dst = binary.BigEndian.AppendUint32(dst, Magic)
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Code))
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Version))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.Opaque))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.Flag))
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.RequestCode))
	return dst
}

// smallFrame is the body size up to which WriteFrame copies the body next to
// the header and issues one write; larger bodies go out as a two-buffer
// vectored write without copying.
const smallFrame = 8 << 10

// WriteFrame writes one frame. It issues a single Write (or, for large bodies,
// one vectored write) so concurrent writers only need to serialise calls.
func WriteFrame(w io.Writer, h Header, body []byte) error {
	if len(body) > DefaultMaxFrameSize-2-HeaderSize {
		return fmt.Errorf("qmq: frame body of %d bytes exceeds the maximum frame size %d",
			len(body), DefaultMaxFrameSize)
	}
	if len(body) <= smallFrame {
		buf := make([]byte, 0, 4+2+HeaderSize+len(body))
		_, err := w.Write(AppendFrame(buf, h, body))
		return err
	}
	var hdr [4 + 2 + HeaderSize]byte
	bufs := net.Buffers{appendHeader(hdr[:0], h, len(body)), body}
	_, err := bufs.WriteTo(w)
	return err
}

// NewRequest builds a request frame of the current protocol version.
func NewRequest(code int16, opaque int32, body []byte) Frame {
	return Frame{
		Header: Header{Code: code, Version: CurrentVersion, Opaque: opaque, Flag: FlagRequest, RequestCode: code},
		Body:   body,
	}
}

// NewResponse builds the response to req with the given status: it echoes the
// opaque and version and records the request code.
func NewResponse(req Header, status int16, body []byte) Frame {
	return Frame{
		Header: Header{Code: status, Version: req.Version, Opaque: req.Opaque, Flag: FlagResponse, RequestCode: req.Code},
		Body:   body,
	}
}
