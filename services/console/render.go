package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// page is what every template gets: the page's data and the chrome's.
type page struct {
	Title     string
	Nav       string // the active menu entry
	LoggedIn  string // the token's description, "" when anonymous
	OpenReads bool
	Data      any
}

type errorPage struct{ Title, Message string }

type resultPage struct {
	Title   string
	OK      bool
	Message string
	Back    string
}

type loginView struct{ Next, Error string }

type navItem struct{ Name, Path, Label string }

// navigation is the menu; Name is the template that marks it active.
var navigation = []navItem{
	{"cluster", "cluster", "Cluster"}, {"subjects", "subjects", "Subjects"}, {"groups", "groups", "Consumer groups"},
	{"messages", "messages", "Messages"}, {"dead", "deadletters", "Dead letters"}, {"delay", "delay", "Delay"}, {"watchdog", "watchdog", "Watchdog"},
}

var funcs = template.FuncMap{
	"ms": func(ms int64) string {
		if ms <= 0 {
			return "—"
		}
		return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000")
	},
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000")
	},
	// query builds a link's query string. It is typed template.URL so that
	// html/template keeps its = and & (as a plain string after "?" they
	// would be escaped as data); every key and value is encoded here.
	"query": func(kv ...string) template.URL {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				v.Set(kv[i], kv[i+1])
			}
		}
		return template.URL(v.Encode()) //nolint:gosec // url.Values.Encode escaped every part
	},
	"navItems": func() []navItem { return navigation },
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("dict wants key/value pairs, got %d values", len(kv))
		}
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, fmt.Errorf("dict key %v is not a string", kv[i])
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
	"itoa": func(n int64) string { return strconv.FormatInt(n, 10) },
	"rate": func(r float64) string {
		if r < 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f/s", r)
	},
}

func parseTemplates() (*template.Template, error) {
	return template.New("").Funcs(funcs).ParseFS(assets, "assets/*.html")
}

// render executes template name into a buffer first, so that a template
// error is a 500 and not half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	nav := name
	if name == "detail" {
		nav = "messages"
	}
	p := page{Nav: nav, OpenReads: s.settings.OpenReads, Data: data}
	if who, ok := s.who(tokenOf(r)); ok {
		p.LoggedIn = who
	}
	switch d := data.(type) {
	case errorPage:
		p.Title = d.Title
	case resultPage:
		p.Title = d.Title
	}
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, p); err != nil {
		s.log.Error("console template failed", "template", name, "error", err)
		http.Error(w, "the console could not draw this page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
