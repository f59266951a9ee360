package provider_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/provider"
)

func TestMatchSMS(t *testing.T) {
	const ours = "Hi Pat \u2014 your visit with Acme is Tue 9:00\u2026 Reply \u201cC\u201d to confirm"
	sms := func(id, body string) provider.SentSMS { return provider.SentSMS{ProviderID: id, Body: body} }
	cases := []struct {
		name   string
		sent   []provider.SentSMS
		bodies []string
		want   string // "" = no match
	}{
		{"exact", []provider.SentSMS{sms("a", "other"), sms("b", ours)}, []string{ours}, "b"},
		{"exact wins over a rewrite", []provider.SentSMS{sms("a", ours+" Reply STOP to opt out"), sms("b", ours)}, []string{ours}, "b"},
		{"exact, the newest of two", []provider.SentSMS{sms("new", ours), sms("old", ours)}, []string{ours}, "new"},
		{"either body", []provider.SentSMS{sms("a", "the words it was sent with")}, []string{"new words", "the words it was sent with"}, "a"},
		{"smart encoding", []provider.SentSMS{sms("a", "other"),
			sms("b", "Hi Pat - your visit with Acme is Tue 9:00... Reply \"C\" to confirm")}, []string{ours}, "b"},
		{"footer appended", []provider.SentSMS{sms("b", "Hi Pat - your visit with Acme is Tue 9:00... Reply \"C\" to confirm\nReply STOP to unsubscribe")}, []string{ours}, "b"},
		{"equal letters win over containing", []provider.SentSMS{sms("a", ours+" STOP=opt out"), sms("b", "Hi Pat, your visit with Acme is Tue 9:00. Reply C to confirm")}, []string{ours}, "b"},
		{"two rewritten candidates: no guess", []provider.SentSMS{sms("a", ours+" (1)"), sms("b", ours+" (2)")}, []string{ours}, ""},
		{"too short to find inside another", []provider.SentSMS{sms("a", "Hi there, Acme here")}, []string{"Hi!"}, ""},
		{"short, but all of it", []provider.SentSMS{sms("a", "Hi.")}, []string{"Hi!"}, "a"},
		{"different words", []provider.SentSMS{sms("a", "Your visit is Wednesday")}, []string{ours}, ""},
		{"nothing listed", nil, []string{ours}, ""},
		{"no letters at all", []provider.SentSMS{sms("a", "\U0001F44D")}, []string{"\U0001F44B"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, found := provider.MatchSMS(c.sent, c.bodies...)
			require.Equal(t, c.want != "", found)
			require.Equal(t, c.want, got.ProviderID)
		})
	}
}
