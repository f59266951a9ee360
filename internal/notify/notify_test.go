package notify_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/notify"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Quiet hours are wall-clock hours in the recipient's zone, including on
// the nights daylight saving time starts and ends.
func TestQuietHoursFollowTheWallClock(t *testing.T) {
	cases := []struct {
		name  string
		zone  string
		quiet notify.QuietHours
		at    string
		until string // "" = not quiet
	}{
		{"evening before spring forward: 9 real hours to 08:00 EDT", "America/New_York", notify.DefaultQuietHours,
			"2026-03-08T03:00:00Z", "2026-03-08T12:00:00Z"},
		{"after midnight on spring-forward night", "America/New_York", notify.DefaultQuietHours,
			"2026-03-08T06:30:00Z", "2026-03-08T12:00:00Z"},
		{"evening before fall back: 11 real hours to 08:00 EST", "America/New_York", notify.DefaultQuietHours,
			"2026-11-01T02:00:00Z", "2026-11-01T13:00:00Z"},
		{"in the repeated hour of fall back", "America/New_York", notify.DefaultQuietHours,
			"2026-11-01T06:30:00Z", "2026-11-01T13:00:00Z"},
		{"southern hemisphere: Sydney leaves DST", "Australia/Sydney", notify.DefaultQuietHours,
			"2026-04-04T11:00:00Z", "2026-04-04T22:00:00Z"},
		{"21:00 sharp is quiet", "America/Chicago", notify.DefaultQuietHours,
			"2026-06-10T02:00:00Z", "2026-06-10T13:00:00Z"},
		{"07:59 is quiet", "America/Chicago", notify.DefaultQuietHours,
			"2026-06-10T12:59:00Z", "2026-06-10T13:00:00Z"},
		{"08:00 sharp is not", "America/Chicago", notify.DefaultQuietHours,
			"2026-06-10T13:00:00Z", ""},
		{"noon is not", "America/Chicago", notify.DefaultQuietHours,
			"2026-06-10T17:00:00Z", ""},
		{"20:59 is not", "America/Chicago", notify.DefaultQuietHours,
			"2026-06-11T01:59:00Z", ""},
		{"a span within the day", "Europe/Berlin", notify.QuietHours{Start: 12 * 60, End: 14 * 60},
			"2026-06-10T10:30:00Z", "2026-06-10T12:00:00Z"},
		{"an end the clock jumps over ends at the jump", "America/New_York", notify.QuietHours{Start: 22 * 60, End: 2*60 + 30},
			"2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z"},
		{"start equal to end: no quiet hours", "America/New_York", notify.QuietHours{Start: 0, End: 0},
			"2026-03-08T06:45:00Z", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			until, quiet := c.quiet.Until(utc(c.at), notify.Zone(c.zone))
			if c.until == "" {
				require.False(t, quiet)
				require.Equal(t, utc(c.at), until)
				return
			}
			require.True(t, quiet)
			require.Equal(t, utc(c.until), until.UTC())
		})
	}
}

func TestZonePrefersTheFirstKnown(t *testing.T) {
	require.Equal(t, "America/Denver", notify.Zone("", "America/Denver", "America/Chicago").String())
	require.Equal(t, "America/Chicago", notify.Zone("Mars/Olympus_Mons", "", "America/Chicago").String())
	require.Equal(t, "UTC", notify.Zone("nope", "Local").String())
}

func TestSettingsDefaultsAndValidation(t *testing.T) {
	s, problems := notify.SettingsInput{}.Resolve()
	require.Empty(t, problems)
	require.Equal(t, notify.Defaults(), s)
	for _, e := range notify.Events {
		for _, ch := range notify.Channels {
			require.True(t, s.Enabled(e, ch), e+"/"+ch)
		}
	}
	js, err := json.Marshal(s)
	require.NoError(t, err)
	require.JSONEq(t, `{"notifications":{"confirmation":{"sms":true,"email":true},
		"reminder":{"sms":true,"email":true,"offsets":["24h"]},"on_the_way":{"sms":true,"email":true},
		"follow_up":{"sms":true,"email":true,"delay":"24h"}},"quiet_hours":{"start":"21:00","end":"08:00"}}`, string(js))
	require.Equal(t, s, notify.ParseSettings(js), "stored settings read back the same")

	var in notify.SettingsInput
	require.NoError(t, json.Unmarshal([]byte(`{"notifications":{"reminder":{"email":false,"offsets":["2h","1d","30m"]},
		"follow_up":{"delay":"90m"}},"quiet_hours":{"start":"22:30"}}`), &in))
	s, problems = in.Resolve()
	require.Empty(t, problems)
	require.False(t, s.Enabled(notify.Reminder, "email"))
	require.True(t, s.Enabled(notify.Reminder, "sms"), "absent switches keep their default")
	require.Equal(t, []notify.Duration{notify.Duration(24 * time.Hour), notify.Duration(2 * time.Hour),
		notify.Duration(30 * time.Minute)}, s.Notifications.Reminder.Offsets, "furthest first")
	require.Equal(t, "1h30m", s.Notifications.FollowUp.Delay.String())
	require.Equal(t, notify.QuietHours{Start: 22*60 + 30, End: 8 * 60}, s.QuietHours)

	bad := []struct{ body, field string }{
		{`{"notifications":{"reminder":{"offsets":["soon"]}}}`, "notifications.reminder.offsets"},
		{`{"notifications":{"reminder":{"offsets":["2h","120m"]}}}`, "notifications.reminder.offsets"},
		{`{"notifications":{"reminder":{"offsets":["10s"]}}}`, "notifications.reminder.offsets"},
		{`{"notifications":{"reminder":{"offsets":["1h","2h","3h","4h","5h","6h"]}}}`, "notifications.reminder.offsets"},
		{`{"notifications":{"follow_up":{"delay":"-1h"}}}`, "notifications.follow_up.delay"},
		{`{"quiet_hours":{"start":"9pm"}}`, "quiet_hours.start"},
		{`{"quiet_hours":{"end":"25:00"}}`, "quiet_hours.end"},
	}
	for _, b := range bad {
		var in notify.SettingsInput
		require.NoError(t, json.Unmarshal([]byte(b.body), &in))
		_, problems := in.Resolve()
		require.Contains(t, problems, b.field, b.body)
	}
}

