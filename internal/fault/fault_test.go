package fault

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestErrorNamesEachInvalidField(t *testing.T) {
	t.Parallel()
	err := Fields(map[string]string{"timezone": "not a known IANA time zone", "name": "required"})
	require.Equal(t, "invalid_fields: some fields are invalid (name: required; timezone: not a known IANA time zone)", err.Error())
	require.Equal(t, "not_found: no such tenant", New(NotFound, "no such %s", "tenant").Error())
	f, ok := As(fmt.Errorf("wrapped: %w", err))
	require.True(t, ok)
	require.Equal(t, Invalid, f.Code)
}
