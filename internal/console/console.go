// Package console serves the ops console: asynqmon at /monitoring/, reading
// the same Redis as the workers, behind the admin token. Scripts use HTTP
// Basic (any user name, the admin token as password); people log in
// through a form that sets a session cookie, and a CSRF token (the
// double-submit cookie asynqmon's own client already sends back) guards
// every write. Without credentials nothing of asynqmon is served.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/seclog"
)

// Root is where the console is mounted.
const Root = "/monitoring"

const (
	sessionCookie    = "errand_console"
	csrfCookie       = "XSRF-TOKEN"   // read by asynqmon's axios client …
	csrfHeader       = "X-XSRF-TOKEN" // … and sent back in this header
	loginCSRFCookie  = "errand_login_csrf"
	sessionLifetime  = 12 * time.Hour
	maxLoginFormSize = 4 << 10
)

// Config is what the console needs.
type Config struct {
	Store      *db.Store
	Clock      clock.Clock
	Logger     *slog.Logger
	SecLog     *seclog.Log
	AdminToken string
	Redis      asynq.RedisConnOpt
	// PublicURL is where people reach Errand (ERRAND_PUBLIC_URL): behind a
	// proxy that rewrites Host, browsers' Origin matches it, not Host.
	PublicURL string
}

// Console is the console's handler.
type Console struct {
	cfg    Config
	mon    *asynqmon.HTTPHandler
	secure bool
	public string // host of the public URL
}

// New builds the console.
func New(cfg Config) *Console {
	mon := asynqmon.New(asynqmon.Options{
		RootPath:         Root,
		RedisConnOpt:     cfg.Redis,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(FormatIDs),
		ResultFormatter:  asynqmon.ResultFormatterFunc(FormatIDs),
	})
	c := &Console{cfg: cfg, mon: mon}
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Host != "" {
		c.public, c.secure = u.Host, u.Scheme == "https"
	}
	return c
}

// Close releases asynqmon's Redis connections.
func (c *Console) Close() error { return c.mon.Close() }

// FormatIDs shows a JSON payload (which holds only IDs) as sorted
// "key=value" pairs; anything else is shown as its size only.
func FormatIDs(_ string, payload []byte) string {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return "(" + strconv.Itoa(len(payload)) + " bytes)"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, _ := json.Marshal(m[k])
		parts[i] = k + "=" + strings.Trim(string(v), `"`)
	}
	return strings.Join(parts, " ")
}

// ServeHTTP routes the login pages and guards everything else.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	switch r.URL.Path {
	case Root + "/login":
		c.login(w, r)
		return
	case Root + "/logout":
		c.logout(w, r)
		return
	}
	if !c.authorize(w, r) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	c.mon.ServeHTTP(w, r)
}

// authorize admits Basic-authenticated scripts and logged-in people,
// checking CSRF on writes; otherwise it answers and returns false.
func (c *Console) authorize(w http.ResponseWriter, r *http.Request) bool {
	if _, pass, ok := r.BasicAuth(); ok {
		if !tokenEqual(pass, c.cfg.AdminToken) {
			c.record(r, seclog.ConsoleLoginBad, map[string]any{"method": "basic"})
			c.challenge(w, r)
			return false
		}
		// Browsers replay cached Basic credentials cross-site; a write
		// from another origin is refused.
		if unsafe(r.Method) && !c.sameOrigin(r) {
			http.Error(w, "cross-origin write refused", http.StatusForbidden)
			return false
		}
		return true
	}
	sess, ok := c.session(r)
	if !ok {
		c.challenge(w, r)
		return false
	}
	if unsafe(r.Method) {
		if !c.sameOrigin(r) || !tokenEqual(r.Header.Get(csrfHeader), sess.CsrfToken) {
			http.Error(w, "missing or wrong CSRF token", http.StatusForbidden)
			return false
		}
	}
	return true
}

// challenge sends people to the login form and scripts a 401.
func (c *Console) challenge(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
		http.Redirect(w, r, Root+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="errand console", charset="UTF-8"`)
	http.Error(w, "admin credentials required", http.StatusUnauthorized)
}

func (c *Console) session(r *http.Request) (db.ConsoleSession, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return db.ConsoleSession{}, false
	}
	s, err := c.cfg.Store.Q().ConsoleSessionGet(r.Context(), db.ConsoleSessionGetParams{
		TokenHash: hashToken(ck.Value), Now: c.cfg.Clock.Now()})
	if err != nil {
		return db.ConsoleSession{}, false
	}
	return s, true
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Errand console — sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;display:flex;min-height:100vh;align-items:center;justify-content:center;margin:0}
form{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15);width:22rem}
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;margin-bottom:.4rem}
input[type=password]{width:100%;padding:.5rem;box-sizing:border-box;margin-bottom:1rem}
button{padding:.5rem 1rem}.err{color:#b00020;margin-bottom:1rem}
</style></head><body>
<form method="post" action="{{.Action}}">
<h1>Errand console</h1>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="next" value="{{.Next}}">
<button type="submit">Sign in</button>
</form></body></html>`))

