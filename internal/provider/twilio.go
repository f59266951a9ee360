package provider

import (
	"context"
	"net/http"
	"time"

	"github.com/twilio/twilio-go"
	twclient "github.com/twilio/twilio-go/client"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// defaultTimeout bounds one provider call when the config does not.
const defaultTimeout = 10 * time.Second

// findSMSLimit is how many recent messages ListSMS inspects.
const findSMSLimit = 50

// TwilioConfig configures NewTwilio.
type TwilioConfig struct {
	AccountSID string
	AuthToken  string
	// From is the sender of every message: an E.164 number or sender id.
	From string
	// BaseURL replaces https://api.twilio.com (scheme, host and an optional
	// path prefix); "" means the real API.
	BaseURL string
	// Timeout bounds each call, including reading the response; 0 means
	// HTTPClient.Timeout if set, else 10s.
	Timeout time.Duration
	// HTTPClient optionally supplies the transport (for proxies or TLS
	// settings). Its Timeout is used only as the default for Timeout.
	HTTPClient *http.Client
}

// Twilio sends SMS through Twilio's REST API using the official SDK.
// It is safe for concurrent use.
type Twilio struct {
	accountSID string
	authToken  string
	from       string
	timeout    time.Duration
	transport  http.RoundTripper
	configErr  error
}

// NewTwilio returns a Twilio client. A malformed BaseURL or a missing From is
// reported as a Transient *Error (code "config") by every call, so fixing
// the configuration loses no messages.
func NewTwilio(cfg TwilioConfig) *Twilio {
	t := &Twilio{
		accountSID: cfg.AccountSID,
		authToken:  cfg.AuthToken,
		from:       cfg.From,
		timeout:    callTimeout(cfg.Timeout, cfg.HTTPClient),
	}
	transport := http.RoundTripper(captureTransport{next: baseTransport(cfg.HTTPClient)})
	if cfg.BaseURL != "" {
		rt, err := newRewriteTransport(cfg.BaseURL, transport)
		if err != nil {
			t.configErr = err
		}
		transport = rt
	}
	t.transport = transport
	return t
}

// SendSMS asks Twilio to send m from the configured sender. Errors are
// *Error.
func (t *Twilio) SendSMS(ctx context.Context, m SMS) (Receipt, error) {
	api, ex, done, err := t.api(ctx)
	if err != nil {
		return Receipt{}, err
	}
	defer done()

	params := &twapi.CreateMessageParams{}
	params.SetTo(m.To).SetFrom(t.from).SetBody(m.Body)
	if m.StatusCallback != "" {
		params.SetStatusCallback(m.StatusCallback)
	}
	msg, err := api.CreateMessage(params)
	if err != nil {
		return Receipt{}, classifyTwilio(err, ex)
	}
	if msg.Sid == nil || *msg.Sid == "" {
		return Receipt{}, &Error{Kind: Transient, Code: "bad_response",
			Message: "twilio: accepted response has no message sid"}
	}
	return Receipt{ProviderID: *msg.Sid}, nil
}

// ListSMS lists the texts Twilio accepted from our number to `to` that it
// created at or after since, newest first: at most the 50 most recent,
// with their bodies as Twilio stored them. It is used after an attempt
// whose outcome is unknown (a worker died mid-call, an answer was lost),
// to find the text before sending it again (see MatchSMS). It checks the
// creation time itself, to the second, which is Twilio's resolution, and
// does not filter on DateSent: a message Twilio accepted but has not sent
// yet has no date_sent, and must still be found. Errors are *Error.
func (t *Twilio) ListSMS(ctx context.Context, to string, since time.Time) ([]SentSMS, error) {
	api, ex, done, err := t.api(ctx)
	if err != nil {
		return nil, err
	}
	defer done()

	params := &twapi.ListMessageParams{}
	params.SetTo(to).SetFrom(t.from).SetPageSize(findSMSLimit).SetLimit(findSMSLimit)
	msgs, err := api.ListMessage(params)
	if err != nil {
		return nil, classifyTwilio(err, ex)
	}
	cutoff := since.Truncate(time.Second)
	var out []SentSMS
	for _, msg := range msgs {
		if msg.Sid == nil || msg.Body == nil {
			continue
		}
		sent := SentSMS{ProviderID: *msg.Sid, Body: *msg.Body}
		if msg.DateCreated != nil {
			created, err := time.Parse(time.RFC1123Z, *msg.DateCreated)
			if err == nil && created.Before(cutoff) {
				continue
			}
			sent.Created = created
		}
		out = append(out, sent)
	}
	return out, nil
}

// api builds an SDK client for one call. Twilio's SDK takes no context, so
// each call gets its own *http.Client whose transport substitutes the call's
// context (deadline, cancellation, exchange) for the SDK's
// context.Background(). done must be called once the SDK call returned.
func (t *Twilio) api(ctx context.Context) (*twapi.ApiService, *exchange, context.CancelFunc, error) {
	switch {
	case t.configErr != nil:
		return nil, nil, nil, &Error{Kind: Transient, Code: "config",
			Message: "twilio: invalid base url", Err: t.configErr}
	case t.from == "":
		return nil, nil, nil, &Error{Kind: Transient, Code: "config",
			Message: "twilio: no sender configured"}
	}
	ex := &exchange{}
	callCtx, cancel := context.WithTimeout(withExchange(ctx, ex), t.timeout)

	c := &twclient.Client{
		Credentials: twclient.NewCredentials(t.accountSID, t.authToken),
		HTTPClient: &http.Client{
			Transport:     contextTransport{ctx: callCtx, next: t.transport},
			CheckRedirect: noRedirect,
		},
	}
	c.SetAccountSid(t.accountSID)
	rc := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})
	// The SDK reads TWILIO_EDGE and TWILIO_REGION from the environment and
	// would rewrite api.twilio.com to an edge host; configuration here is
	// explicit only.
	rc.RequestHandler.Edge = ""
	rc.RequestHandler.Region = ""
	return rc.Api, ex, cancel, nil
}

// noRedirect returns redirects to the SDK unfollowed, as the SDK's own
// default client does.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// callTimeout picks the per-call timeout: the configured one, else the
// supplied client's, else defaultTimeout.
func callTimeout(configured time.Duration, hc *http.Client) time.Duration {
	switch {
	case configured > 0:
		return configured
	case hc != nil && hc.Timeout > 0:
		return hc.Timeout
	default:
		return defaultTimeout
	}
}
