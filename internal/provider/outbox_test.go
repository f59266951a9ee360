package provider_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/provider"
)

func newTestOutbox() (*provider.Outbox, *bytes.Buffer) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return provider.NewOutbox(logger), &buf
}

func TestOutboxLogsNeitherDestinationNorContent(t *testing.T) {
	o, buf := newTestOutbox()

	sms, err := o.SendSMS(t.Context(), provider.SMS{To: testPhone, Body: testBody})
	require.NoError(t, err)
	email, err := o.SendEmail(t.Context(), testMail("job-1"))
	require.NoError(t, err)

	out := buf.String()
	for _, secret := range []string{testPhone, testBody, testEmail, testSubject, testText} {
		require.NotContains(t, out, secret)
	}
	var infos []map[string]any
	for line := range bytes.Lines(buf.Bytes()) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(line, &rec))
		if rec["level"] == "INFO" {
			infos = append(infos, rec)
		}
	}
	require.Len(t, infos, 2)
	require.Equal(t, "dev outbox: message would have been sent", infos[0]["msg"])
	require.Equal(t, "sms", infos[0]["channel"])
	require.Equal(t, sms.ProviderID, infos[0]["provider_id"])
	require.Equal(t, "email", infos[1]["channel"])
	require.Equal(t, email.ProviderID, infos[1]["provider_id"])
	require.Contains(t, out, `"body_length":26`)
}

func TestOutboxIdempotencyKeys(t *testing.T) {
	o, buf := newTestOutbox()

	first, err := o.SendEmail(t.Context(), testMail("job-1"))
	require.NoError(t, err)
	require.Regexp(t, `^outbox-[0-9a-f]{16}$`, first.ProviderID)
	again, err := o.SendEmail(t.Context(), testMail("job-1"))
	require.NoError(t, err)
	other, err := o.SendEmail(t.Context(), testMail("job-2"))
	require.NoError(t, err)
	noKey1, err := o.SendEmail(t.Context(), testMail(""))
	require.NoError(t, err)
	noKey2, err := o.SendEmail(t.Context(), testMail(""))
	require.NoError(t, err)

	require.Equal(t, first, again)
	require.NotEqual(t, first, other)
	require.NotEqual(t, noKey1, noKey2)
	require.Equal(t, 4, bytes.Count(buf.Bytes(), []byte("message would have been sent")), "a replay is not a second send")

	changed := testMail("job-1")
	changed.Text = "something else"
	_, err = o.SendEmail(t.Context(), changed)
	perr := requireProviderError(t, err, provider.Permanent, testEmail, changed.Text)
	require.Equal(t, "invalid_idempotent_request", perr.Code)
}

func TestOutboxListSMS(t *testing.T) {
	o, _ := newTestOutbox()
	since := time.Now()
	sent, err := o.SendSMS(t.Context(), provider.SMS{To: testPhone, Body: testBody})
	require.NoError(t, err)

	cases := []struct {
		name      string
		to        string
		since     time.Time
		wantFound bool
	}{
		{"same recipient", testPhone, since, true},
		{"different recipient", "+15005550009", since, false},
		{"sent before since", testPhone, time.Now().Add(time.Second), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := o.ListSMS(t.Context(), tc.to, tc.since)
			require.NoError(t, err)
			if !tc.wantFound {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			require.Equal(t, sent.ProviderID, got[0].ProviderID)
			require.Equal(t, testBody, got[0].Body)
		})
	}
}