func TestTemplates(t *testing.T) {
	require.NoError(t, notify.Validate("{business}: see you {date} at {time}, { technician } — {address} {location} {customer}"))
	require.ErrorContains(t, notify.Validate("Hi {first_name}"), "unknown placeholder {first_name}")
	require.ErrorContains(t, notify.Validate("Hi {}"), "unknown placeholder {}")
	require.NoError(t, notify.Validate("} closes nothing, { opens nothing"), "unmatched braces are text")

	for _, e := range notify.Events {
		for _, ch := range notify.Channels {
			b := notify.Builtin(e, ch)
			require.NotEmpty(t, b.Body)
			require.NoError(t, notify.Validate(b.Body))
			require.NoError(t, notify.Validate(b.Subject))
			require.Equal(t, ch == "email", b.Subject != "")
		}
	}

	a := notify.Appointment{Business: "Acme Repair", Customer: "Pat", StartsAt: utc("2026-03-10T14:30:00Z")}
	v := notify.ValuesFor(a, notify.Zone("America/Chicago"))
	require.Equal(t, "Tue, Mar 10", v.Date)
	require.Equal(t, "9:30 AM CDT", v.Time, "the recipient's wall clock, after the DST change")
	require.Equal(t, "our technician", v.Technician)
	require.Equal(t, "Acme Repair: our technician at 9:30 AM CDT {nope}",
		notify.Render("{business}: {technician} at {time} {nope}", v))
	require.Equal(t, "7:30 AM MST", notify.ValuesFor(a, notify.Zone("America/Phoenix")).Time)
}

func TestDurationFormat(t *testing.T) {
	for in, want := range map[string]string{"24h": "24h", "90m": "1h30m", "7d": "168h", "0s": "0s", "45m": "45m"} {
		d, err := notify.ParseDuration(in)
		require.NoError(t, err)
		require.Equal(t, want, notify.Duration(d).String())
	}
}

func TestZoneWhereItIs(t *testing.T) {
	for h := 0; h < 24; h++ {
		now := utc("2026-06-10T00:17:00Z").Add(time.Duration(h) * time.Hour)
		for _, want := range []int{0, 8, 12, 23} {
			require.Equal(t, want, now.In(notify.Zone(notify.ZoneWhereItIs(now, want))).Hour(), "%s → %d", now, want)
		}
	}
}

// FuzzTemplate: a tenant's template and the customer data poured into it
// never panic; a template that validates renders every placeholder, once,
// with the value as written: a customer named "{business}" is not
// expanded again, and text outside braces comes through untouched.
func FuzzTemplate(f *testing.F) {
	f.Add("{business}: see you {date} at {time}, {customer}.", "Acme", "{business}", "Sam")
	f.Add("{{date}} { time } {address}{location}", "A{", "}B", "{technician}")
	f.Add("{unknown} and {business", "x", "y", "z")
	f.Add("}{}{", "", "", "")
	f.Fuzz(func(t *testing.T, text, business, customer, technician string) {
		err := notify.Validate(text)
		v := notify.Values{Business: business, Customer: customer, Technician: technician,
			Date: "\x00date\x00", Time: "\x00time\x00", Address: "\x00address\x00", Location: "\x00location\x00"}
		got := notify.Render(text, v)
		if err != nil {
			if !strings.Contains(err.Error(), "unknown placeholder") {
				t.Fatalf("Validate(%q) = %v", text, err)
			}
			return
		}
		if want := renderByHand(text, v); got != want {
			t.Fatalf("Render(%q) = %q, want %q", text, got, want)
		}
	})
}

// renderByHand is Render written as a scan, the way a reader would apply
// the rule: each {name} with no brace inside is replaced by its value;
// everything else is copied.
func renderByHand(text string, v notify.Values) string {
	values := map[string]string{"business": v.Business, "customer": v.Customer, "technician": v.Technician,
		"date": v.Date, "time": v.Time, "address": v.Address, "location": v.Location}
	var b strings.Builder
	for i := 0; i < len(text); {
		if text[i] == '{' {
			if j := strings.IndexAny(text[i+1:], "{}"); j >= 0 && text[i+1+j] == '}' {
				b.WriteString(values[strings.TrimSpace(text[i+1:i+1+j])])
				i += j + 2
				continue
			}
		}
		b.WriteByte(text[i])
		i++
	}
	return b.String()
}
