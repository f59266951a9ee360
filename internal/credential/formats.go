package credential

import (
	"regexp"
	"strings"
)

// licenceFormats are the driver's licence number formats of US states, as
// the states' motor-vehicle agencies publish them (after NormalizeNumber).
// A number that matches none is not necessarily false — formats change —
// which is why the check asks a person rather than rejecting.
var licenceFormats = map[string]*regexp.Regexp{}

var licencePatterns = map[string]string{
	"AL": `\d{1,8}`,
	"AK": `\d{1,7}`,
	"AZ": `[A-Z]\d{8}|[A-Z]{2}\d{2,5}|\d{9}`,
	"AR": `\d{4,9}`,
	"CA": `[A-Z]\d{7}`,
	"CO": `\d{9}|[A-Z]\d{3,6}|[A-Z]{2}\d{2,5}`,
	"CT": `\d{9}`,
	"DE": `\d{1,7}`,
	"DC": `\d{7}|\d{9}`,
	"FL": `[A-Z]\d{12}`,
	"GA": `\d{7,9}`,
	"HI": `[A-Z]\d{8}|\d{9}`,
	"ID": `[A-Z]{2}\d{6}[A-Z]|\d{9}`,
	"IL": `[A-Z]\d{11,12}`,
	"IN": `[A-Z]\d{9}|\d{9,10}`,
	"IA": `\d{9}|\d{3}[A-Z]{2}\d{4}`,
	"KS": `[A-Z]\d[A-Z]\d[A-Z]|[A-Z]\d{8}|\d{9}`,
	"KY": `[A-Z]\d{8,9}|\d{9}`,
	"LA": `\d{1,9}`,
	"ME": `\d{7,8}|\d{7}[A-Z]`,
	"MD": `[A-Z]\d{12}`,
	"MA": `[A-Z]\d{8}|\d{9}`,
	"MI": `[A-Z]\d{10}|[A-Z]\d{12}`,
	"MN": `[A-Z]\d{12}`,
	"MS": `\d{9}`,
	"MO": `[A-Z]\d{5,10}|[A-Z]\d{6}R|\d{8}[A-Z]{2}|\d{9}[A-Z]?`,
	"MT": `[A-Z]\d{8}|\d{9}|\d{13,14}`,
	"NE": `[A-Z]\d{6,8}`,
	"NV": `\d{9,10}|\d{12}|X\d{8}`,
	"NH": `\d{2}[A-Z]{3}\d{5}`,
	"NJ": `[A-Z]\d{14}`,
	"NM": `\d{8,9}`,
	"NY": `[A-Z]\d{7}|[A-Z]\d{18}|\d{8,9}|\d{16}|[A-Z]{8}`,
	"NC": `\d{1,12}`,
	"ND": `[A-Z]{3}\d{6}|\d{9}`,
	"OH": `[A-Z]\d{4,8}|[A-Z]{2}\d{3,7}|\d{8}`,
	"OK": `[A-Z]\d{9}|\d{9}`,
	"OR": `\d{1,9}|[A-Z]\d{6}|[A-Z]{2}\d{5}`,
	"PA": `\d{8}`,
	"RI": `\d{7}|[A-Z]\d{6}`,
	"SC": `\d{5,11}`,
	"SD": `\d{6,10}|\d{12}`,
	"TN": `\d{7,9}`,
	"TX": `\d{7,8}`,
	"UT": `\d{4,10}`,
	"VT": `\d{8}|\d{7}A`,
	"VA": `[A-Z]\d{8,11}|\d{9}`,
	"WA": `[A-Z][A-Z0-9*]{11}`,
	"WV": `\d{7}|[A-Z]{1,2}\d{5,6}`,
	"WI": `[A-Z]\d{13}`,
	"WY": `\d{9,10}`,
}

