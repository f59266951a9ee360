package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/errandhq/errand/internal/account"
	"github.com/errandhq/errand/internal/notify"
	"github.com/errandhq/errand/internal/seclog"
)

// Load is a steady, mixed load: app servers of loadTenants tenants
// texting, emailing, booking appointments and asking for verification
// codes at a fixed rate, for minutes, through the whole stack (HTTP
// intake → PostgreSQL → asynq → worker → the real Twilio and Resend SDKs
// → fake Twilio and Resend servers). It reports the error rate (every non-2xx answer and every
// message that did not end sent), request latency per kind and the
// enqueue→start latency of the work, p50 / p95 / p99.
func Load() Benchmark {
	return Benchmark{
		Name: "load",
		Doc:  "steady mixed load from 100 tenants (texts, emails, appointments, verification codes); error rate and latency percentiles",
		Run:  runLoad,
	}
}

const (
	loadTenants  = 100
	loadContacts = 5 // per tenant
	loadRate     = 40.0
	loadFor      = 3 * time.Minute // at scale 1
)

// loadKinds is the mix, in tenths of the requests.
var loadKinds = []struct {
	name   string
	tenths int
}{{"text", 5}, {"email", 2}, {"appointment", 2}, {"verification", 1}}

type loadTenant struct {
	id  uuid.UUID
	key string
}

type loadResult struct {
	kind    string
	status  int
	latency time.Duration
	err     error
}

func runLoad(ctx context.Context, env *Env, scale float64) ([]Row, error) {
	duration := max(time.Duration(float64(loadFor)*scale), 10*time.Second)
	st, err := newNotifyStack(ctx, env)
	if err != nil {
		return nil, err
	}
	defer st.close()
	tenants, err := st.loadTenants(ctx)
	if err != nil {
		return nil, err
	}
	stop, err := st.startWorker()
	if err != nil {
		return nil, err
	}
	defer stop()

	from := time.Now()
	var results []loadResult
	sample, err := env.Measure(ctx, func() (int, error) {
		results = st.steady(ctx, tenants, duration)
		return len(results), st.drain(ctx, from)
	})
	if err != nil {
		return nil, err
	}

	perKind := map[string][]float64{}
	var all []float64
	failed := 0
	for _, r := range results {
		if r.err != nil || r.status < 200 || r.status > 299 {
			failed++
			continue
		}
		perKind[r.kind] = append(perKind[r.kind], r.latency.Seconds())
		all = append(all, r.latency.Seconds())
	}
	var notSent int
	if err := st.owner.QueryRow(ctx, `SELECT count(*) FROM messages WHERE created_at >= $1
		AND send_at <= now() AND status NOT IN ('sent', 'delivered')`, from).Scan(&notSent); err != nil {
		return nil, err
	}
	var emailsSent int
	if err := st.owner.QueryRow(ctx, `SELECT count(*) FROM messages WHERE created_at >= $1
		AND channel = 'email' AND status IN ('sent', 'delivered')`, from).Scan(&emailsSent); err != nil {
		return nil, err
	}
	started, err := st.startLatency(ctx, from)
	if err != nil {
		return nil, err
	}
	row := Row{Name: "load", Unit: "requests", Job: []Sample{sample}, JobLatency: started, Extra: map[string]string{
		"tenants":           strconv.Itoa(len(tenants)),
		"rate":              fmt.Sprintf("%.0f/s", loadRate),
		"duration":          duration.String(),
		"errors":            fmt.Sprintf("%d/%d", failed, len(results)),
		"messages_not_sent": strconv.Itoa(notSent),
		"emails_at_resend":  strconv.Itoa(st.resend.Count()),
		"http_p50_p95_p99":  Percentiles(all).String(),
	}}
	for _, k := range loadKinds {
		row.Extra["http_"+k.name] = Percentiles(perKind[k.name]).String()
	}
	if failed > 0 || notSent > 0 {
		return []Row{row}, fmt.Errorf("load: %d of %d requests failed and %d messages did not end sent", failed, len(results), notSent)
	}
	if n := st.resend.Count(); n != emailsSent {
		return []Row{row}, fmt.Errorf("load: %d emails sent, but Resend accepted %d", emailsSent, n)
	}
	return []Row{row}, nil
}

