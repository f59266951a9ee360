package console_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/console"
)

func TestFormatIDs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		payload string
		want    string
	}{
		{"sorted key=value pairs", `{"tenant_id":"t-1","message_id":"m-1"}`, "message_id=m-1 tenant_id=t-1"},
		{"numbers and booleans as JSON", `{"n":3,"ok":true,"id":"x"}`, "id=x n=3 ok=true"},
		{"empty object", `{}`, ""},
		{"not JSON: size only", `+13125550187 Your tech is on the way`, "(36 bytes)"},
		{"JSON that is not an object: size only", `["+13125550187"]`, "(16 bytes)"},
		{"empty payload: size only", ``, "(0 bytes)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, console.FormatIDs("message:send", []byte(tc.payload)))
		})
	}
}
