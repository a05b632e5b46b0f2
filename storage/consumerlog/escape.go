package consumerlog

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxNameBytes is the longest file name common file systems accept.
const maxNameBytes = 255

// escapeSubject maps a subject to one safe path element, reversibly.
//
// QMQ uses the subject itself as the directory name, and QMQ subjects are
// mostly [A-Za-z0-9._-] plus '%' in retry and dead-letter subjects
// (%RETRY%subject%group), so those bytes, and '@', '+', '=', and valid
// multi-byte UTF-8 are kept as they are: a QMQ consumer log directory keeps
// its name. Every other byte, including '~' (the escape character), '/' and
// control bytes, becomes "~XX" (two upper-case hex digits). A leading '.' is
// escaped too so that no subject maps to ".", ".." or a hidden name.
func escapeSubject(subject string) (string, error) {
	if subject == "" {
		return "", errors.New("empty subject")
	}
	var b strings.Builder
	for i := 0; i < len(subject); {
		c := subject[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(subject[i:])
			if r != utf8.RuneError || size > 1 {
				b.WriteString(subject[i : i+size])
				i += size
				continue
			}
		} else if keepByte(c) && !(i == 0 && c == '.') {
			b.WriteByte(c)
			i++
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('~')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xF])
		i++
	}
	name := b.String()
	if len(name) > maxNameBytes {
		return "", fmt.Errorf("subject %.40q...: escaped name is %d bytes, the limit is %d", subject, len(name), maxNameBytes)
	}
	return name, nil
}

func keepByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '.', '_', '-', '%', '@', '+', '=':
		return true
	}
	return false
}

// unescapeSubject inverts escapeSubject. It accepts only names escapeSubject
// produces (canonical form), so a stray directory never aliases a subject.
func unescapeSubject(name string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '~' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(name) {
			return "", false
		}
		hi, ok1 := unhex(name[i+1])
		lo, ok2 := unhex(name[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	subject := b.String()
	if again, err := escapeSubject(subject); err != nil || again != name {
		return "", false
	}
	return subject, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
