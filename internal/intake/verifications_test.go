package intake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

const (
	phoneTyped = "(312) 555-0142"
	phoneE164  = "+13125550142"
	emailAddr  = "pat.doe@example.com"
)

var codeRe = regexp.MustCompile(`\b(\d{6})\b`)

type vfix struct {
	app    *testapp.App
	tenant testapp.Tenant
}

func vsetup(t *testing.T, opts ...func(*testapp.Options)) vfix {
	t.Helper()
	app := testapp.New(t, opts...)
	return vfix{app: app, tenant: app.NewTenantIn("Acme Repair", "America/Chicago")}
}

func (f vfix) create(t *testing.T, channel, to string, headers ...string) testapp.Response {
	t.Helper()
	return f.app.Do("POST", "/v1/verifications", f.tenant.Key, map[string]string{"channel": channel, "to": to}, headers...)
}

func (f vfix) check(t *testing.T, id, code string) map[string]any {
	t.Helper()
	res := f.app.Do("POST", "/v1/verifications/"+id+"/check", f.tenant.Key, map[string]string{"code": code})
	require.Equal(t, 200, res.Status, string(res.Body))
	return res.JSON()
}

func (f vfix) get(t *testing.T, id string) map[string]any {
	t.Helper()
	res := f.app.Do("GET", "/v1/verifications/"+id, f.tenant.Key, nil)
	require.Equal(t, 200, res.Status, string(res.Body))
	return res.JSON()
}

// sentCode waits for the n-th text or email (1-based) and reads the code in it.
func (f vfix) sentCode(t *testing.T, channel string, n int) string {
	t.Helper()
	var body string
	f.app.Eventually(10*time.Second, "the code to reach the provider", func() bool {
		if channel == "sms" {
			if m := f.app.Twilio.Messages(); len(m) >= n {
				body = m[n-1].Body
				return true
			}
			return false
		}
		if e := f.app.Resend.Emails(); len(e) >= n {
			body = e[n-1].Text
			return true
		}
		return false
	})
	m := codeRe.FindStringSubmatch(body)
	require.NotNil(t, m, "no code in %q", body)
	return m[1]
}

func wrong(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1)%1_000_000)
}

func TestCodeIsDeliveredThroughTheProviderAndApproves(t *testing.T) {
	cases := []struct{ channel, to, normalized string }{
		{"sms", phoneTyped, phoneE164},
		{"email", "Pat.Doe@EXAMPLE.com", "Pat.Doe@example.com"},
	}
	for _, c := range cases {
		t.Run(c.channel, func(t *testing.T) {
			f := vsetup(t)
			f.app.StartWorker(2)
			res := f.create(t, c.channel, c.to)
			require.Equal(t, 202, res.Status, string(res.Body))
			v := res.JSON()
			require.Equal(t, "pending", v["status"])
			require.Equal(t, c.normalized, v["to"])
			expires, err := time.Parse(time.RFC3339, v["expires_at"].(string))
			require.NoError(t, err)
			require.WithinDuration(t, f.app.Clock.Now().Add(10*time.Minute), expires, time.Second)

			code := f.sentCode(t, c.channel, 1)
			if c.channel == "sms" {
				got := f.app.Twilio.Messages()[0]
				require.Equal(t, phoneE164, got.To)
				require.Contains(t, got.Body, "Acme Repair: your verification code is "+code)
			} else {
				got := f.app.Resend.Emails()[0]
				require.Equal(t, []string{"Pat.Doe@example.com"}, got.To)
				require.Equal(t, "Your verification code for Acme Repair", got.Subject)
				require.NotContains(t, got.Subject, code)
			}
			id := v["id"].(string)
			delivery := f.get(t, id)["delivery"].(map[string]any)
			msg := f.app.Message(f.tenant.ID, f.app.MustUUID(delivery["message_id"]))
			require.Equal(t, jobs.MessageKindVerification, msg.Kind)
			require.Equal(t, jobs.QueueCritical, jobs.MessageQueue(msg.Kind), "codes ride the critical queue")
			require.Nil(t, msg.ContactID)
			f.app.Eventually(5*time.Second, "message recorded as sent", func() bool {
				return f.app.Message(f.tenant.ID, msg.ID).Status == "sent"
			})

			got := f.check(t, id, code)
			require.Equal(t, "approved", got["status"])
			require.NotNil(t, got["approved_at"])
			require.Equal(t, "approved", f.check(t, id, code)["status"], "checking again changes nothing")
			require.Equal(t, "approved", f.get(t, id)["status"])
		})
	}
}

