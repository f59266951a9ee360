// Package credential is what Errand knows about the credentials of service
// professionals (driver's licences, trade licences, insurance): their
// kinds, how their documents are recognised (by content, never by name),
// how their numbers are compared and masked, and the pipeline of checks a
// credential goes through before it counts as verified.
//
// The pipeline is a list of independent steps. Each step looks at one
// thing and records one result (check, outcome, reason); a new check — an
// external licence-board lookup, say — is a new Check appended to the
// list, without touching the others. Nothing here logs: numbers and
// documents are personal data, and reasons name no more than the tenant
// already knows.
package credential

import (
	"strings"
	"unicode"
)

// Kinds of credential.
const (
	DriversLicense = "drivers_license"
	TradeLicense   = "trade_license"
	Insurance      = "insurance"
)

// Kinds lists the kinds in the order the API documents them.
var Kinds = []string{DriversLicense, TradeLicense, Insurance}

// ValidKind reports whether k is a known kind.
func ValidKind(k string) bool {
	switch k {
	case DriversLicense, TradeLicense, Insurance:
		return true
	}
	return false
}

// Label is a kind as people read it.
func Label(kind string) string {
	switch kind {
	case DriversLicense:
		return "driver's license"
	case TradeLicense:
		return "trade license"
	case Insurance:
		return "insurance policy"
	}
	return kind
}

// Statuses of a credential.
const (
	StatusPending     = "pending"
	StatusVerified    = "verified"
	StatusNeedsReview = "needs_review"
	StatusRejected    = "rejected"
	StatusExpired     = "expired"
)

// NormalizeNumber is a number as the duplicate check compares it: capitals,
// without spaces, dashes, dots or slashes ("d123-456 78" → "D12345678").
func NormalizeNumber(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == ' ' || r == '-' || r == '.' || r == '/' || unicode.IsSpace(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Mask shows only the end of a number ("••••5678"), as emails and tenant
// views print it: enough to tell two credentials apart, not enough to use.
func Mask(number string) string {
	n := []rune(NormalizeNumber(number))
	keep := 0
	switch {
	case len(n) >= 8:
		keep = 4
	case len(n) >= 5:
		keep = 2
	}
	return "••••" + string(n[len(n)-keep:])
}
