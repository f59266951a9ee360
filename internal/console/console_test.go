package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/seclog"
	"github.com/errandhq/errand/internal/testapp"
)

type testBundle struct {
	app    *testapp.App
	client *http.Client
}

// setup starts an App. testapp empties the package's database and Redis
// for each App, so these tests do not run in parallel.
func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{
		app: testapp.New(t),
		// Redirects are what is under test: never follow them.
		client: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// reply is a response, read, with the client address the server saw as
// r.RemoteAddr (security events record it).
type reply struct {
	*http.Response
	body   []byte
	remote string
}

func (b *testBundle) newRequest(t *testing.T, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, b.app.URL+path, body)
	require.NoError(t, err)
	return req
}

func (b *testBundle) do(t *testing.T, req *http.Request) reply {
	t.Helper()
	var remote string
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { remote = ci.Conn.LocalAddr().String() }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{Response: resp, body: body, remote: remote}
}

func (b *testBundle) get(t *testing.T, path string, mod ...func(*http.Request)) reply {
	t.Helper()
	req := b.newRequest(t, http.MethodGet, path, nil)
	for _, m := range mod {
		m(req)
	}
	return b.do(t, req)
}

func (b *testBundle) post(t *testing.T, path string, mod ...func(*http.Request)) reply {
	t.Helper()
	req := b.newRequest(t, http.MethodPost, path, nil)
	for _, m := range mod {
		m(req)
	}
	return b.do(t, req)
}

func basic(password string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth("ops", password) }
}

