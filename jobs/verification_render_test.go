package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/otp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

// verification writes a verification and its message as the intake does.
func (f fixture) verification(t *testing.T, channel, to string) (db.Verification, db.Message) {
	t.Helper()
	ctx := context.Background()
	codes := otp.New("render-test-secret-0123456789abcdef")
	var v db.Verification
	var m db.Message
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) (err error) {
		m, err = f.app.Dispatcher.InsertMessage(ctx, q, jobs.NewMessage{TenantID: f.tenant.ID,
			Kind: jobs.MessageKindVerification, Channel: channel, Body: "placeholder", SendAt: f.app.Clock.Now()})
		if err != nil {
			return err
		}
		id, nonce := uuid.New(), otp.NewNonce()
		v, err = q.VerificationCreate(ctx, db.VerificationCreateParams{ID: id, TenantID: f.tenant.ID, Channel: channel,
			Destination: to, DestinationHash: f.app.Deps.Pseudonyms.Address(channel, to), Brand: "Acme", Nonce: nonce,
			CodeHash: codes.Hash(id, codes.Code(id, nonce)), MaxAttempts: 5, MessageID: &m.ID,
			ExpiresAt: f.app.Clock.Now().Add(10 * time.Minute), Now: f.app.Clock.Now()})
		return err
	}))
	return v, m
}

func TestVerificationRendererIsDeterministicAndNamesTheDestination(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	r := &jobs.VerificationRenderer{Codes: otp.New("render-test-secret-0123456789abcdef"), Clock: f.app.Clock}
	v, m := f.verification(t, "sms", testPhone)
	var first, second jobs.Rendered
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) (err error) {
		if first, err = r.Render(ctx, q, m); err != nil {
			return err
		}
		second, err = r.Render(ctx, q, m)
		return err
	}))
	require.Equal(t, first, second, "a retry renders exactly the same text")
	require.Equal(t, testPhone, first.To)
	require.Contains(t, first.Body, "Acme: your verification code is "+r.Codes.Code(v.ID, v.Nonce)+". It is valid for 10 minutes.")

	_, em := f.verification(t, "email", testEmail)
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) (err error) {
		first, err = r.Render(ctx, q, em)
		return err
	}))
	require.Equal(t, testEmail, first.To)
	require.Equal(t, "Your verification code for Acme", first.Subject)
}

// Only a live code is sent: a checked, superseded or expired verification
// fails its message with a reason instead.
func TestVerificationRendererRefusesFinishedCodes(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	r := &jobs.VerificationRenderer{Codes: otp.New("render-test-secret-0123456789abcdef"), Clock: f.app.Clock}
	render := func(m db.Message) error {
		return f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) error {
			_, err := r.Render(ctx, q, m)
			return err
		})
	}
	v, m := f.verification(t, "sms", testPhone)
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) error {
		_, err := q.VerificationApprove(ctx, db.VerificationApproveParams{Now: f.app.Clock.Now(), TenantID: f.tenant.ID, ID: v.ID})
		return err
	}))
	err := render(m)
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorContains(t, err, "the verification is approved, so its code is not sent")

	_, m2 := f.verification(t, "sms", "+13125550199")
	f.app.Clock.Advance(10 * time.Minute)
	err = render(m2)
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorContains(t, err, "the code expired before it could be sent")

	_, err = testenv.Owner(t).Exec(ctx, "DELETE FROM verifications WHERE message_id = $1", m2.ID)
	require.NoError(t, err)
	require.ErrorContains(t, render(m2), "no longer exists")
}
