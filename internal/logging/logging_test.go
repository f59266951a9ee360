package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestContextAttributesReachEveryLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := New(&buf, slog.LevelInfo)
	ctx := With(context.Background(), slog.String("request_id", "r1"))
	ctx = With(ctx, slog.String("job_id", "message:1"))
	l.With("component", "test").InfoContext(ctx, "hello", "n", 1)
	l.DebugContext(ctx, "hidden")
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	require.Equal(t, "r1", line["request_id"])
	require.Equal(t, "message:1", line["job_id"])
	require.Equal(t, "test", line["component"])
	require.Equal(t, "hello", line["msg"])
	require.NotContains(t, buf.String(), "hidden")
}
