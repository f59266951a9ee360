package intake

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/errandhq/errand/internal/fakes"
)

// FuzzSvixSignature: whatever headers and body arrive, verifySvix never
// panics, accepts only a delivery whose signature list carries the HMAC
// of exactly this id, timestamp and body, refuses every timestamp more
// than five minutes off, and refuses the body once a byte of it changes.
func FuzzSvixSignature(f *testing.F) {
	secret := "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	payload := []byte(`{"type":"email.bounced","data":{"email_id":"4ef9a417"}}`)
	good := fakes.SignSvix(secret, "msg_1", now, payload)
	f.Add("msg_1", good.Get("svix-timestamp"), good.Get("svix-signature"), payload)
	f.Add("msg_1", good.Get("svix-timestamp"), "v1,AAAA v1,"+strings.TrimPrefix(good.Get("svix-signature"), "v1,"), payload)
	f.Add("msg_2", "1777636800", "v2,abc", []byte("{}"))
	f.Add("", "", "", []byte(nil))
	f.Add("msg_1", "-9223372036854775808", "v1,", payload)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set("svix-id", id)
		h.Set("svix-timestamp", ts)
		h.Set("svix-signature", sig)
		_, err := verifySvix(secret, now, h, body)
		if err != nil {
			return
		}
		// Accepted: the timestamp parses, lies within tolerance, and a v1
		// entry is the HMAC we compute ourselves (the fake signer's code,
		// not the SDK's).
		at := time.Unix(0, 0).UTC()
		sec, perr := strconv.ParseInt(h.Get("svix-timestamp"), 10, 64)
		if perr != nil {
			t.Fatalf("accepted an unparsable timestamp %q", ts)
		}
		at = at.Add(time.Duration(sec) * time.Second)
		if d := now.Sub(at); d > svixTolerance || d < -svixTolerance {
			t.Fatalf("accepted a timestamp %s off", d)
		}
		want := fakes.SignSvix(secret, h.Get("svix-id"), at, body).Get("svix-signature")
		if !strings.Contains(" "+h.Get("svix-signature")+" ", " "+want+" ") {
			t.Fatalf("accepted signature %q; the right one is %q", sig, want)
		}
		tampered := append([]byte(nil), body...)
		if len(tampered) == 0 {
			tampered = []byte{0}
		} else {
			tampered[len(tampered)/2] ^= 0x20
		}
		if _, err := verifySvix(secret, now, h, tampered); err == nil {
			t.Fatalf("a changed body still verified")
		}
	})
}

// FuzzTwilioSignature: a signature verifies only when it is the HMAC of
// this URL and these parameters, and stops verifying when a parameter or
// the URL changes.
func FuzzTwilioSignature(f *testing.F) {
	const token = "fuzz-auth-token-0123456789"
	const target = "https://errand.example/webhooks/twilio/inbound"
	form := url.Values{"From": {"+13125550142"}, "Body": {"STOP"}, "MessageSid": {"SM0123"}}
	f.Add(target, "From", "+13125550142", "Body", "STOP", fakes.SignTwilio(token, target, form))
	f.Add(target+"?tenant_id=x", "From", "", "Body", "start", "not-a-signature")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, fullURL, k1, v1, k2, v2, sig string) {
		form := url.Values{}
		if k1 != "" {
			form.Set(k1, v1)
		}
		if k2 != "" && k2 != k1 {
			form.Set(k2, v2)
		}
		if !validTwilioSignature(token, fullURL, form, sig) {
			return
		}
		if !slices.ContainsFunc(portVariants(fullURL), func(u string) bool { return fakes.SignTwilio(token, u, form) == sig }) {
			t.Fatalf("accepted %q, which is not the HMAC of %q and its parameters", sig, fullURL)
		}
		changed := url.Values{}
		for k, v := range form {
			changed[k] = []string{v[0] + "x"}
		}
		if len(form) > 0 && validTwilioSignature(token, fullURL, changed, sig) {
			t.Fatalf("a changed parameter still verified")
		}
		if validTwilioSignature(token, fullURL+"/other", form, sig) {
			t.Fatalf("a different URL still verified")
		}
	})
}

// portVariants are the URLs Twilio may have signed for fullURL: as given,
// with the scheme's default port and without a port (Twilio signs
// whichever form it called; the SDK accepts each).
func portVariants(fullURL string) []string {
	out := []string{fullURL}
	u, err := url.Parse(fullURL)
	if err != nil {
		return out
	}
	if u.Port() != "" {
		v := *u
		v.Host = strings.Split(u.Host, ":")[0]
		return append(out, v.String())
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	v := *u
	v.Host = u.Host + ":" + port
	return append(out, v.String())
}