var stateNames = map[string]string{
	"ALABAMA": "AL", "ALASKA": "AK", "ARIZONA": "AZ", "ARKANSAS": "AR", "CALIFORNIA": "CA", "COLORADO": "CO",
	"CONNECTICUT": "CT", "DELAWARE": "DE", "DISTRICT OF COLUMBIA": "DC", "FLORIDA": "FL", "GEORGIA": "GA",
	"HAWAII": "HI", "IDAHO": "ID", "ILLINOIS": "IL", "INDIANA": "IN", "IOWA": "IA", "KANSAS": "KS",
	"KENTUCKY": "KY", "LOUISIANA": "LA", "MAINE": "ME", "MARYLAND": "MD", "MASSACHUSETTS": "MA",
	"MICHIGAN": "MI", "MINNESOTA": "MN", "MISSISSIPPI": "MS", "MISSOURI": "MO", "MONTANA": "MT",
	"NEBRASKA": "NE", "NEVADA": "NV", "NEW HAMPSHIRE": "NH", "NEW JERSEY": "NJ", "NEW MEXICO": "NM",
	"NEW YORK": "NY", "NORTH CAROLINA": "NC", "NORTH DAKOTA": "ND", "OHIO": "OH", "OKLAHOMA": "OK",
	"OREGON": "OR", "PENNSYLVANIA": "PA", "RHODE ISLAND": "RI", "SOUTH CAROLINA": "SC", "SOUTH DAKOTA": "SD",
	"TENNESSEE": "TN", "TEXAS": "TX", "UTAH": "UT", "VERMONT": "VT", "VIRGINIA": "VA", "WASHINGTON": "WA",
	"WEST VIRGINIA": "WV", "WISCONSIN": "WI", "WYOMING": "WY",
}

func init() {
	for state, p := range licencePatterns {
		licenceFormats[state] = regexp.MustCompile(`^(?:` + p + `)$`)
	}
}

// State reads an issuer as a US state: its two-letter code or its name
// ("tx", "Texas", "State of Texas"), or "" when it is neither.
func State(issuer string) string {
	s := strings.ToUpper(strings.Join(strings.Fields(strings.ReplaceAll(issuer, ".", " ")), " "))
	s = strings.TrimPrefix(s, "STATE OF ")
	if _, ok := licenceFormats[s]; ok {
		return s
	}
	return stateNames[s]
}

var (
	tradeFormat     = regexp.MustCompile(`^[A-Z0-9*]{3,30}$`)
	insuranceFormat = regexp.MustCompile(`^[A-Z0-9]{4,40}$`)
	hasDigit        = regexp.MustCompile(`\d`)
)

// plausible says whether a normalised number could be a real one of its
// kind and issuer, and why not when it could not. specific is true when
// the issuer's own formats were checked, not just the kind's shape.
func plausible(kind, issuer, norm string) (ok, specific bool, why string) {
	if placeholder(norm) {
		return false, true, "the number looks like a placeholder"
	}
	switch kind {
	case DriversLicense:
		state := State(issuer)
		if state == "" {
			return false, false, "the issuer is not a US state, so the number's format could not be checked"
		}
		if !licenceFormats[state].MatchString(norm) {
			return false, true, "the number does not match any format of " + state + " driver's licenses"
		}
		return true, true, ""
	case TradeLicense:
		if !tradeFormat.MatchString(norm) || !hasDigit.MatchString(norm) {
			return false, false, "a trade license number has 3 to 30 letters and digits, at least one a digit"
		}
	case Insurance:
		if !insuranceFormat.MatchString(norm) || !hasDigit.MatchString(norm) {
			return false, false, "a policy number has 4 to 40 letters and digits, at least one a digit"
		}
	}
	return true, false, ""
}

// placeholder catches numbers typed to get past a form: one repeated
// character, or a run like 123456789.
func placeholder(norm string) bool {
	if len(norm) < 4 {
		return false
	}
	same, up := true, true
	for i := 1; i < len(norm); i++ {
		same = same && norm[i] == norm[0]
		up = up && norm[i] == norm[i-1]+1
	}
	return same || up
}