func TestWrongCodesLockTheVerificationOut(t *testing.T) {
	f := vsetup(t)
	f.app.StartWorker(2)
	id := f.create(t, "sms", phoneTyped).JSON()["id"].(string)
	code := f.sentCode(t, "sms", 1)
	for i := 1; i <= 4; i++ {
		got := f.check(t, id, wrong(code))
		require.Equal(t, "pending", got["status"])
		require.EqualValues(t, 5-i, got["attempts_remaining"])
	}
	got := f.check(t, id, wrong(code))
	require.Equal(t, "failed", got["status"])
	require.Equal(t, "too many wrong codes", got["reason"])
	require.Equal(t, "failed", f.check(t, id, code)["status"], "the right code no longer helps: failed for good")

	var v db.Verification
	require.NoError(t, f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) (err error) {
		v, err = q.VerificationGet(context.Background(), db.VerificationGetParams{TenantID: f.tenant.ID, ID: uuid.MustParse(id)})
		return err
	}))
	require.EqualValues(t, 5, v.Attempts)
	require.Nil(t, v.CodeHash, "a finished verification keeps no check value")
	require.Nil(t, v.Nonce)
}

// Concurrent wrong guesses are each counted: the row is locked per check,
// so a burst cannot squeeze in more than five tries.
func TestConcurrentGuessesAreAllCounted(t *testing.T) {
	f := vsetup(t)
	f.app.StartWorker(2)
	id := f.create(t, "sms", phoneTyped).JSON()["id"].(string)
	code := f.sentCode(t, "sms", 1)
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			n, _ := strconv.Atoi(code)
			f.app.Do("POST", "/v1/verifications/"+id+"/check", f.tenant.Key,
				map[string]string{"code": fmt.Sprintf("%06d", (n+1+i)%1_000_000)})
		}(i)
	}
	wg.Wait()
	got := f.get(t, id)
	require.Equal(t, "failed", got["status"])
	var attempts int
	require.NoError(t, testenv.Owner(t).QueryRow(context.Background(), "SELECT attempts FROM verifications WHERE id = $1", id).Scan(&attempts))
	require.Equal(t, 5, attempts)
}

func TestCodeExpiresAfterTenMinutes(t *testing.T) {
	f := vsetup(t)
	f.app.StartWorker(2)
	id := f.create(t, "sms", phoneTyped).JSON()["id"].(string)
	code := f.sentCode(t, "sms", 1)
	f.app.Clock.Advance(9*time.Minute + 59*time.Second)
	require.Equal(t, "pending", f.get(t, id)["status"])
	f.app.Clock.Advance(time.Second)
	got := f.check(t, id, code)
	require.Equal(t, "expired", got["status"], "the right code, too late")
	require.Equal(t, "the code expired before it was checked", got["reason"])
}

// A code whose message could not go out in time is not sent late.
func TestExpiredCodeIsNotSentLate(t *testing.T) {
	f := vsetup(t)
	v := f.create(t, "sms", phoneTyped).JSON()
	id, msgID := v["id"].(string), f.app.MustUUID(v["delivery"].(map[string]any)["message_id"])
	f.app.Clock.Advance(11 * time.Minute)
	f.app.StartWorker(2)
	f.app.Eventually(10*time.Second, "the message to fail", func() bool { return f.app.Message(f.tenant.ID, msgID).Status == "failed" })
	got := f.get(t, id)
	require.Equal(t, "failed", got["status"])
	require.Equal(t, "the code could not be delivered: the code expired before it could be sent", got["reason"])
	require.Zero(t, f.app.Twilio.Requests())
}

