package filestore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/filestore"
)

const secret = "0123456789abcdef0123456789abcdef-test"

func newStore(t *testing.T) (*filestore.Local, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := filestore.NewLocal(dir, secret)
	require.NoError(t, err)
	return s, dir
}

func TestRoundTripAtEverySize(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for _, n := range []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 3 * 64 << 10, 1<<20 + 17} {
		data := make([]byte, n)
		rand.Read(data)
		key := "tenants/t1/files/" + hex.EncodeToString([]byte{byte(n), byte(n >> 8), byte(n >> 16)})
		info, err := filestore.Put(ctx, s, key, bytes.NewReader(data))
		require.NoError(t, err)
		sum := sha256.Sum256(data)
		require.Equal(t, int64(n), info.Size)
		require.Equal(t, hex.EncodeToString(sum[:]), info.SHA256)
		r, err := s.Open(ctx, key)
		require.NoError(t, err)
		got, err := io.ReadAll(r)
		require.NoError(t, err, "size %d", n)
		require.NoError(t, r.Close())
		require.True(t, bytes.Equal(data, got), "size %d", n)
	}
}

func TestEncryptedAtRest(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	plain := bytes.Repeat([]byte("Pat Doe, +13125550142, 12 Elm St\n"), 5000)
	_, err := filestore.Put(context.Background(), s, "a/doc.csv", bytes.NewReader(plain))
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(dir, "a", "doc.csv"))
	require.NoError(t, err)
	require.NotContains(t, string(raw), "Pat Doe")
	require.NotContains(t, string(raw), "3125550142")
	st, err := os.Stat(filepath.Join(dir, "a", "doc.csv"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "private to the service user")
}

func readAll(t *testing.T, s filestore.Store, key string) error {
	r, err := s.Open(context.Background(), key)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.ReadAll(r)
	return err
}

func TestTamperingTruncationAndWrongKeyAreDetected(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	ctx := context.Background()
	data := make([]byte, 200<<10)
	rand.Read(data)
	_, err := filestore.Put(ctx, s, "f", bytes.NewReader(data))
	require.NoError(t, err)
	path := filepath.Join(dir, "f")
	orig, _ := os.ReadFile(path)

	flipped := bytes.Clone(orig)
	flipped[len(orig)/2] ^= 1
	require.NoError(t, os.WriteFile(path, flipped, 0o600))
	require.ErrorIs(t, readAll(t, s, "f"), filestore.ErrCorrupt)

	// Cut at a chunk boundary: every remaining chunk is intact, but the last is missing.
	cut := 8 + 32 + 4 + 64<<10 + 16
	require.NoError(t, os.WriteFile(path, orig[:cut], 0o600))
	require.ErrorIs(t, readAll(t, s, "f"), filestore.ErrCorrupt)

	require.NoError(t, os.WriteFile(path, append(bytes.Clone(orig), 'x'), 0o600))
	require.ErrorIs(t, readAll(t, s, "f"), filestore.ErrCorrupt)

	require.NoError(t, os.WriteFile(path, orig, 0o600))
	require.NoError(t, readAll(t, s, "f"))
	other, err := filestore.NewLocal(dir, "another-secret-key-of-32-characters!!")
	require.NoError(t, err)
	require.ErrorIs(t, readAll(t, other, "f"), filestore.ErrCorrupt)
}

func TestNothingVisibleUntilCommit(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	ctx := context.Background()
	w, err := s.Create(ctx, "exports/x.zip")
	require.NoError(t, err)
	_, err = w.Write(make([]byte, 100<<10))
	require.NoError(t, err)
	ok, err := s.Exists(ctx, "exports/x.zip")
	require.NoError(t, err)
	require.False(t, ok, "a file being written is not visible")
	require.NoError(t, w.Abort())
	entries, err := os.ReadDir(filepath.Join(dir, "exports"))
	require.NoError(t, err)
	require.Empty(t, entries, "abort leaves nothing behind")

	w, err = s.Create(ctx, "exports/x.zip")
	require.NoError(t, err)
	_, err = w.Write([]byte("done"))
	require.NoError(t, err)
	_, err = w.Commit()
	require.NoError(t, err)
	ok, _ = s.Exists(ctx, "exports/x.zip")
	require.True(t, ok)
	require.NoError(t, w.Abort(), "abort after commit is harmless")
	require.NoError(t, s.Delete(ctx, "exports/x.zip"))
	require.NoError(t, s.Delete(ctx, "exports/x.zip"), "deleting twice is fine")
	_, err = s.Open(ctx, "exports/x.zip")
	require.ErrorIs(t, err, filestore.ErrNotFound)
}

func TestKeysCannotEscapeTheStore(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	for _, k := range []string{"", "../etc/passwd", "/abs", "a/../../b", "a//b", ".hidden", "a/", "a b"} {
		_, err := s.Create(context.Background(), k)
		require.ErrorIs(t, err, filestore.ErrInvalidKey, k)
	}
}

func TestShortSecretRefused(t *testing.T) {
	t.Parallel()
	_, err := filestore.NewLocal(t.TempDir(), "short")
	require.Error(t, err)
}

// Deleting a folder step by step, with the caller's count and position
// committed (or lost, as in a crash) after each step: every file is
// counted exactly once, all are removed (partial files included), the
// folder goes, and nothing outside it is touched.
func TestDeletePrefixStepCountsEachFileOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, dir := newStore(t)
	put := func(key string) {
		_, err := filestore.Put(ctx, s, key, bytes.NewReader([]byte("data of "+key)))
		require.NoError(t, err)
	}
	keys := []string{"tenants/t1/a.txt", "tenants/t1/a/b.csv", "tenants/t1/a/c/d.zip", "tenants/t1/exports/e-1.zip",
		"tenants/t1/exports/e-2.zip", "tenants/t1/imports/i.csv", "tenants/t1/credentials/x", "tenants/t1/z"}
	for _, k := range keys {
		put(k)
	}
	w, err := s.Create(ctx, "tenants/t1/exports/e-3.zip") // a write that never finished
	require.NoError(t, err)
	_, err = w.Write([]byte("half"))
	require.NoError(t, err)
	put("tenants/t2/keep.csv")
	put("tenants/t10/keep.csv")

	done, counted := "", 0
	for step := 0; ; step++ {
		require.Less(t, step, 100, "the steps end")
		next, err := s.DeletePrefixStep(ctx, "tenants/t1/", done, 3)
		require.NoError(t, err)
		require.LessOrEqual(t, len(next), 3, "bounded")
		if len(next) == 0 {
			break
		}
		for i := range next {
			require.True(t, done == "" || filestore.KeyLess(done, next[i]), "after the position: %s", next[i])
			if i > 0 {
				require.True(t, filestore.KeyLess(next[i-1], next[i]), "in walk order")
			}
		}
		if step%3 == 1 {
			continue // the transaction with this count was lost: nothing recorded
		}
		counted += len(next)
		done = next[len(next)-1]
	}
	require.Equal(t, len(keys)+1, counted, "every file once, the partial one included")
	_, err = os.Stat(filepath.Join(dir, "tenants", "t1"))
	require.ErrorIs(t, err, os.ErrNotExist, "the folder is gone")
	for _, k := range []string{"tenants/t2/keep.csv", "tenants/t10/keep.csv"} {
		ok, err := s.Exists(ctx, k)
		require.NoError(t, err)
		require.True(t, ok, k)
	}
	require.True(t, filestore.KeyLess("a/b", "a.txt"))
	require.True(t, filestore.KeyLess("a.txt", "b/c"))
	require.False(t, filestore.KeyLess("a/b", "a/b"))
}
