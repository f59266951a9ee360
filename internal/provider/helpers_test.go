package provider_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/provider"
)

// Personal data used by the tests; none of it may appear in an error string.
const (
	testPhone   = "+15005550006"
	testFrom    = "+15005550001"
	testBody    = "Your Errand code is 482913"
	testEmail   = "ada.lovelace@example.com"
	testSubject = "Your receipt 5521"
	testText    = "Thanks for your order of three widgets."
)

// requireProviderError asserts err is a *provider.Error of the given kind
// whose text mentions none of secrets, and returns it.
func requireProviderError(t *testing.T, err error, kind provider.Kind, secrets ...string) *provider.Error {
	t.Helper()
	require.Error(t, err)
	var perr *provider.Error
	require.True(t, errors.As(err, &perr), "want *provider.Error, got %T: %v", err, err)
	require.Equal(t, kind, perr.Kind, "error: %v", perr)
	for _, s := range secrets {
		require.NotContains(t, perr.Error(), s)
		require.NotContains(t, perr.Message, s)
		require.NotContains(t, perr.Code, s)
	}
	return perr
}