func TestNewRequestSupersedesTheOldCode(t *testing.T) {
	f := vsetup(t)
	first := f.create(t, "sms", phoneTyped).JSON()
	second := f.create(t, "sms", phoneE164).JSON()
	old := f.get(t, first["id"].(string))
	require.Equal(t, "failed", old["status"])
	require.Equal(t, "superseded by a newer code for the same address", old["reason"])
	require.Equal(t, "cancelled", old["delivery"].(map[string]any)["status"], "its text will not go out")

	f.app.StartWorker(2)
	code := f.sentCode(t, "sms", 1)
	require.Equal(t, "approved", f.check(t, second["id"].(string), code)["status"])
	require.Equal(t, 1, f.app.Twilio.Count(), "only the newest code was sent")
	other := f.create(t, "email", emailAddr).JSON()
	require.Equal(t, "pending", f.get(t, other["id"].(string))["status"], "another address has its own code")
}

// Requests racing for one address leave exactly one live code.
func TestConcurrentRequestsLeaveOneLiveCode(t *testing.T) {
	f := vsetup(t)
	var wg sync.WaitGroup
	statuses := make([]int, 6)
	for i := range statuses {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i] = f.create(t, "sms", phoneTyped).Status
		}(i)
	}
	wg.Wait()
	require.Equal(t, []int{202, 202, 202, 202, 202, 202}, statuses)
	var pending, failed int
	require.NoError(t, testenv.Owner(t).QueryRow(context.Background(),
		"SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'failed') FROM verifications").Scan(&pending, &failed))
	require.Equal(t, 1, pending)
	require.Equal(t, 5, failed)
}

func TestSuppressedAddressFailsWithAReason(t *testing.T) {
	cases := []struct {
		channel, to, address, reason, want string
	}{
		{"sms", phoneTyped, phoneE164, "opted_out", "the code could not be delivered: recipient opted out"},
		{"email", emailAddr, emailAddr, "bounced", "the code could not be delivered: email address bounced"},
	}
	for _, c := range cases {
		t.Run(c.channel, func(t *testing.T) {
			f := vsetup(t)
			ctx := context.Background()
			require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) error {
				return q.SuppressionAdd(ctx, db.SuppressionAddParams{TenantID: f.tenant.ID, Channel: c.channel,
					AddressHash: f.app.Deps.Pseudonyms.Address(c.channel, c.address), Reason: c.reason, Source: "test", Now: f.app.Clock.Now()})
			}))
			f.app.StartWorker(2)
			id := f.create(t, c.channel, c.to).JSON()["id"].(string)
			f.app.Eventually(10*time.Second, "the verification to fail", func() bool { return f.get(t, id)["status"] == "failed" })
			got := f.get(t, id)
			require.Equal(t, c.want, got["reason"])
			require.Equal(t, "suppressed", got["delivery"].(map[string]any)["status"])
			require.Zero(t, f.app.Twilio.Requests()+f.app.Resend.Requests(), "nothing was sent")
		})
	}
	t.Run("carrier opt-out", func(t *testing.T) {
		f := vsetup(t)
		f.app.Twilio.OptOut(phoneE164)
		f.app.StartWorker(2)
		id := f.create(t, "sms", phoneTyped).JSON()["id"].(string)
		f.app.Eventually(10*time.Second, "the verification to fail", func() bool { return f.get(t, id)["status"] == "failed" })
		require.Contains(t, f.get(t, id)["reason"], "recipient opted out")
	})
}

// Twilio accepted the text but its answer was lost: the retry renders the
// same text, finds it at Twilio and does not send a second code.
func TestLostProviderAnswerSendsTheCodeOnce(t *testing.T) {
	f := vsetup(t)
	f.app.Twilio.FailNext(1, fakes.Fault{AcceptThenFail: true, Status: 500})
	f.app.StartWorker(2)
	id := f.create(t, "sms", phoneTyped).JSON()["id"].(string)
	f.app.Eventually(10*time.Second, "the message to be recorded sent", func() bool {
		d, _ := f.get(t, id)["delivery"].(map[string]any)
		return d["status"] == "sent"
	})
	require.Equal(t, 1, f.app.Twilio.Count())
	code := f.sentCode(t, "sms", 1)
	require.Equal(t, "approved", f.check(t, id, code)["status"])
}

