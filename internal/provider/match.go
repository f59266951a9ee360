package provider

import (
	"strings"

	"github.com/errandhq/errand/internal/normalize"
)

// minContainedLetters is how many letters and digits a body needs before
// finding it inside a longer text counts as finding it: "Hi" is inside
// too many texts to identify one.
const minContainedLetters = 12

// MatchSMS picks, among texts the provider accepted from us to one number
// since an attempt began (ListSMS, less those recorded on other messages),
// the one that attempt sent, given the bodies it may have sent. Twilio's
// Message resource carries nothing of ours but the body (not the
// StatusCallback, no metadata), and Twilio may have rewritten it: Smart
// Encoding replaces curly quotes, long dashes, ellipses and unusual spaces
// with GSM-7 ones, and a Messaging Service may add opt-out or compliance
// text around ours. So MatchSMS looks, in order, for
//
//  1. a body exactly ours (the newest, if several);
//  2. the one text whose letters and digits are exactly ours;
//  3. the one text whose letters and digits contain ours (at least
//     minContainedLetters of them).
//
// Two candidates at level 2 or 3 are no match: guessing could record
// another message's text as this one's, and that message would then be
// sent again. sent is newest first, as ListSMS returns it.
func MatchSMS(sent []SentSMS, bodies ...string) (SentSMS, bool) {
	for _, s := range sent {
		for _, b := range bodies {
			if b != "" && s.Body == b {
				return s, true
			}
		}
	}
	type level func(candidate, ours string) bool
	levels := []level{
		func(c, o string) bool { return c == o },
		func(c, o string) bool { return len([]rune(o)) >= minContainedLetters && strings.Contains(c, o) },
	}
	for _, matches := range levels {
		var found []SentSMS
		for _, s := range sent {
			c := normalize.Letters(s.Body)
			for _, b := range bodies {
				if o := normalize.Letters(b); o != "" && matches(c, o) {
					found = append(found, s)
					break
				}
			}
		}
		switch len(found) {
		case 1:
			return found[0], true
		case 0:
			continue
		default:
			return SentSMS{}, false
		}
	}
	return SentSMS{}, false
}
