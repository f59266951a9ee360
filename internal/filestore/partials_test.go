package filestore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A writer that died (never committed nor aborted) leaves a hidden partial
// file; the sweep removes it once old enough, and nothing else.
func TestStalePartialsAreRemoved(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	ctx := context.Background()
	w, err := s.Create(ctx, "tenants/t1/exports/e1-1.zip")
	require.NoError(t, err)
	_, err = w.Write([]byte(strings.Repeat("personal data ", 10000)))
	require.NoError(t, err)
	// ...and its process is killed: no Commit, no Abort.
	done, err := s.Create(ctx, "tenants/t1/exports/e2-1.zip")
	require.NoError(t, err)
	_, err = done.Write([]byte("complete"))
	require.NoError(t, err)
	_, err = done.Commit()
	require.NoError(t, err)

	partials := func() []string {
		m, err := filepath.Glob(filepath.Join(dir, "tenants", "t1", "exports", ".*partial*"))
		require.NoError(t, err)
		return m
	}
	require.Len(t, partials(), 1)
	n, err := s.RemoveStalePartials(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, n, "a recent partial may still be written to")

	n, err = s.RemoveStalePartials(ctx, time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Empty(t, partials())
	_, err = os.Stat(filepath.Join(dir, "tenants", "t1", "exports", "e2-1.zip"))
	require.NoError(t, err, "committed files stay")
}
