package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/magiconair/properties"
)

// File is one parsed .properties file. A missing file is not an error: it
// reads as empty so that every key takes its default, as QMQ does.
type File struct {
	Name   string // base name, e.g. "metaserver.properties"
	Path   string // full path as given
	Exists bool
	values map[string]string
	keys   []string // in file order
	data   []byte   // the file as read, for Line
}

// LoadFile reads dir/name. Java .properties syntax applies (key=value,
// key:value, key value, #/! comments, backslash continuations and escapes);
// ${} expansion is disabled because tokens and passwords may contain it.
func LoadFile(dir, name string) (*File, error) {
	path := filepath.Join(dir, name)
	f := &File{Name: name, Path: path, values: map[string]string{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config file %s: %w", path, err)
	}
	loader := &properties.Loader{Encoding: properties.UTF8, DisableExpansion: true}
	p, err := loader.LoadBytes(data)
	if err != nil {
		return nil, fmt.Errorf("parse config file %s: %w", path, err)
	}
	f.Exists = true
	f.data = data
	for _, k := range p.Keys() {
		v, _ := p.Get(k)
		f.values[k] = v
		f.keys = append(f.keys, k)
	}
	return f, nil
}

// Get returns the raw value of key in the file.
func (f *File) Get(key string) (string, bool) {
	v, ok := f.values[key]
	return v, ok
}

// Keys returns the keys in file order.
func (f *File) Keys() []string { return append([]string(nil), f.keys...) }

// Map returns a copy of all key/value pairs (used by map-like files such as
// valid-api-tokens.properties).
func (f *File) Map() map[string]string {
	m := make(map[string]string, len(f.values))
	for k, v := range f.values {
		m[k] = v
	}
	return m
}

// SortedKeys returns the keys sorted, for stable logs.
func (f *File) SortedKeys() []string {
	ks := f.Keys()
	sort.Strings(ks)
	return ks
}

// Line returns the 1-based line on which key is defined, 0 when not found
// (for error messages that point the operator at the line to fix).
func (f *File) Line(key string) int {
	lines := strings.Split(string(f.data), "\n")
	loader := &properties.Loader{Encoding: properties.UTF8, DisableExpansion: true}
	for i := 0; i < len(lines); i++ {
		start := i
		logical := lines[i]
		for continued(lines[i]) && i+1 < len(lines) { // a backslash continues the line
			i++
			logical += "\n" + lines[i]
		}
		t := strings.TrimSpace(logical)
		if t == "" || t[0] == '#' || t[0] == '!' {
			continue
		}
		if p, err := loader.LoadBytes([]byte(logical)); err == nil {
			if _, ok := p.Get(key); ok {
				return start + 1
			}
		}
	}
	return 0
}

// continued reports whether line ends in an odd number of backslashes.
func continued(line string) bool {
	line = strings.TrimRight(line, "\r")
	n := len(line) - len(strings.TrimRight(line, "\\"))
	return n%2 == 1
}