func TestVerificationRateLimits(t *testing.T) {
	f := vsetup(t, func(o *testapp.Options) {
		o.Verify.PerDestination = ratelimit.Per(3, time.Hour, 3)
		o.Verify.PerTenant = ratelimit.Per(5, time.Hour, 5)
	})
	for i := 0; i < 3; i++ {
		require.Equal(t, 202, f.create(t, "sms", phoneTyped).Status)
	}
	res := f.create(t, "sms", phoneE164, "Idempotency-Key", "limited-1")
	require.Equal(t, 429, res.Status)
	require.Equal(t, "rate_limited", res.ErrorCode())
	require.Contains(t, res.JSON()["error"].(map[string]any)["message"], "this address")
	after, err := strconv.Atoi(res.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, after, 0)
	again := f.create(t, "sms", phoneE164, "Idempotency-Key", "limited-1")
	require.Equal(t, 429, again.Status)
	require.Empty(t, again.Header.Get("Idempotent-Replayed"), "a refusal is not stored: the key can be retried later")

	other := f.app.NewTenant("Another Business")
	res = f.app.Do("POST", "/v1/verifications", other.Key, map[string]string{"channel": "sms", "to": phoneTyped})
	require.Equal(t, 429, res.Status, "the address limit holds across tenants")

	require.Equal(t, 202, f.create(t, "sms", "+13125550143").Status)
	require.Equal(t, 202, f.create(t, "email", emailAddr).Status)
	res = f.create(t, "sms", "+13125550144")
	require.Equal(t, 429, res.Status, "the tenant's own limit")
	require.Contains(t, res.JSON()["error"].(map[string]any)["message"], "this account")

	keys, err := f.app.Redis.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for _, k := range keys {
		for _, pd := range []string{"3125550142", "5550143", "pat.doe", "example.com"} {
			require.NotContains(t, k, pd, "limit keys carry pseudonyms, not addresses")
		}
	}
}

// The code exists only in the text the provider received: not in the
// message row, the verification row, the task payload, Redis or the logs.
func TestCodeIsNeverStoredOrLogged(t *testing.T) {
	f := vsetup(t)
	ctx := context.Background()
	v := f.create(t, "sms", phoneTyped).JSON()
	msgID := v["delivery"].(map[string]any)["message_id"].(string)

	job := jobs.NewMessageSendJob(f.tenant.ID, uuid.MustParse(msgID), jobs.MessageKindVerification)
	info, err := f.app.Inspector.GetTaskInfo(jobs.QueueCritical, job.ID)
	require.NoError(t, err, "the task waits on the critical queue")
	var payload map[string]any
	require.NoError(t, json.Unmarshal(info.Payload, &payload))
	require.Equal(t, map[string]any{"tenant_id": f.tenant.ID.String(), "message_id": msgID}, payload)

	f.app.StartWorker(2)
	code := f.sentCode(t, "sms", 1)
	f.app.Eventually(5*time.Second, "message recorded as sent", func() bool {
		return f.get(t, v["id"].(string))["delivery"].(map[string]any)["status"] == "sent"
	})
	token := regexp.MustCompile(`(^|[^0-9A-Za-z])` + code + `([^0-9A-Za-z]|$)`)

	owner := testenv.Owner(t)
	for _, table := range []string{"messages", "verifications"} {
		var dump string
		require.NoError(t, owner.QueryRow(ctx, "SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n'), '') FROM "+table+" t").Scan(&dump))
		require.NotEmpty(t, dump)
		require.False(t, token.MatchString(dump), "the code is in %s", table)
	}
	var body string
	require.NoError(t, owner.QueryRow(ctx, "SELECT body FROM messages WHERE id = $1", msgID).Scan(&body))
	require.Equal(t, "[verification code: written when sent, never stored]", body)

	for _, line := range strings.Split(strings.TrimSpace(f.app.Logs.String()), "\n") {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), line)
		delete(entry, "time") // microseconds could spell six digits by chance
		flat, _ := json.Marshal(entry)
		require.False(t, token.Match(flat), "the code is in a log line: %s", flat)
		require.NotContains(t, string(flat), phoneE164)
	}
	for _, kv := range redisDump(t, f.app) {
		require.False(t, token.MatchString(kv), "the code is in Redis: %q", kv)
		require.NotContains(t, kv, phoneE164)
	}
	require.True(t, token.MatchString(f.app.Twilio.Messages()[0].Body), "the search would have found it")
}

