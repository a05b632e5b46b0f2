package conf

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// A misspelled key in a .properties file is otherwise silently ignored: the
// setting keeps its default and nothing says so. Every Reader records the
// keys it reads (and the keys it accepts but ignores on purpose), so that
// once a component has read its settings, CheckKeys can name the keys that
// nobody read, with the nearest known key as a suggestion.

// UnknownKey is a key that no reader of its file (or, for --set, of the
// component) reads.
type UnknownKey struct {
	Source     string // the file's path, or "--set"
	Key        string
	Suggestion string // the nearest known key, "" when none is close
	Elsewhere  string // another file of the component that reads Key, "" when none
}

func (u UnknownKey) String() string {
	s := fmt.Sprintf("%s: unknown key '%s'", u.Source, u.Key)
	switch {
	case u.Elsewhere != "":
		return s + fmt.Sprintf(" (it belongs in %s)", u.Elsewhere)
	case u.Suggestion != "":
		return s + fmt.Sprintf(" (did you mean '%s'?)", u.Suggestion)
	}
	return s
}

// IgnoredKey is a key a file may carry (QMQ has it) that is accepted and
// not used, with the reason.
type IgnoredKey struct {
	Source string // the file's path
	Key    string
	Note   string
}

func (k IgnoredKey) String() string {
	return fmt.Sprintf("%s: key '%s' is accepted and ignored: %s", k.Source, k.Key, k.Note)
}

// KeyReport is what CheckKeys found in the files.
type KeyReport struct {
	Unknown []UnknownKey // typos or keys of another component: worth a warning each
	Ignored []IgnoredKey // known keys without effect here
}

// Log writes one WARN line per unknown key and one INFO line per ignored key.
func (k KeyReport) Log(log hclog.Logger) {
	for _, u := range k.Unknown {
		log.Warn(u.String() + "; it has no effect")
	}
	for _, i := range k.Ignored {
		log.Info(i.String())
	}
}

// Ignore declares key as one this reader accepts without using it (a key
// QMQ's files carry that has no meaning here): CheckKeys then reports it,
// when present in the file, as ignored with note instead of as unknown.
func (r *Reader) Ignore(key, note string) {
	if r.ignored == nil {
		r.ignored = map[string]string{}
	}
	r.ignored[key] = note
}

// known reports whether key was read or declared ignored.
func (r *Reader) known(key string) bool {
	_, read := r.read[key]
	_, ignored := r.ignored[key]
	return read || ignored
}

// CheckKeys compares the keys of the readers' files, and the --set
// overrides o, with the keys the readers read or ignore; call it once the
// component has read all its settings. Readers of the same file (by path)
// are taken together. Unknown file keys are reported, as are ignored keys
// present in a file; an unknown --set key (always the operator's own
// typing) is returned as an error, one line per key. Environment variables
// are not checked: the environment carries much that is not ours.
func CheckKeys(o Overrides, readers ...*Reader) (KeyReport, error) {
	type fileReaders struct {
		file    *File
		readers []*Reader
	}
	var files []*fileReaders
	byPath := map[string]*fileReaders{}
	var all []string // every known key, for suggestions
	seen := map[string]bool{}
	for _, r := range readers {
		for k := range r.read {
			if !seen[k] {
				seen[k] = true
				all = append(all, k)
			}
		}
		if r.file == nil {
			continue
		}
		fr := byPath[r.file.Path]
		if fr == nil {
			fr = &fileReaders{file: r.file}
			byPath[r.file.Path] = fr
			files = append(files, fr)
		}
		fr.readers = append(fr.readers, r)
	}
	sort.Strings(all)
	knownBy := func(rs []*Reader, key string) bool {
		for _, r := range rs {
			if r.known(key) {
				return true
			}
		}
		return false
	}
	var rep KeyReport
	for _, fr := range files {
		for _, k := range fr.file.Keys() {
			if knownBy(fr.readers, k) {
				for _, r := range fr.readers {
					if note, ok := r.ignored[k]; ok {
						if _, read := r.read[k]; !read {
							rep.Ignored = append(rep.Ignored, IgnoredKey{Source: fr.file.Path, Key: k, Note: note})
							break
						}
					}
				}
				continue
			}
			u := UnknownKey{Source: fr.file.Path, Key: k}
			for _, other := range files {
				if other != fr && knownBy(other.readers, k) {
					u.Elsewhere = other.file.Name
					break
				}
			}
			if u.Elsewhere == "" {
				u.Suggestion = Nearest(k, all)
			}
			rep.Unknown = append(rep.Unknown, u)
		}
	}
	var errs []error
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if knownBy(readers, k) {
			continue
		}
		u := UnknownKey{Source: "--set", Key: k, Suggestion: Nearest(k, all)}
		errs = append(errs, errors.New(u.String()+": fix or remove it"))
	}
	return rep, errors.Join(errs...)
}

// Nearest returns the key of known closest to key by edit distance
// (ignoring case), or "" when none is close enough to be a likely typo:
// within a third of key's length in edits, and at least 3.
func Nearest(key string, known []string) string {
	limit := max(3, len(key)/3)
	best, bestD := "", limit+1
	lk := strings.ToLower(key)
	for _, k := range known {
		if d := editDistance(lk, strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes (keys
// are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
