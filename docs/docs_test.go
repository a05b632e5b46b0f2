package docs_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/qmq-go/qmq/conf"
	backupsvc "github.com/qmq-go/qmq/services/backup"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/services/delay"
	"github.com/qmq-go/qmq/services/metaserver"
	"github.com/qmq-go/qmq/services/watchdog"
)

var update = flag.Bool("update", false, "rewrite the generated key tables of docs/configuration.md from the loaders (the Meaning column is kept)")

const configDoc = "configuration.md"

// loaders returns, per configuration file, the reader that read it from an
// empty configuration directory: the loaders' own knowledge of every key,
// its default and range.
func loaders(t *testing.T) map[string]*conf.Reader {
	t.Helper()
	// The metaserver takes two defaults from the process environment.
	t.Setenv("CONSUL_HTTP_ADDR", "")
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	dir := t.TempDir()
	out := map[string]*conf.Reader{}
	br, err := broker.KnownKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	out[br.FileName()] = br
	dl, err := delay.KnownKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	out[dl.FileName()] = dl
	ms, err := metaserver.KnownKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ms {
		out[r.FileName()] = r
	}
	// The watchdog's datasource.properties keys are the metaserver's (it
	// reads the same database), documented once, under the metaserver.
	wd, err := watchdog.KnownKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	out[wd[0].FileName()] = wd[0]
	bk, err := backupsvc.KnownKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range bk {
		out[r.FileName()] = r
	}
	return out
}

// A generated block of configuration.md: the lines between
//
//	<!-- generated: <file> keys|ignored; go test ./docs -run TestConfigDoc -update -->
//	<!-- end generated -->
var (
	beginRe = regexp.MustCompile(`^<!-- generated: (\S+) (keys|ignored);.*-->$`)
	endLine = "<!-- end generated -->"
)

const keysHeader = "| key | kind | default | accepted | meaning |\n|---|---|---|---|---|\n"
const ignoredHeader = "| key | why it has no effect |\n|---|---|\n"