// loadTenants creates the tenants, each where it is midday (no quiet
// hours hold a message) and with a few contacts.
func (st *notifyStack) loadTenants(ctx context.Context) ([]loadTenant, error) {
	svc := &account.Service{Store: st.env.Store, Clock: st.deps.Clock, SecLog: &seclog.Log{Store: st.env.Store,
		Clock: st.deps.Clock, Logger: st.env.Logger}}
	zone := notify.ZoneWhereItIs(time.Now(), 12)
	out := make([]loadTenant, loadTenants)
	for i := range out {
		t, key, err := svc.CreateTenant(ctx, account.NewTenant{Name: "Load Tenant " + strconv.Itoa(i), Timezone: zone},
			seclog.Event{Actor: "bench"})
		if err != nil {
			return nil, err
		}
		out[i] = loadTenant{id: t.ID, key: key}
		loc := fmt.Sprintf(`{"name":"Main shop","timezone":%q}`, zone)
		if status, out, err := st.call(ctx, key, http.MethodPut, "/v1/locations/main", loc); err != nil || status != http.StatusCreated {
			return nil, fmt.Errorf("location: %d %s %v", status, out, err)
		}
		for c := range loadContacts {
			body := fmt.Sprintf(`{"name":"Client %d","phone":"+1312555%04d","email":"client%d.%d@example.com"}`, c, i*loadContacts+c, i, c)
			if status, out, err := st.call(ctx, key, http.MethodPut, "/v1/contacts/c-"+strconv.Itoa(c), body); err != nil || status != http.StatusCreated {
				return nil, fmt.Errorf("contact: %d %s %v", status, out, err)
			}
		}
	}
	return out, nil
}

// steady sends requests at loadRate for d, round-robin over tenants and
// kinds, each on its own goroutine so a slow answer never slows the rate.
func (st *notifyStack) steady(ctx context.Context, tenants []loadTenant, d time.Duration) []loadResult {
	var kinds []string
	for _, k := range loadKinds {
		for range k.tenths {
			kinds = append(kinds, k.name)
		}
	}
	count := int(loadRate * d.Seconds())
	interval := time.Duration(float64(time.Second) / loadRate)
	results := make([]loadResult, count)
	var wg sync.WaitGroup
	from := time.Now()
	for i := range count {
		time.Sleep(time.Until(from.Add(time.Duration(i) * interval)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := tenants[i%len(tenants)]
			kind := kinds[(i+i/len(tenants))%len(kinds)] // every tenant sees every kind
			method, path, body := loadRequest(kind, i)
			began := time.Now()
			status, _, err := st.call(ctx, t.key, method, path, body)
			results[i] = loadResult{kind: kind, status: status, latency: time.Since(began), err: err}
		}()
	}
	wg.Wait()
	return results
}

func loadRequest(kind string, i int) (method, path, body string) {
	contact := "c-" + strconv.Itoa(i%loadContacts)
	switch kind {
	case "email":
		return http.MethodPost, "/v1/messages", fmt.Sprintf(`{"contact_id":%q,"channel":"email","subject":"Your visit","body":"Load email %d"}`, contact, i)
	case "appointment":
		// A confirmation now; the reminder a day ahead waits in PostgreSQL.
		starts := time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)
		return http.MethodPut, "/v1/appointments/a-" + strconv.Itoa(i), fmt.Sprintf(
			`{"contact_id":%q,"location_id":"main","starts_at":%q,"technician":"Sam","status":"scheduled"}`, contact, starts)
	case "verification":
		// A fresh number each time: the per-address limit (5 an hour) is real.
		to, _ := json.Marshal(fmt.Sprintf("+1646555%04d", i%10000))
		return http.MethodPost, "/v1/verifications", fmt.Sprintf(`{"channel":"sms","to":%s}`, to)
	}
	return http.MethodPost, "/v1/messages", fmt.Sprintf(`{"contact_id":%q,"channel":"sms","body":"Load text %d"}`, contact, i)
}

// drain waits until every message due by now has left queued/sending.
func (st *notifyStack) drain(ctx context.Context, from time.Time) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var pending int
		if err := st.owner.QueryRow(ctx, `SELECT count(*) FROM messages WHERE created_at >= $1 AND send_at <= now()
			AND status IN ('scheduled', 'queued', 'sending')`, from).Scan(&pending); err != nil {
			return err
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("load: %d messages still pending after 5 minutes", pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startLatency is enqueue→start (row created → claimed by a worker) of
// the messages due at once.
func (st *notifyStack) startLatency(ctx context.Context, from time.Time) (*Latency, error) {
	rows, err := st.owner.Query(ctx, `SELECT extract(epoch FROM claimed_at - created_at)::float8 FROM messages
		WHERE created_at >= $1 AND claimed_at IS NOT NULL AND send_at <= created_at + interval '1 second'`, from)
	if err != nil {
		return nil, err
	}
	secs, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	if err != nil {
		return nil, err
	}
	return Percentiles(secs), nil
}