// redisDump reads every key and value of the app's Redis database.
func redisDump(t *testing.T, app *testapp.App) []string {
	t.Helper()
	ctx := context.Background()
	r := app.Redis
	keys, err := r.Keys(ctx, "*").Result()
	require.NoError(t, err)
	var out []string
	for _, k := range keys {
		out = append(out, k)
		switch r.Type(ctx, k).Val() {
		case "string":
			out = append(out, r.Get(ctx, k).Val())
		case "hash":
			for f, v := range r.HGetAll(ctx, k).Val() {
				out = append(out, f, v)
			}
		case "list":
			out = append(out, r.LRange(ctx, k, 0, -1).Val()...)
		case "set":
			out = append(out, r.SMembers(ctx, k).Val()...)
		case "zset":
			out = append(out, r.ZRange(ctx, k, 0, -1).Val()...)
		}
	}
	return out
}

func TestVerificationInputAndIsolation(t *testing.T) {
	f := vsetup(t)
	cases := []struct {
		body  any
		field string
	}{
		{map[string]string{"channel": "fax", "to": phoneTyped}, "channel"},
		{map[string]string{"channel": "sms", "to": "12"}, "to"},
		{map[string]string{"channel": "email", "to": "not-an-email"}, "to"},
		{map[string]string{"channel": "sms", "to": phoneTyped, "code": "123456"}, "code"},
	}
	for _, c := range cases {
		res := f.app.Do("POST", "/v1/verifications", f.tenant.Key, c.body)
		require.Equal(t, 422, res.Status, string(res.Body))
		require.Contains(t, res.JSON()["error"].(map[string]any)["details"], c.field)
	}
	id := f.create(t, "sms", phoneTyped).JSON()["id"].(string)
	res := f.app.Do("POST", "/v1/verifications/"+id+"/check", f.tenant.Key, map[string]string{"code": "12a456"})
	require.Equal(t, 422, res.Status)

	other := f.app.NewTenant("Someone Else")
	for _, path := range []string{"/v1/verifications/" + id, "/v1/verifications/" + uuid.NewString(), "/v1/verifications/nope"} {
		require.Equal(t, 404, f.app.Do("GET", path, other.Key, nil).Status, path)
	}
	res = f.app.Do("POST", "/v1/verifications/"+id+"/check", other.Key, map[string]string{"code": "123456"})
	require.Equal(t, 404, res.Status, "another tenant's verification is unknown")
	require.EqualValues(t, 5, f.get(t, id)["attempts_remaining"], "and its tries were not spent")
}

func TestVerificationCreateIsIdempotent(t *testing.T) {
	f := vsetup(t)
	f.app.StartWorker(2)
	first := f.create(t, "sms", phoneTyped, "Idempotency-Key", "signup-42")
	again := f.create(t, "sms", phoneTyped, "Idempotency-Key", "signup-42")
	require.Equal(t, 202, again.Status)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, first.JSON()["id"], again.JSON()["id"])
	f.sentCode(t, "sms", 1)
	require.Equal(t, "pending", f.get(t, first.JSON()["id"].(string))["status"], "the replay did not supersede it")
	var n int
	require.NoError(t, testenv.Owner(t).QueryRow(context.Background(),
		"SELECT (SELECT count(*) FROM verifications) + (SELECT count(*) FROM messages)").Scan(&n))
	require.Equal(t, 2, n, "one verification, one message")
}
