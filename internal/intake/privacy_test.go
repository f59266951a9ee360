package intake_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/testapp"
)

// Logs carry IDs only. After a contact is written (and refused), messages
// are sent by text and email, and one fails at the provider, nothing a
// person typed about the contact appears in any log line of the intake or
// the worker.
func TestLogsNeverContainPersonalData(t *testing.T) {
	app := testapp.New(t)
	app.StartWorker(4)
	a := app.NewTenant("privacy")

	personal := map[string]string{
		"raw phone":         "(312) 555-0178",
		"E.164 phone":       "+13125550178",
		"national phone":    "3125550178",
		"local phone":       "555-0178",
		"second E.164":      "+13125550179",
		"email":             "Zeb.Quartermaine@Example.org",
		"normalised email":  "Zeb.Quartermaine@example.org",
		"email local part":  "Zeb.Quartermaine",
		"first name":        "Zebediah",
		"last name":         "Quartermaine",
		"address":           "742 Evergreen Terrace",
		"notes":             "dog named Biscuit",
		"rejected phone":    "(312) 555-01",
		"rejected email":    "zeb@@example.org",
		"text body":         "pineapple-77 is your arrival window",
		"email subject":     "persimmon plans",
		"email body":        "kumquat-99 invoice attached",
		"failed text body":  "durian-55 never arrives",
		"external id label": "crm-Zebediah",
	}

	// A refused write first: its values must not be logged either.
	requireFields(t, app.Do("PUT", "/v1/contacts/crm-Zebediah", a.Key, map[string]any{
		"name": "Zebediah Quartermaine", "phone": personal["rejected phone"], "email": personal["rejected email"]}), "phone", "email")
	putContact(t, app, a.Key, "crm-Zebediah", map[string]any{
		"name": "Zebediah Quartermaine", "phone": personal["raw phone"], "email": personal["email"],
		"address": personal["address"], "notes": personal["notes"]})
	putContact(t, app, a.Key, "second", map[string]any{"name": "Someone", "phone": personal["second E.164"]})

	text, _ := postMessage(t, app, a.Key, map[string]any{"contact_id": "crm-Zebediah", "channel": "sms", "body": personal["text body"]})
	email, _ := postMessage(t, app, a.Key, map[string]any{"contact_id": "crm-Zebediah", "channel": "email",
		"subject": personal["email subject"], "body": personal["email body"]})
	waitForStatus(t, app, a.Key, text, "sent")
	waitForStatus(t, app, a.Key, email, "sent")

	// Twilio refuses the number (its error message quotes it).
	app.Twilio.FailNext(1, fakes.Fault{Code: 21211})
	failed, _ := postMessage(t, app, a.Key, map[string]any{"contact_id": "second", "channel": "sms", "body": personal["failed text body"]})
	waitForStatus(t, app, a.Key, failed, "failed")

	// The sends really happened, so the worker had all of it in hand.
	require.Equal(t, "+13125550178", app.Twilio.Messages()[0].To)
	require.Equal(t, []string{personal["normalised email"]}, app.Resend.Emails()[0].To)

	logs := app.Logs.String()
	require.Contains(t, logs, text, "log lines name messages by ID")
	require.Contains(t, logs, `"msg":"message sent"`)
	for what, value := range personal {
		if what == "external id label" {
			continue // an ID the tenant chose; checked below
		}
		require.NotContainsf(t, logs, value, "the logs contain the %s", what)
		require.NotContainsf(t, strings.ToLower(logs), strings.ToLower(value), "the logs contain the %s", what)
	}
	// Request lines name the route pattern, not the path with the
	// tenant's external ID in it.
	require.NotContains(t, logs, personal["external id label"])
	require.NotContains(t, logs, "Zebediah")
}
