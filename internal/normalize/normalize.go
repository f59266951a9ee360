// Package normalize turns the phone numbers and email addresses people
// type into the one form Errand stores and compares: E.164 phones, trimmed
// and lower-cased email domains. Its errors describe the problem without
// repeating the input, so they are safe to log.
package normalize

import (
	"errors"
	"net/mail"
	"slices"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// Problems a caller can show to a person.
var (
	ErrPhoneInvalid = errors.New("not a valid phone number")
	ErrPhoneRegion  = errors.New("phone number has no country code and the region is unknown")
	ErrEmailInvalid = errors.New("not a valid email address")
)

// Phone parses raw in the given default region (ISO 3166 code, e.g. "US")
// and returns it in E.164. Numbers with a leading + or 00 ignore the region.
func Phone(raw, region string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 40 {
		return "", ErrPhoneInvalid
	}
	if strings.HasPrefix(raw, "00") {
		raw = "+" + raw[2:]
	}
	region = strings.ToUpper(strings.TrimSpace(region))
	if region == "" && !strings.HasPrefix(raw, "+") {
		return "", ErrPhoneRegion
	}
	num, err := phonenumbers.Parse(raw, region)
	if err != nil {
		return "", ErrPhoneInvalid
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", ErrPhoneInvalid
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// Region reports whether code is a region the phone library knows.
func Region(code string) bool {
	_, ok := phonenumbers.GetSupportedRegions()[strings.ToUpper(code)]
	return ok
}

// Email validates raw as a single bare address (no display name) and
// returns it trimmed, with the domain lower-cased.
func Email(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 254 || strings.ContainsAny(raw, " <>\"\r\n\t,;") {
		return "", ErrEmailInvalid
	}
	addr, err := mail.ParseAddress(raw)
	if err != nil || addr.Address != raw || addr.Name != "" {
		return "", ErrEmailInvalid
	}
	at := strings.LastIndexByte(raw, '@')
	local, domain := raw[:at], strings.ToLower(raw[at+1:])
	if local == "" || len(local) > 64 || !strings.Contains(domain, ".") ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", ErrEmailInvalid
	}
	return local + "@" + domain, nil
}

// PhoneDigits returns the digit strings a stored E.164 phone is typed as
// in free text, longest first: the whole number without its "+", the
// national format where it differs (a trunk prefix: "07700900123" for
// +447700900123) and the national number ("13125550199" and
// "3125550199" for +13125550199), so a search that ignores spaces and
// punctuation finds "(312) 555-0199" and "07700 900123" too.
func PhoneDigits(e164 string) []string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return nil
	}
	out := []string{strings.TrimPrefix(phonenumbers.Format(num, phonenumbers.E164), "+")}
	for _, d := range []string{digitsOnly(phonenumbers.Format(num, phonenumbers.NATIONAL)),
		phonenumbers.GetNationalSignificantNumber(num)} {
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func digitsOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// Letters is s reduced to its letters and digits, lower-cased: the form
// in which free text is compared when case, spacing and punctuation must
// not matter (a name typed in capitals, a text an SMS gateway re-encoded).
// Modifier letters (ʼ, ˮ) are punctuation in practice and go too.
func Letters(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsDigit(r) || unicode.IsLetter(r) && !unicode.Is(unicode.Lm, r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}
