package provider_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/resend/resend-go/v2"
	"github.com/stretchr/testify/require"
	twclient "github.com/twilio/twilio-go/client"

	"github.com/errandhq/errand/internal/provider"
)

func TestClassifyNil(t *testing.T) {
	require.Nil(t, provider.Classify(nil))
}

func TestClassifyReturnsAnExistingError(t *testing.T) {
	orig := &provider.Error{Kind: provider.OptedOut, Code: "21610"}
	require.Same(t, orig, provider.Classify(orig))
	require.Same(t, orig, provider.Classify(fmt.Errorf("send reminder: %w", orig)))
}

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		name   string
		err    error
		kind   provider.Kind
		code   string
		retry  time.Duration
		status int
	}{
		{"canceled", context.Canceled, provider.Transient, "canceled", 0, 0},
		{"deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), provider.Transient, "timeout", 0, 0},
		{"connection refused", refused, provider.Transient, "connection_refused", 0, 0},
		{"dns failure", &net.DNSError{Err: "no such host", Name: "api.twilio.com"}, provider.Transient, "network", 0, 0},
		{"unknown", errors.New("boom"), provider.Transient, "unknown", 0, 0},
		{"twilio opted out", &twclient.TwilioRestError{Code: 21610, Status: 400}, provider.OptedOut, "21610", 0, 400},
		{"twilio invalid number", &twclient.TwilioRestError{Code: 21211, Status: 400}, provider.Permanent, "21211", 0, 400},
		{"twilio unknown 4xx", &twclient.TwilioRestError{Code: 21999, Status: 400}, provider.Permanent, "21999", 0, 400},
		{"twilio auth", &twclient.TwilioRestError{Code: 20003, Status: 401}, provider.Credentials, "20003", 0, 401},
		{"twilio 503", &twclient.TwilioRestError{Code: 20503, Status: 503}, provider.Transient, "20503", 0, 503},
		{"twilio v1 error", &twclient.RestErrorV1{Code: 21211, HttpStatusCode: 400}, provider.Permanent, "21211", 0, 400},
		{"resend rate limit", &resend.RateLimitError{RetryAfter: "7"}, provider.Transient, "http_429", 7 * time.Second, 429},
		{"resend rate limit reset only", &resend.RateLimitError{Reset: "2"}, provider.Transient, "http_429", 2 * time.Second, 429},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := provider.Classify(tc.err)
			require.NotNil(t, got)
			require.Equal(t, tc.kind, got.Kind)
			require.Equal(t, tc.code, got.Code)
			require.Equal(t, tc.retry, got.RetryAfter)
			require.Equal(t, tc.status, got.Status)
			require.NotEmpty(t, got.Message)
			require.True(t, errors.Is(got, tc.err), "Unwrap must reach the original error")
		})
	}
}

func TestErrorStringIsBuiltFromSafeFieldsOnly(t *testing.T) {
	e := &provider.Error{
		Kind:       provider.Transient,
		Code:       "20429",
		Status:     429,
		RetryAfter: 7 * time.Second,
		Message:    "twilio: rate limited",
		Err:        errors.New("too many messages to " + testPhone),
	}

	require.Equal(t, "transient provider error 20429 (status 429): twilio: rate limited (retry after 7s)", e.Error())
	require.NotContains(t, e.Error(), testPhone)
}

func TestKindString(t *testing.T) {
	require.Equal(t, "transient", provider.Transient.String())
	require.Equal(t, "permanent", provider.Permanent.String())
	require.Equal(t, "opted_out", provider.OptedOut.String())
	require.Equal(t, "credentials", provider.Credentials.String())
	require.Equal(t, "kind(9)", provider.Kind(9).String())
}