type loginView struct {
	Action, CSRF, Next, Error string
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		c.showLogin(w, r, "", http.StatusOK)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxLoginFormSize)
		if err := r.ParseForm(); err != nil {
			c.showLogin(w, r, "The form could not be read.", http.StatusBadRequest)
			return
		}
		ck, err := r.Cookie(loginCSRFCookie)
		if err != nil || !tokenEqual(r.PostForm.Get("csrf"), ck.Value) || !c.sameOrigin(r) {
			c.showLogin(w, r, "The form expired; please try again.", http.StatusForbidden)
			return
		}
		if !tokenEqual(r.PostForm.Get("token"), c.cfg.AdminToken) {
			c.record(r, seclog.ConsoleLoginBad, map[string]any{"method": "form"})
			c.showLogin(w, r, "That is not the admin token.", http.StatusUnauthorized)
			return
		}
		token, csrf := randomToken(), randomToken()
		now := c.cfg.Clock.Now()
		err = c.cfg.Store.Q().ConsoleSessionCreate(r.Context(), db.ConsoleSessionCreateParams{
			TokenHash: hashToken(token), CsrfToken: csrf, RemoteAddr: r.RemoteAddr, Now: now,
			ExpiresAt: now.Add(sessionLifetime)})
		if err != nil {
			c.cfg.Logger.ErrorContext(r.Context(), "could not create console session", "err", err)
			c.showLogin(w, r, "Sign-in failed on our side; please try again.", http.StatusInternalServerError)
			return
		}
		c.record(r, seclog.ConsoleLogin, map[string]any{"method": "form"})
		c.setCookie(w, sessionCookie, token, true, sessionLifetime)
		c.setCookie(w, csrfCookie, csrf, false, sessionLifetime)
		c.setCookie(w, loginCSRFCookie, "", true, -1)
		http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, msg string, status int) {
	csrf := randomToken()
	c.setCookie(w, loginCSRFCookie, csrf, true, 10*time.Minute)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.WriteHeader(status)
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostForm.Get("next")
	}
	loginPage.Execute(w, loginView{Action: Root + "/login", CSRF: csrf, Next: safeNext(next), Error: msg}) //nolint:errcheck
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	sess, ok := c.session(r)
	if ok && c.sameOrigin(r) && (tokenEqual(r.Header.Get(csrfHeader), sess.CsrfToken) || tokenEqual(r.FormValue("csrf"), sess.CsrfToken)) {
		ck, _ := r.Cookie(sessionCookie)
		c.cfg.Store.Q().ConsoleSessionDelete(r.Context(), hashToken(ck.Value)) //nolint:errcheck
		c.record(r, seclog.ConsoleLogout, nil)
	}
	c.setCookie(w, sessionCookie, "", true, -1)
	c.setCookie(w, csrfCookie, "", false, -1)
	http.Redirect(w, r, Root+"/login", http.StatusSeeOther)
}

func (c *Console) setCookie(w http.ResponseWriter, name, value string, httpOnly bool, maxAge time.Duration) {
	ck := &http.Cookie{Name: name, Value: value, Path: Root, HttpOnly: httpOnly, Secure: c.secure,
		SameSite: http.SameSiteStrictMode}
	if maxAge < 0 {
		ck.MaxAge = -1
	} else {
		ck.MaxAge = int(maxAge.Seconds())
	}
	http.SetCookie(w, ck)
}

func (c *Console) record(r *http.Request, kind string, detail map[string]any) {
	c.cfg.SecLog.Record(context.WithoutCancel(r.Context()), seclog.Event{Kind: kind, Actor: "console",
		RemoteAddr: r.RemoteAddr, Detail: detail})
}

// safeNext keeps post-login redirects inside the console.
func safeNext(next string) string {
	if strings.HasPrefix(next, Root+"/") && !strings.HasPrefix(next, "//") && !strings.Contains(next, `\`) {
		return next
	}
	return Root + "/"
}

func unsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// sameOrigin accepts requests with no Origin (scripts) or one whose host is
// the request's own or the public URL's.
func (c *Console) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(origin)
	return err == nil && (u.Host == r.Host || (c.public != "" && u.Host == c.public))
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) //nolint:errcheck
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

func tokenEqual(presented, expected string) bool {
	if presented == "" || expected == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(presented)), sha256.Sum256([]byte(expected))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
