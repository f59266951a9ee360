package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/otp"
)

// MessageKindVerification is the kind of the message that carries a
// verification code. MessageQueue sends it on the critical queue.
const MessageKindVerification = "verification"

// VerificationRenderer writes a verification code's message at send time,
// inside the message's claim transaction: the code is derived from the
// verification's nonce (see internal/otp) and exists only in this text and
// at the provider — never in the message row, the task payload, Redis or
// a log line. The text is the same on every retry, so a retry that asks
// Twilio whether an earlier attempt got through finds it.
//
// A code is only sent while its verification is pending and unexpired; a
// superseded, checked or expired verification fails its message instead,
// with the reason on the row.
type VerificationRenderer struct {
	Codes *otp.Codes
	Clock clock.Clock
}

// Render implements Renderer.
func (r *VerificationRenderer) Render(ctx context.Context, q *db.Queries, m db.Message) (Rendered, error) {
	v, err := q.VerificationGetByMessage(ctx, db.VerificationGetByMessageParams{TenantID: m.TenantID, MessageID: m.ID})
	if db.IsNotFound(err) {
		return Rendered{}, Permanent(errors.New("the verification behind this message no longer exists"))
	}
	if err != nil {
		return Rendered{}, fmt.Errorf("load verification: %w", err)
	}
	if v.Status != "pending" {
		return Rendered{}, Permanent(fmt.Errorf("the verification is %s, so its code is not sent", v.Status))
	}
	if !r.Clock.Now().Before(v.ExpiresAt) {
		return Rendered{}, Permanent(errors.New("the code expired before it could be sent"))
	}
	code := r.Codes.Code(v.ID, v.Nonce)
	valid := validity(v.ExpiresAt.Sub(v.CreatedAt))
	if v.Channel == "sms" {
		return Rendered{To: v.Destination,
			Body: fmt.Sprintf("%s: your verification code is %s. It is valid for %s. Never share it.", v.Brand, code, valid)}, nil
	}
	return Rendered{To: v.Destination, Subject: "Your verification code for " + v.Brand,
		Body: fmt.Sprintf("Your verification code is %s.\n\nIt is valid for %s. If you did not ask for it, ignore this email; never share the code with anyone.\n\n%s\n",
			code, valid, v.Brand)}, nil
}

// validity says how long a code lasts, as people say it.
func validity(d time.Duration) string {
	if m := int(d.Round(time.Minute) / time.Minute); m >= 1 {
		if m == 1 {
			return "1 minute"
		}
		return fmt.Sprintf("%d minutes", m)
	}
	return "a few seconds"
}
