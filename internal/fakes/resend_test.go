package fakes

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func postEmail(t *testing.T, f *Resend, auth, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.URL+"/emails", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

const validEmail = `{"from":"Errand <no-reply@errand.example>","to":"ada@example.com","subject":"Hi","text":"Hello"}`

func TestResendAuthErrors(t *testing.T) {
	f := NewResend()
	defer f.Close()
	cases := []struct {
		name   string
		auth   string
		status int
		errNam string
	}{
		{"missing", "", 401, "missing_api_key"},
		{"not bearer", "Basic abc", 401, "missing_api_key"},
		{"wrong key", "Bearer re_wrong", 403, "invalid_api_key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postEmail(t, f, tc.auth, "", validEmail)
			require.Equal(t, tc.status, status)
			require.Equal(t, float64(tc.status), body["statusCode"])
			require.Equal(t, tc.errNam, body["name"])
			require.NotEmpty(t, body["message"])
		})
	}
	require.Zero(t, f.Count())
}

func TestResendValidation(t *testing.T) {
	f := NewResend()
	defer f.Close()
	cases := []struct {
		name   string
		body   string
		status int
		errNam string
	}{
		{"valid, to as list", `{"from":"a@b.example","to":["ada@example.com"],"subject":"s","text":"t"}`, 200, ""},
		{"missing to", `{"from":"a@b.example","subject":"s","text":"t"}`, 422, "missing_required_field"},
		{"missing subject", `{"from":"a@b.example","to":"ada@example.com","text":"t"}`, 422, "missing_required_field"},
		{"invalid to", `{"from":"a@b.example","to":"nope","subject":"s","text":"t"}`, 422, "validation_error"},
		{"not json", `{`, 422, "validation_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postEmail(t, f, "Bearer "+f.APIKey, "", tc.body)
			require.Equal(t, tc.status, status)
			if tc.errNam != "" {
				require.Equal(t, tc.errNam, body["name"])
			} else {
				require.NotEmpty(t, body["id"])
			}
		})
	}
	require.Equal(t, 1, f.Count())
}

func TestResendIdempotency(t *testing.T) {
	f := NewResend()
	defer f.Close()
	auth := "Bearer " + f.APIKey

	status, first := postEmail(t, f, auth, "k1", validEmail)
	require.Equal(t, 200, status)
	status, replay := postEmail(t, f, auth, "k1", validEmail)
	require.Equal(t, 200, status)
	require.Equal(t, first["id"], replay["id"])

	status, conflict := postEmail(t, f, auth, "k1", strings.Replace(validEmail, "Hello", "Bye", 1))
	require.Equal(t, 409, status)
	require.Equal(t, "invalid_idempotent_request", conflict["name"])

	status, tooLong := postEmail(t, f, auth, strings.Repeat("k", 257), validEmail)
	require.Equal(t, 400, status)
	require.Equal(t, "invalid_idempotency_key", tooLong["name"])

	require.Equal(t, 1, f.Count())
	require.Equal(t, "k1", f.Emails()[0].IdempotencyKey)
}

func TestResendFailedRequestReleasesItsKey(t *testing.T) {
	f := NewResend()
	defer f.Close()
	auth := "Bearer " + f.APIKey
	f.FailNext(1, Fault{Status: 500})

	status, _ := postEmail(t, f, auth, "k2", validEmail)
	require.Equal(t, 500, status)
	status, body := postEmail(t, f, auth, "k2", validEmail)

	require.Equal(t, 200, status)
	require.Equal(t, f.Emails()[0].ID, body["id"])
	require.Equal(t, 1, f.Count())
}
