package intake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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
//
// now is the wall clock: resend-go's verifier reads it too, so seeds
// signed for a fixed date would all be stale and the accepted path never
// reached. The seeds that need a valid signature are therefore made here;
// testdata/fuzz/FuzzSvixSignature holds the ones that need none.
func FuzzSvixSignature(f *testing.F) {
	secret := "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	now := time.Now().UTC().Truncate(time.Second)
	payload := []byte(`{"type":"email.bounced","data":{"email_id":"4ef9a417"}}`)
	good := fakes.SignSvix(secret, "msg_1", now, payload)
	ts, sig := good.Get("svix-timestamp"), good.Get("svix-signature")
	if _, err := verifySvix(secret, now, good, payload); err != nil {
		f.Fatalf("the well-signed seed is refused (%v): the accepted path would go unfuzzed", err)
	}
	f.Add("msg_1", ts, sig, payload)
	f.Add("msg_1", ts, "v1,AAAA v1,"+strings.TrimPrefix(sig, "v1,"), payload)
	f.Add("msg_1", ts, "v1,bm90IGl0 v2,"+strings.TrimPrefix(sig, "v1,")+" "+sig+" v1a,xyz", payload)
	f.Add("msg_2", ts, sig, payload)                                           // signed for another id
	f.Add("msg_1", ts, sig, append(payload[:len(payload):len(payload)], '\n')) // a byte more
	f.Add("msg_1", ts, strings.TrimPrefix(sig, "v1,"), payload)
	for _, version := range []string{"", "v2", "v1a", "V1"} { // the right HMAC under another version
		f.Add("msg_1", ts, version+","+strings.TrimPrefix(sig, "v1,"), payload)
	}
	f.Add("msg_1", ts, sig[:len(sig)-4], payload)
	flipped := []byte(sig)
	flipped[10] ^= 1
	f.Add("msg_1", ts, string(flipped), payload)
	for _, d := range []time.Duration{svixTolerance - time.Second, -svixTolerance + time.Second, svixTolerance + time.Second, -svixTolerance - time.Second} {
		h := fakes.SignSvix(secret, "msg_1", now.Add(d), payload)
		f.Add("msg_1", h.Get("svix-timestamp"), h.Get("svix-signature"), payload)
	}
	// Signed over a timestamp written the way no one writes it: the HMAC
	// is right, the number is the same, the text is not.
	for _, odd := range []string{"+" + ts, "0" + ts, ts + " "} {
		f.Add("msg_1", odd, svixSignRaw(secret, "msg_1", odd, payload), payload)
	}
	f.Add("msg.with.dots", ts, fakes.SignSvix(secret, "msg.with.dots", now, nil).Get("svix-signature"), []byte{})
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
	if !validTwilioSignature(token, target, form, fakes.SignTwilio(token, target, form)) {
		f.Fatalf("the well-signed seed is refused: the accepted path would go unfuzzed")
	}
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

// svixSignRaw is the v1 signature over id, ts and body with ts taken as
// written (fakes.SignSvix formats a time, so it cannot write an odd one).
func svixSignRaw(secret, id, ts string, body []byte) string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}
