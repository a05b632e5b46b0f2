package console

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qmq-go/qmq/internal/httpguard"
)

// tokenCookie holds the admin token after /login. HttpOnly and
// SameSite=Strict: no script reads it and no other site's form sends it.
const tokenCookie = "qmq_console_token"

// tokenOf returns the token a request carries: the X-Api-Token header, a
// form field "token" (POST only), or the login cookie.
func tokenOf(r *http.Request) string {
	if t := r.Header.Get("X-Api-Token"); t != "" {
		return t
	}
	if r.Method == http.MethodPost {
		if t := r.PostFormValue("token"); t != "" {
			return t
		}
	}
	if c, err := r.Cookie(tokenCookie); err == nil {
		// Base64: a token may hold characters a cookie value cannot.
		if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil {
			return string(b)
		}
	}
	return ""
}

// who returns the description of a valid token. Every token is compared
// in constant time so that timing tells nothing about which prefix matched.
func (s *Server) who(token string) (string, bool) {
	if token == "" {
		return "", false
	}
	var desc string
	found := false
	for t, d := range s.settings.Tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			desc, found = d, true
		}
	}
	if desc == "" && found {
		desc = "(token without description)"
	}
	return desc, found
}

// readGate lets a read through when reads are open or the caller has a
// valid token; a browser without one is sent to /login.
func (s *Server) readGate(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpguard.ParseForm(w, r) {
			return
		}
		if s.settings.OpenReads {
			h(w, r)
			return
		}
		if _, ok := s.who(tokenOf(r)); ok {
			h(w, r)
			return
		}
		if r.Header.Get("X-Api-Token") != "" {
			http.Error(w, "the X-Api-Token is not one of valid-api-tokens.properties", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	})
}

// writeHandler performs a write for who and returns what to show: a
// sentence of what was done, or an error (shown with status).
type writeHandler func(r *http.Request, who, token string) (done string, status int, err error)

// writeGate checks a write: same origin (CSRF), a valid token; then runs
// h and logs who did what with which values, whatever the outcome.
func (s *Server) writeGate(path string, h writeHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpguard.ParseForm(w, r) {
			return
		}
		if !sameOrigin(r) {
			s.m.writes.WithLabelValues(path, "refused").Inc()
			s.log.Warn("console write refused: cross-site request", "action", path, "origin", r.Header.Get("Origin"), "referer", r.Header.Get("Referer"), "remote", r.RemoteAddr)
			s.render(w, r, http.StatusForbidden, "error", errorPage{Title: "Refused", Message: "This change did not come from a page of this console (cross-site request). Open the console and submit the form there."})
			return
		}
		token := tokenOf(r)
		who, ok := s.who(token)
		if !ok {
			s.m.writes.WithLabelValues(path, "refused").Inc()
			s.log.Warn("console write refused: no valid admin token", "action", path, "remote", r.RemoteAddr)
			s.render(w, r, http.StatusUnauthorized, "error", errorPage{Title: "Admin token needed", Message: "Changes need an admin token of valid-api-tokens.properties: log in, or give it in the form's token field or the X-Api-Token header."})
			return
		}
		values := []any{"who", who, "action", path, "remote", r.RemoteAddr}
		for k, vs := range r.PostForm {
			if k == "token" || k == "back" {
				continue
			}
			values = append(values, k, httpguard.Clip(strings.Join(vs, ","), 200))
		}
		start := time.Now()
		done, status, err := h(r, who, token)
		values = append(values, "took", time.Since(start).Round(time.Millisecond))
		if err != nil {
			s.m.writes.WithLabelValues(path, "failed").Inc()
			s.log.Warn("console write failed", append(values, "error", err)...)
			s.render(w, r, status, "result", resultPage{Title: "Failed", OK: false, Message: err.Error(), Back: backURL(r)})
			return
		}
		s.m.writes.WithLabelValues(path, "done").Inc()
		s.log.Info("console write", append(values, "result", done)...)
		s.render(w, r, http.StatusOK, "result", resultPage{Title: "Done", OK: true, Message: done, Back: backURL(r)})
	})
}

// sameOrigin is the CSRF defence: browsers send Sec-Fetch-Site and Origin
// on form posts; a request with neither must carry the token in the
// X-Api-Token header, which no cross-site form can set.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		return err == nil && u.Host == r.Host
	}
	return r.Header.Get("X-Api-Token") != "" || r.Header.Get("Sec-Fetch-Site") != ""
}

// backURL is the form's "back" field if it is a path of this console.
func backURL(r *http.Request) string {
	b := r.PostFormValue("back")
	if strings.HasPrefix(b, "/") && !strings.HasPrefix(b, "//") && !strings.Contains(b, "\\") {
		return b
	}
	return "/cluster"
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !httpguard.ParseForm(w, r) {
		return
	}
	if !sameOrigin(r) {
		http.Error(w, "cross-site login refused", http.StatusForbidden)
		return
	}
	token := r.PostFormValue("token")
	who, ok := s.who(token)
	if !ok {
		s.log.Warn("console login refused: unknown token", "remote", r.RemoteAddr)
		s.render(w, r, http.StatusUnauthorized, "login", loginView{Next: safeNext(r.PostFormValue("next")), Error: "That token is not in valid-api-tokens.properties."})
		return
	}
	s.log.Info("console login", "who", who, "remote", r.RemoteAddr)
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(token)), Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func safeNext(n string) string {
	if strings.HasPrefix(n, "/") && !strings.HasPrefix(n, "//") && !strings.Contains(n, "\\") {
		return n
	}
	return "/cluster"
}
