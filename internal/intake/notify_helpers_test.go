package intake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/jobs"
)

// shop is a tenant with a location and a customer, as most notification
// tests need.
type shop struct {
	app    *testapp.App
	tenant testapp.Tenant
	zone   string // the location's zone: midday when the test starts
}

const (
	custPhone = "+13125550142"
	custEmail = "pat.doe@example.com"
)

func newShop(t *testing.T, app *testapp.App, name string) shop {
	t.Helper()
	s := shop{app: app, tenant: app.NewTenant(name), zone: app.MiddayZone()}
	s.putLocation(t, "loc-1", map[string]any{})
	s.putContact(t, "cust-1", map[string]any{"name": "Pat Doe", "phone": custPhone, "email": custEmail})
	return s
}

func (s shop) do(t *testing.T, method, path string, body any, headers ...string) testapp.Response {
	t.Helper()
	return s.app.Do(method, path, s.tenant.Key, body, headers...)
}

func (s shop) putContact(t *testing.T, id string, body map[string]any) {
	t.Helper()
	r := s.do(t, http.MethodPut, "/v1/contacts/"+id, body)
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
}

// putLocation saves a location in the shop's zone; extra holds the
// notification settings and quiet hours, if any.
func (s shop) putLocation(t *testing.T, id string, extra map[string]any) map[string]any {
	t.Helper()
	body := map[string]any{"name": "Downtown", "timezone": s.zone}
	for k, v := range extra {
		body[k] = v
	}
	r := s.do(t, http.MethodPut, "/v1/locations/"+id, body)
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	return r.JSON()
}

func (s shop) putAppointment(t *testing.T, id string, startsAt time.Time, status string, extra ...string) testapp.Response {
	t.Helper()
	body := map[string]any{"contact_id": "cust-1", "location_id": "loc-1", "starts_at": startsAt.UTC().Format(time.RFC3339),
		"status": status, "address": "1 Main St", "technician": "Sam"}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i]] = extra[i+1]
	}
	return s.do(t, http.MethodPut, "/v1/appointments/"+id, body)
}

// apptMessage is a message as GET /v1/appointments/{id}/messages shows it.
type apptMessage struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Channel string    `json:"channel"`
	Status  string    `json:"status"`
	SendAt  time.Time `json:"send_at"`
	DueAt   time.Time `json:"due_at"`
	Error   *string   `json:"error"`
}

func (s shop) messages(t *testing.T, appt string) []apptMessage {
	t.Helper()
	r := s.do(t, http.MethodGet, "/v1/appointments/"+appt+"/messages", nil)
	require.Equal(t, 200, r.Status, string(r.Body))
	var out struct {
		Messages []apptMessage `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &out))
	return out.Messages
}

// find returns the messages of a kind and channel ("" = any channel).
func find(ms []apptMessage, kind, channel string) []apptMessage {
	var out []apptMessage
	for _, m := range ms {
		if m.Kind == kind && (channel == "" || m.Channel == channel) {
			out = append(out, m)
		}
	}
	return out
}

func statuses(ms []apptMessage) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		out[m.Status]++
	}
	return out
}

func (s shop) message(t *testing.T, id string) db.Message {
	t.Helper()
	return s.app.Message(s.tenant.ID, s.app.MustUUID(id))
}

// waitStatus waits until every listed message has one of the statuses.
func (s shop) waitStatus(t *testing.T, ids []string, want ...string) {
	t.Helper()
	s.app.Eventually(10*time.Second, fmt.Sprintf("messages %v", want), func() bool {
		for _, id := range ids {
			m := s.message(t, id)
			ok := false
			for _, w := range want {
				ok = ok || m.Status == w
			}
			if !ok {
				return false
			}
		}
		return true
	})
}

func ids(ms []apptMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// suppressionEvents lists a tenant's opt-out records for an address.
func suppressionEvents(t *testing.T, app *testapp.App, tenant uuid.UUID, channel, address string) []db.SuppressionEvent {
	t.Helper()
	var out []db.SuppressionEvent
	require.NoError(t, app.Store.InTenant(context.Background(), tenant, func(q *db.Queries) (err error) {
		out, err = q.SuppressionEventList(context.Background(), db.SuppressionEventListParams{TenantID: tenant,
			Channel: channel, AddressHash: app.Deps.Pseudonyms.Address(channel, address)})
		return err
	}))
	return out
}

// runSend runs one message's send task once, as a worker would.
func runSend(t *testing.T, app *testapp.App, tenant uuid.UUID, id, kind string) error {
	t.Helper()
	j := jobs.NewMessageSendJob(tenant, app.MustUUID(id), kind)
	return jobs.NewMessageSend(app.Deps).ProcessTask(context.Background(), asynq.NewTask(j.Type, j.Payload))
}
