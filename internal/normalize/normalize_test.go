package normalize

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPhone(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw, region, want string
		err               error
	}{
		{"(312) 555-0142", "US", "+13125550142", nil},
		{"312.555.0142", "US", "+13125550142", nil},
		{"+1 312 555 0142", "", "+13125550142", nil},
		{"0044 20 7946 0958", "US", "+442079460958", nil},
		{"020 7946 0958", "GB", "+442079460958", nil},
		{"  +44 20 7946 0958 ", "US", "+442079460958", nil},
		{"555-0142", "US", "", ErrPhoneInvalid},
		{"not a phone", "US", "", ErrPhoneInvalid},
		{"", "US", "", ErrPhoneInvalid},
		{"312 555 0142", "", "", ErrPhoneRegion},
		{"+1 312 555 0142 ext 9999999999999999999999999999999", "US", "", ErrPhoneInvalid},
	}
	for _, c := range cases {
		got, err := Phone(c.raw, c.region)
		if c.err != nil {
			require.ErrorIs(t, err, c.err, c.raw)
			if c.raw != "" {
				require.NotContains(t, err.Error(), c.raw, "errors must not repeat the input")
			}
			continue
		}
		require.NoError(t, err, c.raw)
		require.Equal(t, c.want, got, c.raw)
	}
}

func TestEmail(t *testing.T) {
	t.Parallel()
	cases := []struct{ raw, want string }{
		{"pat@Example.COM", "pat@example.com"},
		{"  Pat.Smith+tag@example.co.uk ", "Pat.Smith+tag@example.co.uk"},
		{"pat", ""},
		{"pat@", ""},
		{"@example.com", ""},
		{"pat@example", ""},
		{"Pat <pat@example.com>", ""},
		{"pat@exa mple.com", ""},
		{"pat@example..com", ""},
		{"a@b.com, c@d.com", ""},
	}
	for _, c := range cases {
		got, err := Email(c.raw)
		if c.want == "" {
			require.ErrorIs(t, err, ErrEmailInvalid, c.raw)
			continue
		}
		require.NoError(t, err, c.raw)
		require.Equal(t, c.want, got)
	}
}

func FuzzPhone(f *testing.F) {
	for _, s := range []string{"(312) 555-0142", "+442079460958", "0044 20", "+", "00", "1"} {
		f.Add(s, "US")
	}
	f.Fuzz(func(t *testing.T, raw, region string) {
		got, err := Phone(raw, region)
		if err != nil {
			return
		}
		again, err := Phone(got, "")
		require.NoError(t, err, "E.164 output must parse again")
		require.Equal(t, got, again, "normalising is idempotent")
	})
}

func FuzzEmail(f *testing.F) {
	for _, s := range []string{"pat@example.com", "a@b.c", "x@y", "\"q\"@x.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := Email(raw)
		if err != nil {
			return
		}
		again, err := Email(got)
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
}

// A stored phone is found in free text however it was typed: with its
// country code, in the national format (with a trunk prefix where the
// country has one), or as the bare national number.
func TestPhoneDigits(t *testing.T) {
	require.Equal(t, []string{"13125550199", "3125550199"}, PhoneDigits("+13125550199"))
	require.Equal(t, []string{"447700900123", "07700900123", "7700900123"}, PhoneDigits("+447700900123"))
	require.Nil(t, PhoneDigits("not a phone"))
}

func TestLetters(t *testing.T) {
	require.Equal(t, "élodiedupont42", Letters("  ÉLODIE  Du-Pont, #42 "))
	require.Equal(t, "dont", Letters("donʼt"), "a modifier letter is punctuation")
}