func header(name, value string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

func withCookies(cks ...*http.Cookie) func(*http.Request) {
	return func(r *http.Request) {
		for _, c := range cks {
			r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
}

func cookieNamed(t *testing.T, resp *http.Response, name string) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	require.Failf(t, "cookie not set", "no %s cookie in %v", name, resp.Header.Values("Set-Cookie"))
	return nil
}

var csrfFieldRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginPage fetches the login form and returns its CSRF cookie.
func (b *testBundle) loginPage(t *testing.T, next string) *http.Cookie {
	t.Helper()
	path := "/monitoring/login"
	if next != "" {
		path += "?next=" + url.QueryEscape(next)
	}
	r := b.get(t, path, header("Accept", "text/html"))
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
	ck := cookieNamed(t, r.Response, "errand_login_csrf")
	m := csrfFieldRe.FindSubmatch(r.body)
	require.NotNil(t, m, "login page has no csrf field:\n%s", r.body)
	require.Equal(t, ck.Value, string(m[1]), "the form's csrf field and cookie must match")
	return ck
}

// submitLogin posts the login form.
func (b *testBundle) submitLogin(t *testing.T, csrfCookie *http.Cookie, csrf, token, next string) reply {
	t.Helper()
	form := url.Values{"csrf": {csrf}, "token": {token}, "next": {next}}
	req := b.newRequest(t, http.MethodPost, "/monitoring/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if csrfCookie != nil {
		withCookies(csrfCookie)(req)
	}
	return b.do(t, req)
}

// login signs in through the form and returns the session and XSRF cookies.
func (b *testBundle) login(t *testing.T) (session, xsrf *http.Cookie) {
	t.Helper()
	ck := b.loginPage(t, "")
	r := b.submitLogin(t, ck, ck.Value, b.app.AdminToken, "/monitoring/")
	require.Equal(t, http.StatusSeeOther, r.StatusCode, "%s", r.body)
	return cookieNamed(t, r.Response, "errand_console"), cookieNamed(t, r.Response, "XSRF-TOKEN")
}

// securityEvents lists the events of kind recorded for a request from remote.
func (b *testBundle) securityEvents(t *testing.T, kind, remote string) []db.SecurityEvent {
	t.Helper()
	events, err := b.app.Store.Q().SecurityEventList(context.Background(), db.SecurityEventListParams{
		Kind: &kind, BeforeID: 1<<62 - 1, MaxRows: 1000})
	require.NoError(t, err)
	var out []db.SecurityEvent
	for _, e := range events {
		if e.RemoteAddr == remote {
			out = append(out, e)
		}
	}
	return out
}

func requireNothingOfAsynqmon(t *testing.T, r reply) {
	t.Helper()
	require.NotContains(t, string(r.body), `"queues"`)
	require.NotContains(t, strings.ToLower(string(r.body)), "asynqmon")
	require.NotContains(t, strings.ToLower(string(r.body)), "<script")
}

func TestUnauthenticated(t *testing.T) {

	t.Run("a browser is sent to the login form", func(t *testing.T) {
		b := setup(t)
		r := b.get(t, "/monitoring/queues/notifications?tab=scheduled", header("Accept", "text/html,application/xhtml+xml"))
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		loc, err := url.Parse(r.Header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, "/monitoring/login", loc.Path)
		require.Equal(t, "/monitoring/queues/notifications?tab=scheduled", loc.Query().Get("next"))
		requireNothingOfAsynqmon(t, r)
	})

	t.Run("the console root sends a browser to the login form", func(t *testing.T) {
		b := setup(t)
		r := b.get(t, "/monitoring/", header("Accept", "text/html"))
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		require.Equal(t, "/monitoring/login?next="+url.QueryEscape("/monitoring/"), r.Header.Get("Location"))
	})

	t.Run("a script gets 401 with a Basic challenge and no queue data", func(t *testing.T) {
		b := setup(t)
		for _, path := range []string{"/monitoring/api/queues", "/monitoring/api/queues/notifications/scheduled_tasks", "/monitoring/"} {
			r := b.get(t, path, header("Accept", "application/json"))
			require.Equal(t, http.StatusUnauthorized, r.StatusCode, path)
			require.True(t, strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic "), r.Header.Get("WWW-Authenticate"))
			requireNothingOfAsynqmon(t, r)
		}
	})

	t.Run("a write without credentials is refused", func(t *testing.T) {
		b := setup(t)
		q := "console-test-" + uuid.NewString()
		r := b.post(t, "/monitoring/api/queues/"+q+":pause")
		require.Equal(t, http.StatusUnauthorized, r.StatusCode)
		n, err := b.app.Redis.Exists(context.Background(), "asynq:{"+q+"}:paused").Result()
		require.NoError(t, err)
		require.Zero(t, n, "the queue must not have been paused")
	})

	t.Run("the login page renders", func(t *testing.T) {
		b := setup(t)
		r := b.get(t, "/monitoring/login?next="+url.QueryEscape("/monitoring/queues"), header("Accept", "text/html"))
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Header.Get("Content-Type"), "text/html")
		require.Contains(t, string(r.body), `<form method="post" action="/monitoring/login">`)
		require.Contains(t, string(r.body), `name="token" type="password"`)
		require.Contains(t, string(r.body), `name="next" value="/monitoring/queues"`)
		csp := r.Header.Get("Content-Security-Policy")
		require.Contains(t, csp, "default-src 'none'")
		require.Contains(t, csp, "form-action 'self'")
		require.Equal(t, "DENY", r.Header.Get("X-Frame-Options"))
		require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
		ck := cookieNamed(t, r.Response, "errand_login_csrf")
		require.NotEmpty(t, ck.Value)
		require.True(t, ck.HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
		require.Equal(t, "/monitoring", ck.Path)
		requireNothingOfAsynqmon(t, r)
	})
}

func TestBasicAuth(t *testing.T) {

	t.Run("wrong password is refused and recorded", func(t *testing.T) {
		b := setup(t)
		r := b.get(t, "/monitoring/api/queues", basic("not-the-admin-token"))
		require.Equal(t, http.StatusUnauthorized, r.StatusCode)
		require.True(t, strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic "))
		requireNothingOfAsynqmon(t, r)

		events := b.securityEvents(t, seclog.ConsoleLoginBad, r.remote)
		require.Len(t, events, 1, "one console_login_failed event from %s", r.remote)
		require.Equal(t, "console", events[0].Actor)
		require.JSONEq(t, `{"method":"basic"}`, string(events[0].Detail))
		require.NotContains(t, b.app.Logs.String(), "not-the-admin-token")
	})

	t.Run("the failure is visible through the admin API", func(t *testing.T) {
		b := setup(t)
		r := b.get(t, "/monitoring/api/queues", basic("wrong-"+uuid.NewString()))
		require.Equal(t, http.StatusUnauthorized, r.StatusCode)

		res := b.app.Do(http.MethodGet, "/admin/v1/security-events?kind="+seclog.ConsoleLoginBad, b.app.AdminToken, nil)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
		require.Contains(t, string(res.Body), `"remote_addr":"`+r.remote+`"`)
	})

	t.Run("the admin token as password opens the API", func(t *testing.T) {
		b := setup(t)
		r := b.get(t, "/monitoring/api/queues", basic(b.app.AdminToken))
		require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
		require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
		var body struct {
			Queues []map[string]any `json:"queues"`
		}
		require.NoError(t, json.Unmarshal(r.body, &body), "%s", r.body)
		require.NotNil(t, body.Queues)

		ui := b.get(t, "/monitoring/", basic(b.app.AdminToken), header("Accept", "text/html"))
		require.Equal(t, http.StatusOK, ui.StatusCode)
		require.Contains(t, string(ui.body), "<script")
	})

	t.Run("a cross-origin write is refused even with the password", func(t *testing.T) {
		b := setup(t)
		q := "console-test-" + uuid.NewString()
		for _, mod := range []func(*http.Request){
			header("Origin", "http://evil.example"),
			header("Sec-Fetch-Site", "cross-site"),
		} {
			r := b.post(t, "/monitoring/api/queues/"+q+":pause", basic(b.app.AdminToken), mod)
			require.Equal(t, http.StatusForbidden, r.StatusCode, "%s", r.body)
		}
		paused, err := b.app.Redis.Exists(context.Background(), "asynq:{"+q+"}:paused").Result()
		require.NoError(t, err)
		require.Zero(t, paused)

		// The same write from a script (no Origin) goes through.
		r := b.post(t, "/monitoring/api/queues/"+q+":pause", basic(b.app.AdminToken))
		require.Equal(t, http.StatusNoContent, r.StatusCode, "%s", r.body)
		paused, err = b.app.Redis.Exists(context.Background(), "asynq:{"+q+"}:paused").Result()
		require.NoError(t, err)
		require.EqualValues(t, 1, paused)
	})
}

func TestLoginForm(t *testing.T) {

	t.Run("signing in sets a strict session and a readable XSRF cookie", func(t *testing.T) {
		b := setup(t)
		ck := b.loginPage(t, "/monitoring/queues")
		r := b.submitLogin(t, ck, ck.Value, b.app.AdminToken, "/monitoring/queues")
		require.Equal(t, http.StatusSeeOther, r.StatusCode, "%s", r.body)
		require.Equal(t, "/monitoring/queues", r.Header.Get("Location"))

		sess := cookieNamed(t, r.Response, "errand_console")
		require.NotEmpty(t, sess.Value)
		require.True(t, sess.HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, sess.SameSite)
		require.Equal(t, "/monitoring", sess.Path)
		require.Positive(t, sess.MaxAge)

		xsrf := cookieNamed(t, r.Response, "XSRF-TOKEN")
		require.NotEmpty(t, xsrf.Value)
		require.False(t, xsrf.HttpOnly, "asynqmon's client must be able to read it")
		require.Equal(t, http.SameSiteStrictMode, xsrf.SameSite)
		require.Equal(t, "/monitoring", xsrf.Path)
		require.NotEqual(t, sess.Value, xsrf.Value)

		login := cookieNamed(t, r.Response, "errand_login_csrf")
		require.Negative(t, login.MaxAge, "the login form's CSRF cookie is spent")

		require.NotEmpty(t, b.securityEvents(t, seclog.ConsoleLogin, r.remote))
		logs := b.app.Logs.String()
		require.NotContains(t, logs, b.app.AdminToken)
		require.NotContains(t, logs, sess.Value)

		api := b.get(t, "/monitoring/api/queues", withCookies(sess))
		require.Equal(t, http.StatusOK, api.StatusCode, "%s", api.body)
		require.Contains(t, string(api.body), `"queues"`)
	})

	t.Run("writes need the XSRF header", func(t *testing.T) {
		b := setup(t)
		sess, xsrf := b.login(t)
		q := "console-test-" + uuid.NewString()
		pausedKey := "asynq:{" + q + "}:paused"
		path := "/monitoring/api/queues/" + q + ":pause"

		for name, mod := range map[string]func(*http.Request){
			"no header":    func(*http.Request) {},
			"wrong header": header("X-XSRF-TOKEN", "x"+xsrf.Value),
			"other origin": func(r *http.Request) {
				r.Header.Set("X-XSRF-TOKEN", xsrf.Value)
				r.Header.Set("Origin", "http://evil.example")
			},
			"cookie, no header":  withCookies(xsrf),
			"session-less token": func(r *http.Request) { r.Header.Set("X-XSRF-TOKEN", sess.Value) },
		} {
			r := b.post(t, path, withCookies(sess), mod)
			require.Equal(t, http.StatusForbidden, r.StatusCode, "%s: %s", name, r.body)
		}
		n, err := b.app.Redis.Exists(context.Background(), pausedKey).Result()
		require.NoError(t, err)
		require.Zero(t, n, "no refused write may reach asynqmon")

		r := b.post(t, path, withCookies(sess, xsrf), header("X-XSRF-TOKEN", xsrf.Value), header("Origin", b.app.URL))
		require.Equal(t, http.StatusNoContent, r.StatusCode, "%s", r.body)
		n, err = b.app.Redis.Exists(context.Background(), pausedKey).Result()
		require.NoError(t, err)
		require.EqualValues(t, 1, n)

		r = b.post(t, "/monitoring/api/queues/"+q+":resume", withCookies(sess, xsrf), header("X-XSRF-TOKEN", xsrf.Value))
		require.Equal(t, http.StatusNoContent, r.StatusCode, "%s", r.body)
	})

	t.Run("a wrong admin token is refused and recorded", func(t *testing.T) {
		b := setup(t)
		ck := b.loginPage(t, "")
		r := b.submitLogin(t, ck, ck.Value, "not-the-token", "/monitoring/")
		require.Equal(t, http.StatusUnauthorized, r.StatusCode)
		require.Contains(t, string(r.body), "That is not the admin token.")
		for _, c := range r.Cookies() {
			require.NotEqual(t, "errand_console", c.Name)
			require.NotEqual(t, "XSRF-TOKEN", c.Name)
		}
		events := b.securityEvents(t, seclog.ConsoleLoginBad, r.remote)
		require.Len(t, events, 1)
		require.JSONEq(t, `{"method":"form"}`, string(events[0].Detail))
		require.NotContains(t, b.app.Logs.String(), "not-the-token")
	})

	t.Run("a form without its CSRF cookie is refused", func(t *testing.T) {
		b := setup(t)
		ck := b.loginPage(t, "")
		cases := map[string]reply{
			"no cookie":      b.submitLogin(t, nil, ck.Value, b.app.AdminToken, "/monitoring/"),
			"no field":       b.submitLogin(t, ck, "", b.app.AdminToken, "/monitoring/"),
			"other field":    b.submitLogin(t, ck, "x"+ck.Value, b.app.AdminToken, "/monitoring/"),
			"another origin": b.submitLoginFrom(t, ck, "http://evil.example"),
		}
		for name, r := range cases {
			require.Equal(t, http.StatusForbidden, r.StatusCode, name)
			for _, c := range r.Cookies() {
				require.NotEqual(t, "errand_console", c.Name, name)
			}
		}
	})

	t.Run("next never leaves the console", func(t *testing.T) {
		b := setup(t)
		for _, next := range []string{
			"//evil.example", "https://evil.example", "https://evil.example/monitoring/",
			`/monitoring/\evil.example`, "/\\evil.example", "/admin/v1/tenants", "javascript:alert(1)", "",
		} {
			ck := b.loginPage(t, next)
			r := b.submitLogin(t, ck, ck.Value, b.app.AdminToken, next)
			require.Equal(t, http.StatusSeeOther, r.StatusCode, next)
			require.Equal(t, "/monitoring/", r.Header.Get("Location"), "next=%q", next)
		}
	})

	t.Run("the login page does not echo a foreign next", func(t *testing.T) {
		b := setup(t)
		r := b.get(t, "/monitoring/login?next="+url.QueryEscape("https://evil.example"))
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.NotContains(t, string(r.body), "evil.example")
	})

	t.Run("logging out ends the session on the server", func(t *testing.T) {
		b := setup(t)
		sess, xsrf := b.login(t)

		// Without the XSRF header, logout only clears the browser's cookies.
		r := b.post(t, "/monitoring/logout", withCookies(sess, xsrf))
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		require.Equal(t, http.StatusOK, b.get(t, "/monitoring/api/queues", withCookies(sess)).StatusCode,
			"a forged logout must not end the session")

		r = b.post(t, "/monitoring/logout", withCookies(sess, xsrf), header("X-XSRF-TOKEN", xsrf.Value))
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		require.Equal(t, "/monitoring/login", r.Header.Get("Location"))
		require.Negative(t, cookieNamed(t, r.Response, "errand_console").MaxAge)
		require.Negative(t, cookieNamed(t, r.Response, "XSRF-TOKEN").MaxAge)
		require.NotEmpty(t, b.securityEvents(t, seclog.ConsoleLogout, r.remote))

		// The old cookie, replayed, no longer opens anything.
		after := b.get(t, "/monitoring/api/queues", withCookies(sess))
		require.Equal(t, http.StatusUnauthorized, after.StatusCode)
		requireNothingOfAsynqmon(t, after)
		write := b.post(t, "/monitoring/api/queues/console-test-x:pause", withCookies(sess, xsrf), header("X-XSRF-TOKEN", xsrf.Value))
		require.Equal(t, http.StatusUnauthorized, write.StatusCode)

		get := b.get(t, "/monitoring/logout")
		require.Equal(t, http.StatusMethodNotAllowed, get.StatusCode)
	})

	t.Run("a session expires after 12 hours", func(t *testing.T) {
		b := setup(t)
		sess, _ := b.login(t)
		b.app.Clock.Advance(11 * time.Hour)
		require.Equal(t, http.StatusOK, b.get(t, "/monitoring/api/queues", withCookies(sess)).StatusCode)
		b.app.Clock.Advance(2 * time.Hour)
		r := b.get(t, "/monitoring/api/queues", withCookies(sess))
		require.Equal(t, http.StatusUnauthorized, r.StatusCode)
		requireNothingOfAsynqmon(t, r)
		html := b.get(t, "/monitoring/", withCookies(sess), header("Accept", "text/html"))
		require.Equal(t, http.StatusSeeOther, html.StatusCode)
	})

	t.Run("a made-up session cookie opens nothing", func(t *testing.T) {
		b := setup(t)
		r := b.get(t, "/monitoring/api/queues", withCookies(&http.Cookie{Name: "errand_console", Value: "forged"}))
		require.Equal(t, http.StatusUnauthorized, r.StatusCode)
	})
}

// submitLoginFrom posts a correct login form with an Origin header.
func (b *testBundle) submitLoginFrom(t *testing.T, ck *http.Cookie, origin string) reply {
	t.Helper()
	form := url.Values{"csrf": {ck.Value}, "token": {b.app.AdminToken}, "next": {"/monitoring/"}}
	req := b.newRequest(t, http.MethodPost, "/monitoring/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	withCookies(ck)(req)
	return b.do(t, req)
}

func TestScheduledTaskShowsIDsOnly(t *testing.T) {
	b := setup(t)
	const (
		name  = "Rosalind Quasar-Pemberton"
		phone = "+1 (312) 555-0163"
		e164  = "+13125550163"
		body  = "Your furnace tune-up is confirmed, secret-body-7b1e"
	)
	res := b.app.Do(http.MethodPost, "/admin/v1/tenants", b.app.AdminToken,
		map[string]string{"name": "Console Test HVAC", "timezone": "America/Chicago"})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	tenantID, _ := res.JSON()["id"].(string)
	key, _ := res.JSON()["api_key"].(string)
	require.NotEmpty(t, tenantID)
	require.NotEmpty(t, key)

	res = b.app.Do(http.MethodPut, "/v1/contacts/cust-42", key, map[string]string{"name": name, "phone": phone})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	res = b.app.Do(http.MethodPost, "/v1/messages", key, map[string]string{
		"contact_id": "cust-42", "channel": "sms", "body": body,
		"send_at": b.app.Clock.Now().Add(10 * time.Minute).Format(time.RFC3339)})
	require.Equal(t, http.StatusAccepted, res.Status, "%s", res.Body)
	messageID, _ := res.JSON()["id"].(string)
	require.Equal(t, "scheduled", res.JSON()["status"])

	r := b.get(t, "/monitoring/api/queues/notifications/scheduled_tasks?size=100", basic(b.app.AdminToken))
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
	var list struct {
		Tasks []struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Payload string `json:"payload"`
		} `json:"tasks"`
	}
	require.NoError(t, json.Unmarshal(r.body, &list), "%s", r.body)
	var found bool
	for _, task := range list.Tasks {
		if task.ID == "message:"+messageID {
			found = true
			require.Equal(t, "message:send", task.Type)
			require.Equal(t, "message_id="+messageID+" tenant_id="+tenantID, task.Payload)
		}
	}
	require.True(t, found, "task message:%s not among the scheduled tasks: %s", messageID, r.body)
	for _, secret := range []string{name, "Rosalind", phone, e164, "5550163", body, "secret-body-7b1e"} {
		require.NotContains(t, string(r.body), secret)
	}

	// The single-task view formats the same way.
	one := b.get(t, "/monitoring/api/queues/notifications/tasks/message:"+messageID, basic(b.app.AdminToken))
	require.Equal(t, http.StatusOK, one.StatusCode, "%s", one.body)
	require.Contains(t, string(one.body), `"payload":"message_id=`+messageID+` tenant_id=`+tenantID+`"`)
	require.NotContains(t, string(one.body), e164)
	require.NotContains(t, string(one.body), "secret-body-7b1e")
}
