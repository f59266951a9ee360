package intake_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testapp"
)

func TestContactPutCreatesThenReplaces(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("contacts")

	resp := app.Do("PUT", "/v1/contacts/crm-42", a.Key, map[string]any{
		"name": "  Pat Smith ", "phone": "(312) 555-0142", "email": "Pat.Smith@Example.COM",
		"timezone": "America/New_York", "address": "1 Main St", "notes": "gate code 1234",
	})
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	created := decodeAs[contact](t, resp)
	require.Equal(t, "crm-42", created.ID, "a contact's id is the caller's external ID")
	require.Equal(t, "Pat Smith", created.Name)
	require.Equal(t, "+13125550142", *created.Phone, "phones are E.164, read in the tenant's region")
	require.Equal(t, "Pat.Smith@example.com", *created.Email, "the domain is lower-cased, the local part kept")
	require.Equal(t, "America/New_York", *created.Timezone)
	require.Equal(t, "1 Main St", *created.Address)
	require.Equal(t, "gate code 1234", *created.Notes)

	got := app.Do("GET", "/v1/contacts/crm-42", a.Key, nil)
	require.Equal(t, 200, got.Status)
	require.Equal(t, created, decodeAs[contact](t, got))

	// PUT replaces: fields left out are cleared.
	app.Clock.Advance(time.Hour)
	resp = app.Do("PUT", "/v1/contacts/crm-42", a.Key, map[string]any{"name": "Pat Jones", "phone": "312.555.0199"})
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	updated := decodeAs[contact](t, resp)
	require.Equal(t, "Pat Jones", updated.Name)
	require.Equal(t, "+13125550199", *updated.Phone)
	require.Nil(t, updated.Email)
	require.Nil(t, updated.Timezone)
	require.Nil(t, updated.Notes)
	require.Equal(t, created.CreatedAt, updated.CreatedAt)
	require.NotEqual(t, created.UpdatedAt, updated.UpdatedAt)
	require.Equal(t, updated, decodeAs[contact](t, app.Do("GET", "/v1/contacts/crm-42", a.Key, nil)))
	require.Equal(t, 1, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))
}

func TestContactPhoneIsReadInTheTenantsRegion(t *testing.T) {
	app := testapp.New(t)
	resp := app.Do("POST", "/admin/v1/tenants", app.AdminToken, map[string]any{
		"name": "London Locksmiths", "timezone": "Europe/London", "default_region": "gb"})
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	gb := decodeAs[tenantBody](t, resp)
	require.Equal(t, "GB", gb.DefaultRegion)
	us := app.NewTenant("us")

	cases := []struct{ key, phone, want string }{
		{gb.APIKey, "020 7946 0958", "+442079460958"},
		{gb.APIKey, "+1 312 555 0142", "+13125550142"},
		{us.Key, "(312) 555-0142", "+13125550142"},
		{us.Key, "0044 20 7946 0958", "+442079460958"},
	}
	for _, c := range cases {
		got := putContact(t, app, c.key, "c", map[string]any{"name": "Pat", "phone": c.phone})
		require.Equal(t, c.want, *got.Phone, c.phone)
	}
	// Without a country code a UK number is not a US one.
	requireFields(t, app.Do("PUT", "/v1/contacts/c", us.Key, map[string]any{"name": "Pat", "phone": "020 7946 0958"}), "phone")
}

func TestContactValidation(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("contact-validation")

	cases := []struct {
		name   string
		body   map[string]any
		fields []string
	}{
		{"everything wrong at once", map[string]any{"name": "Pat", "phone": "555-0142", "email": "pat@", "timezone": "Moon/Base"},
			[]string{"phone", "email", "timezone"}},
		{"no name", map[string]any{"phone": "+13125550142"}, []string{"name"}},
		{"blank name", map[string]any{"name": "   "}, []string{"name"}},
		{"name too long", map[string]any{"name": strings.Repeat("n", 201)}, []string{"name"}},
		{"phone that is not one", map[string]any{"name": "Pat", "phone": "call me"}, []string{"phone"}},
		{"email with a display name", map[string]any{"name": "Pat", "email": "Pat <pat@example.com>"}, []string{"email"}},
		{"two emails", map[string]any{"name": "Pat", "email": "a@example.com, b@example.com"}, []string{"email"}},
		{"server-local timezone", map[string]any{"name": "Pat", "timezone": "Local"}, []string{"timezone"}},
		{"notes too long", map[string]any{"name": "Pat", "notes": strings.Repeat("n", 5001)}, []string{"notes"}},
		{"address too long", map[string]any{"name": "Pat", "address": strings.Repeat("a", 501)}, []string{"address"}},
		{"NUL in the name", map[string]any{"name": "Pat\x00Smith"}, []string{"name"}},
		{"NUL in the notes", map[string]any{"name": "Pat", "notes": "a\x00b"}, []string{"notes"}},
		{"NUL in the address", map[string]any{"name": "Pat", "address": "1 Main\x00St"}, []string{"address"}},
		{"NUL in the email", map[string]any{"name": "Pat", "email": "pat\x00@example.com"}, []string{"email"}},
		{"NUL in the phone", map[string]any{"name": "Pat", "phone": "+1312555\x000142"}, []string{"phone"}},
		{"NUL in the timezone", map[string]any{"name": "Pat", "timezone": "America/Chicago\x00"}, []string{"timezone"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := requireFields(t, app.Do("PUT", "/v1/contacts/c1", a.Key, c.body), c.fields...)
			for _, v := range c.body {
				s, _ := v.(string)
				if len(s) > 3 && len(s) < 100 {
					require.NotContains(t, e.Error.Message+strings.Join(mapValues(e.Error.Details), " "), s,
						"problems describe the field without repeating what was sent")
				}
			}
		})
	}
	requireError(t, app.Do("GET", "/v1/contacts/c1", a.Key, nil), 404, "not_found")
	require.Equal(t, 0, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestContactExternalIDs(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("external-ids")

	bad := []string{"a\x01b", "tab\there", "new\nline", "del\x7f", strings.Repeat("x", 201)}
	for _, id := range bad {
		path := "/v1/contacts/" + url.PathEscape(id)
		requireFields(t, app.Do("PUT", path, a.Key, map[string]any{"name": "Pat"}), "external_id")
		requireError(t, app.Do("GET", path, a.Key, nil), 404, "not_found")
	}

	// Anything printable is the caller's business, slashes and accents
	// included; it comes back exactly as sent.
	for _, id := range []string{"crm:123", "José-7", "a/b", "with space", strings.Repeat("x", 200)} {
		path := "/v1/contacts/" + url.PathEscape(id)
		resp := app.Do("PUT", path, a.Key, map[string]any{"name": "Pat"})
		require.Equalf(t, 201, resp.Status, "%q: %s", id, resp.Body)
		got := app.Do("GET", path, a.Key, nil)
		require.Equal(t, 200, got.Status, id)
		require.Equal(t, id, decodeAs[contact](t, got).ID)
	}
	require.Equal(t, 5, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))
}

func TestContactGetUnknownIs404(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("unknown-contact")
	putContact(t, app, a.Key, "known", map[string]any{"name": "Pat"})

	for _, id := range []string{"unknown", "KNOWN", "known ", "known%00"} {
		requireError(t, app.Do("GET", "/v1/contacts/"+id, a.Key, nil), 404, "not_found")
	}
}