// TestConfigDoc fails when docs/configuration.md's key tables differ from
// what the loaders read: a key read but not documented, a documented key
// nobody reads, or a changed kind, default or range. With -update it
// rewrites the tables, keeping each key's hand-written meaning; a key
// without one fails until it is described.
func TestConfigDoc(t *testing.T) {
	readers := loaders(t)
	data, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []string
	seen := map[string]bool{}
	var undescribed []string
	for i := 0; i < len(lines); i++ {
		out = append(out, lines[i])
		m := beginRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		file, what := m[1], m[2]
		seen[file+" "+what] = true
		j := i + 1
		for j < len(lines) && lines[j] != endLine {
			j++
		}
		if j == len(lines) {
			t.Fatalf("%s:%d: %q has no %q", configDoc, i+1, lines[i], endLine)
		}
		old := lines[i+1 : j]
		r := readers[file]
		if r == nil {
			t.Errorf("%s:%d: no loader reads %s; remove the block or fix its file name", configDoc, i+1, file)
			out = append(out, old...)
			i = j - 1
			continue
		}
		meanings := tableMeanings(old)
		var gen string
		if what == "keys" {
			gen = keysTable(r.Described(), meanings)
			for _, k := range r.Described() {
				if m := meanings[k.Key]; m == "" || strings.HasPrefix(m, "TODO") {
					undescribed = append(undescribed, file+": "+k.Key)
				}
			}
		} else {
			gen = ignoredTable(r.Ignored())
		}
		genLines := strings.Split(strings.TrimSuffix(gen, "\n"), "\n")
		if !*update && !slices.Equal(old, genLines) {
			t.Errorf("%s: the %s table of %s differs from what the loader reads:\n%s\nRun go test ./docs -run TestConfigDoc -update, then describe any new key in its Meaning column.",
				configDoc, what, file, tableDiff(old, genLines))
		}
		out = append(out, genLines...)
		i = j - 1
	}
	for file, r := range readers {
		if !seen[file+" keys"] && len(r.Described()) > 0 {
			t.Errorf("%s has no generated keys table for %s: add\n<!-- generated: %s keys; go test ./docs -run TestConfigDoc -update -->\n%s\nand run with -update", configDoc, file, file, endLine)
		}
		if !seen[file+" ignored"] && len(r.Ignored()) > 0 {
			t.Errorf("%s has no generated ignored-keys table for %s: add\n<!-- generated: %s ignored; go test ./docs -run TestConfigDoc -update -->\n%s\nand run with -update", configDoc, file, file, endLine)
		}
	}
	if *update {
		if err := os.WriteFile(configDoc, []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(undescribed)
	for _, k := range undescribed {
		t.Errorf("%s: key %s has no meaning: write one in its Meaning column", configDoc, k)
	}
}

// tableMeanings returns the last cell of each row of a generated keys table, by key.
func tableMeanings(rows []string) map[string]string {
	m := map[string]string{}
	for _, row := range rows {
		cells := strings.SplitN(strings.TrimSuffix(strings.TrimPrefix(row, "| "), " |"), " | ", 5)
		if len(cells) < 5 || !strings.HasPrefix(cells[0], "`") {
			continue
		}
		m[strings.Trim(cells[0], "`")] = strings.TrimSpace(cells[4])
	}
	return m
}

// tableDiff lists the rows only in want or only in got, with the keys
// missing from either side named first.
func tableDiff(got, want []string) string {
	var b strings.Builder
	for _, w := range want {
		if !slices.Contains(got, w) {
			fmt.Fprintf(&b, "  loader: %s\n", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			fmt.Fprintf(&b, "  doc:    %s\n", g)
		}
	}
	return b.String()
}

func keysTable(keys []conf.KeyInfo, meanings map[string]string) string {
	var b strings.Builder
	b.WriteString(keysHeader)
	for _, k := range keys {
		meaning := meanings[k.Key]
		if meaning == "" {
			meaning = "TODO: describe"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.Key, kindName(k.Kind), defaultCell(k), rangeCell(k), meaning)
	}
	return b.String()
}

func ignoredTable(ignored map[string]string) string {
	keys := make([]string, 0, len(ignored))
	for k := range ignored {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(ignoredHeader)
	for _, k := range keys {
		fmt.Fprintf(&b, "| `%s` | %s |\n", k, strings.ReplaceAll(ignored[k], "|", `\|`))
	}
	return b.String()
}

func kindName(kind string) string {
	switch kind {
	case conf.KindMillis:
		return "duration, ms"
	case conf.KindSeconds:
		return "duration, s"
	}
	return kind
}

func defaultCell(k conf.KeyInfo) string {
	if k.Default == "" {
		return "(empty)"
	}
	return "`" + k.Default + "`" + hint(k, k.Default)
}

func rangeCell(k conf.KeyInfo) string {
	switch k.Kind {
	case conf.KindBoolean:
		return "`true`, `false`"
	case conf.KindChoice:
		return "`" + strings.Join(k.Choices, "`, `") + "`"
	case conf.KindHostPort:
		return "host:port"
	case conf.KindString:
		return "text"
	}
	return k.Min + hint(k, k.Min) + " to " + k.Max + hint(k, k.Max)
}

// hint renders a duration or a size in words: " (3 min)", " (64 MiB)".
func hint(k conf.KeyInfo, v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return ""
	}
	type unit struct {
		name string
		size int64
	}
	var units []unit
	switch {
	case k.Kind == conf.KindMillis:
		units = []unit{{"d", 86_400_000}, {"h", 3_600_000}, {"min", 60_000}, {"s", 1000}}
	case k.Kind == conf.KindSeconds:
		units = []unit{{"d", 86_400}, {"h", 3600}, {"min", 60}}
	case k.Kind == conf.KindInteger && (strings.Contains(k.Key, "size") || strings.Contains(k.Key, "bytes")):
		units = []unit{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	}
	for _, u := range units {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf(" (%d %s)", n/u.size, u.name)
		}
	}
	return ""
}

// knownKeys is every key some loader reads or accepts.
func knownKeys(t *testing.T) map[string]bool {
	known := map[string]bool{}
	for _, r := range loaders(t) {
		for _, k := range r.Described() {
			known[k.Key] = true
		}
		for k := range r.Ignored() {
			known[k] = true
		}
	}
	return known
}

// docFiles are the documents checked for stale keys, paths and links.
func docFiles(t *testing.T) []string {
	files, err := filepath.Glob("*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no documents in docs/: %v", err)
	}
	return append(files, filepath.Join("..", "README.md"))
}

var (
	codeSpan = regexp.MustCompile("`([^`\n]+)`")
	// A configuration key: dotted words, optionally key=value.
	keyLike = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)+)(?:=\S*)?$`)
	// A repository path: a known top-level directory and a file or directory.
	pathLike = regexp.MustCompile(`^(?:cmd|conf|client|consul|docs|internal|jobs|protocol|services|sql|storage|tests|bench)/[A-Za-z0-9_./-]*$`)
)

// notKeys are dotted names in the documents that are not configuration
// keys: file names, hosts, Go identifiers and QMQ's Java names.
func notKey(s string) bool {
	for _, suffix := range []string{".properties", ".md", ".go", ".hcl", ".sql", ".db", ".json", ".sh", ".consul", ".txt"} {
		if strings.HasSuffix(s, suffix) {
			return true
		}
	}
	// SQL tables of the transactional-message client (qmq_produce.qmq_msg_queue).
	if strings.HasPrefix(s, "qmq_produce.") {
		return true
	}
	// Go identifiers (protocol.CodeSyncAuth, Decoder.Int32) and Java names
	// have capitals; our keys are lower case (QMQ's capitalised keys are
	// known keys, accepted and ignored, so they never get here).
	return strings.ToLower(s) != s
}

// TestDocsNameRealKeys fails when a document names, in a code span, a
// configuration key that no loader reads or accepts (a renamed or removed
// key, or a typo): the prose must not drift either.
func TestDocsNameRealKeys(t *testing.T) {
	known := knownKeys(t)
	for _, f := range docFiles(t) {
		if filepath.Base(f) == "README.md" {
			continue // edited by everyone; checked for links only
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(data), "\n") {
			for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
				k := keyLike.FindStringSubmatch(m[1])
				if k == nil || notKey(k[1]) || known[k[1]] {
					continue
				}
				t.Errorf("%s:%d: `%s` looks like a configuration key, but no loader reads it (nearest: %q); fix the name, or add it to notKey if it is not a key",
					f, n+1, m[1], conf.Nearest(k[1], keys(known)))
			}
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestDocsPathsExist fails when a document names a repository file or
// directory (in a code span) that does not exist, and when a document links
// outside the repository or to a file that does not exist.
func TestDocsPathsExist(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range docFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Dir(f)
		for n, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "../shared") || strings.Contains(line, "qmq-reference") {
				t.Errorf("%s:%d: points outside the repository (../shared, qmq-reference): link to docs/ instead", f, n+1)
			}
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				target, frag, _ := strings.Cut(target, "#")
				if target == "" {
					target = filepath.Base(f)
				}
				p, err := filepath.Abs(filepath.Join(dir, target))
				if err != nil {
					t.Fatal(err)
				}
				if rel, err := filepath.Rel(root, p); err != nil || strings.HasPrefix(rel, "..") {
					t.Errorf("%s:%d: link %q leaves the repository", f, n+1, m[1])
					continue
				}
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s:%d: link %q: %v", f, n+1, m[1], err)
				} else if frag != "" && strings.HasSuffix(p, ".md") && !slices.Contains(anchors(t, p), frag) {
					t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", f, n+1, m[1], target, frag)
				}
			}
			if filepath.Base(f) == "README.md" {
				continue
			}
			for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
				p := m[1]
				if !pathLike.MatchString(p) || strings.ContainsAny(p, "<>*") {
					continue
				}
				if _, err := os.Stat(filepath.Join("..", p)); err != nil {
					t.Errorf("%s:%d: `%s` is not in the repository: %v", f, n+1, p, err)
				}
			}
		}
	}
}

// anchors returns the anchors GitHub gives the headings of a Markdown file:
// lower case, punctuation dropped, spaces as dashes.
func anchors(t *testing.T, path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inCode := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range title {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}
