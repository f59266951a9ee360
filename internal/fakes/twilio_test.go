package fakes

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func postMessage(t *testing.T, f *Twilio, user, pass string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		f.URL+"/2010-04-01/Accounts/"+f.AccountSID+"/Messages.json", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func listMessages(t *testing.T, f *Twilio, query string) twilioListJSON {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
		f.URL+"/2010-04-01/Accounts/"+f.AccountSID+"/Messages.json?"+query, nil)
	require.NoError(t, err)
	req.SetBasicAuth(f.AccountSID, f.AuthToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out twilioListJSON
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

func sms(to, body string) url.Values {
	return url.Values{"To": {to}, "From": {"+15005550001"}, "Body": {body}}
}

func TestTwilioRejectsBadCredentialsWithTwilioErrorShape(t *testing.T) {
	f := NewTwilio()
	defer f.Close()

	resp := postMessage(t, f, f.AccountSID, "wrong", sms("+15005550006", "hi"))

	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, float64(20003), body["code"])
	require.Equal(t, float64(401), body["status"])
	require.Equal(t, "https://www.twilio.com/docs/errors/20003", body["more_info"])
	require.Zero(t, f.Count())
	require.Equal(t, 1, f.Requests())
}

func TestTwilioCreateResponseShape(t *testing.T) {
	f := NewTwilio()
	defer f.Close()

	resp := postMessage(t, f, f.AccountSID, f.AuthToken, sms("+15005550006", "hello"))

	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	msg := f.Messages()[0]
	require.Equal(t, msg.SID, body["sid"])
	require.Equal(t, "queued", body["status"])
	require.Equal(t, "+15005550006", body["to"])
	require.Equal(t, "hello", body["body"])
	require.Nil(t, body["date_sent"])
	created, err := time.Parse(time.RFC1123Z, body["date_created"].(string))
	require.NoError(t, err)
	require.Equal(t, msg.Created.Truncate(time.Second), created.UTC())
}

func TestTwilioListFiltersNewestFirstAndPages(t *testing.T) {
	f := NewTwilio()
	defer f.Close()
	for _, b := range []string{"one", "two", "three"} {
		postMessage(t, f, f.AccountSID, f.AuthToken, sms("+15005550006", b))
	}
	postMessage(t, f, f.AccountSID, f.AuthToken, sms("+15005550009", "other"))
	today := time.Now().UTC().Format(time.DateOnly)
	tomorrow := time.Now().UTC().Add(24 * time.Hour).Format(time.DateOnly)

	cases := []struct {
		name  string
		query url.Values
		want  []string
		next  bool
	}{
		{"by recipient", url.Values{"To": {"+15005550006"}}, []string{"three", "two", "one"}, false},
		{"sdk date-time filter", url.Values{"To": {"+15005550006"}, "DateSent>": {time.Now().Add(-time.Minute).Format(time.RFC3339)}}, []string{"three", "two", "one"}, false},
		{"documented date filter", url.Values{"To": {"+15005550006"}, "DateSent>": {today}}, []string{"three", "two", "one"}, false},
		{"future date", url.Values{"To": {"+15005550006"}, "DateSent>": {tomorrow}}, nil, false},
		{"page size", url.Values{"To": {"+15005550006"}, "PageSize": {"2"}}, []string{"three", "two"}, true},
		{"second page", url.Values{"To": {"+15005550006"}, "PageSize": {"2"}, "Page": {"1"}}, []string{"one"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page := listMessages(t, f, tc.query.Encode())
			var bodies []string
			for _, m := range page.Messages {
				bodies = append(bodies, m.Body)
			}
			require.Equal(t, tc.want, bodies)
			require.Equal(t, tc.next, page.NextPageURI != nil)
		})
	}
}

func TestTwilioFaultsApplyInOrderThenStop(t *testing.T) {
	f := NewTwilio()
	defer f.Close()
	f.FailNext(2, Fault{Status: 503})
	f.FailNext(1, Fault{Code: 21610})

	var statuses []int
	for range 4 {
		statuses = append(statuses, postMessage(t, f, f.AccountSID, f.AuthToken, sms("+15005550006", "x")).StatusCode)
	}

	require.Equal(t, []int{503, 503, 400, 201}, statuses)
	require.Equal(t, 1, f.Count())
}

func TestTwilioOnAcceptRunsBeforeTheResponse(t *testing.T) {
	f := NewTwilio()
	defer f.Close()
	var seen TwilioMessage
	f.OnAccept(func(m TwilioMessage) { seen = m })

	resp := postMessage(t, f, f.AccountSID, f.AuthToken, sms("+15005550006", "x"))

	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, f.Messages()[0], seen)
}

func TestTwilioCloseReleasesHangingRequests(t *testing.T) {
	f := NewTwilio()
	f.FailNext(1, Fault{Hang: true})
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, f.URL+"/2010-04-01/Accounts/"+f.AccountSID+"/Messages.json",
			strings.NewReader(sms("+15005550006", "x").Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(f.AccountSID, f.AuthToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	require.Eventually(t, func() bool { return f.Count() == 1 }, 2*time.Second, 5*time.Millisecond)

	closed := make(chan struct{})
	go func() { f.Close(); close(closed) }()

	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close blocked on a hanging request")
	}
	require.Error(t, <-done, "the hung request gets no response")
}

func TestTwilioReset(t *testing.T) {
	f := NewTwilio()
	defer f.Close()
	postMessage(t, f, f.AccountSID, f.AuthToken, sms("+15005550006", "x"))
	f.FailNext(1, Fault{Status: 500})
	f.OptOut("+15005550006")

	f.Reset()

	require.Zero(t, f.Count())
	require.Zero(t, f.Requests())
	require.Equal(t, http.StatusCreated, postMessage(t, f, f.AccountSID, f.AuthToken, sms("+15005550006", "x")).StatusCode)
}
