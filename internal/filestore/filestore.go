// Package filestore keeps the files Errand holds for tenants (uploaded
// imports, credential documents, export archives) privately and encrypted
// at rest. Files are streamed in and out, never held in memory, and appear
// under their key only once completely written, so a crash never leaves a
// truncated file where a reader could find it. Nothing here serves files
// over HTTP; callers decide who may read what.
//
// The local implementation encrypts with AES-256-GCM in 64 KiB chunks (the
// STREAM construction): each file has its own key derived from the master
// key and a random salt; each chunk is sealed with its index and a "last
// chunk" flag, so reordering, truncation and tampering are all detected.
package filestore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Store holds files by key.
type Store interface {
	// Create starts writing key. Nothing is visible under key until
	// Commit; Abort (or a crash) leaves nothing behind.
	Create(ctx context.Context, key string) (Writer, error)
	// Open streams key's plaintext. Reading reports ErrCorrupt if the file
	// was altered or cut short.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Exists reports whether key holds a committed file.
	Exists(ctx context.Context, key string) (bool, error)
}

// Writer receives a file's plaintext.
type Writer interface {
	io.Writer
	// Commit makes the file visible under its key and reports its
	// plaintext size and SHA-256.
	Commit() (Info, error)
	// Abort discards what was written. Calling it after Commit does nothing.
	Abort() error
}

// Info describes a stored file's plaintext.
type Info struct {
	Size   int64
	SHA256 string // hex
}

// Errors.
var (
	ErrNotFound   = errors.New("file not found")
	ErrCorrupt    = errors.New("stored file is corrupt or was tampered with")
	ErrInvalidKey = errors.New("invalid file key")
)

// Put stores everything r yields under key.
func Put(ctx context.Context, s Store, key string, r io.Reader) (Info, error) {
	w, err := s.Create(ctx, key)
	if err != nil {
		return Info{}, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort() //nolint:errcheck
		return Info{}, err
	}
	return w.Commit()
}

const (
	magic     = "ERRANDF1"
	saltSize  = 32
	chunkSize = 64 << 10
	tagSize   = 16
)

// keyRe allows keys like "tenants/<id>/imports/<id>.csv".
var keyRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)

// Local stores files under a directory on local disk.
type Local struct {
	dir    string
	master []byte
}

// NewLocal returns a store rooted at dir, encrypting with a key derived
// from secret (ERRAND_SECRET_KEY). The directory is created private.
func NewLocal(dir, secret string) (*Local, error) {
	if len(secret) < 32 {
		return nil, errors.New("filestore: the secret key must be at least 32 characters")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("errand filestore v1"))
	return &Local{dir: dir, master: m.Sum(nil)}, nil
}

func (l *Local) path(key string) (string, error) {
	if len(key) > 512 || !keyRe.MatchString(key) || strings.Contains(key, "..") {
		return "", ErrInvalidKey
	}
	return filepath.Join(l.dir, filepath.FromSlash(key)), nil
}

func (l *Local) fileKey(salt []byte) cipher.AEAD {
	m := hmac.New(sha256.New, l.master)
	m.Write(salt)
	block, _ := aes.NewCipher(m.Sum(nil)) // 32-byte key: cannot fail
	aead, _ := cipher.NewGCM(block)
	return aead
}

// Create implements Store.
func (l *Local) Create(_ context.Context, key string) (Writer, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".partial-*")
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	salt := make([]byte, saltSize)
	rand.Read(salt) //nolint:errcheck
	if _, err := tmp.Write(append([]byte(magic), salt...)); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("filestore: %w", err)
	}
	return &localWriter{final: p, tmp: tmp, aead: l.fileKey(salt), sum: sha256.New(), buf: make([]byte, 0, chunkSize)}, nil
}

type localWriter struct {
	final string
	tmp   *os.File
	aead  cipher.AEAD
	sum   hash.Hash
	buf   []byte
	index uint64
	size  int64
	done  bool
	err   error
}

func (w *localWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("filestore: write after commit or abort")
	}
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	w.sum.Write(p)
	w.size += int64(n)
	for len(p) > 0 {
		room := chunkSize - len(w.buf)
		take := min(room, len(p))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		if len(w.buf) == chunkSize && len(p) > 0 {
			// A full chunk is sealed only once more data follows, so the
			// last chunk is always known when it is sealed.
			if w.err = w.seal(false); w.err != nil {
				return 0, w.err
			}
		}
	}
	// A full buffer waits for the next Write or Commit to say whether it
	// is the last chunk.
	return n, nil
}

func (w *localWriter) seal(last bool) error {
	nonce := chunkNonce(w.index, last)
	out := w.aead.Seal(nil, nonce, w.buf, nil)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(out)))
	if _, err := w.tmp.Write(hdr[:]); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if _, err := w.tmp.Write(out); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	w.index++
	w.buf = w.buf[:0]
	return nil
}

// chunkNonce is the chunk's index and whether it is the last one.
func chunkNonce(index uint64, last bool) []byte {
	nonce := make([]byte, 12)
	binary.BigEndian.PutUint64(nonce[3:11], index)
	if last {
		nonce[11] = 1
	}
	return nonce
}

func (w *localWriter) Commit() (Info, error) {
	if w.done {
		return Info{}, errors.New("filestore: already committed or aborted")
	}
	if w.err != nil {
		w.Abort() //nolint:errcheck
		return Info{}, w.err
	}
	if err := w.seal(true); err != nil {
		w.Abort() //nolint:errcheck
		return Info{}, err
	}
	if err := w.tmp.Sync(); err != nil {
		w.Abort() //nolint:errcheck
		return Info{}, fmt.Errorf("filestore: %w", err)
	}
	if err := w.tmp.Close(); err != nil {
		w.Abort() //nolint:errcheck
		return Info{}, fmt.Errorf("filestore: %w", err)
	}
	if err := os.Rename(w.tmp.Name(), w.final); err != nil {
		os.Remove(w.tmp.Name())
		w.done = true
		return Info{}, fmt.Errorf("filestore: %w", err)
	}
	w.done = true
	return Info{Size: w.size, SHA256: hex.EncodeToString(w.sum.Sum(nil))}, nil
}

func (w *localWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.tmp.Close()
	if err := os.Remove(w.tmp.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("filestore: %w", err)
	}
	return nil
}

// Open implements Store.
func (l *Local) Open(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	head := make([]byte, len(magic)+saltSize)
	if _, err := io.ReadFull(f, head); err != nil || string(head[:len(magic)]) != magic {
		f.Close()
		return nil, ErrCorrupt
	}
	return &localReader{f: f, aead: l.fileKey(head[len(magic):])}, nil
}

type localReader struct {
	f     *os.File
	aead  cipher.AEAD
	buf   []byte // reused for each chunk's plaintext
	plain []byte
	index uint64
	last  bool
	err   error
}

func (r *localReader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.last {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

func (r *localReader) next() error {
	var hdr [4]byte
	if _, err := io.ReadFull(r.f, hdr[:]); err != nil {
		return ErrCorrupt // cut short before the last chunk
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < tagSize || n > chunkSize+tagSize {
		return ErrCorrupt
	}
	sealed := make([]byte, n)
	if _, err := io.ReadFull(r.f, sealed); err != nil {
		return ErrCorrupt
	}
	// Try "more follows" first; the last chunk opens only with its flag.
	// (Not in place: a failed Open wipes its output buffer.)
	plain, err := r.aead.Open(r.buf[:0], chunkNonce(r.index, false), sealed, nil)
	if err != nil {
		plain, err = r.aead.Open(r.buf[:0], chunkNonce(r.index, true), sealed, nil)
		if err != nil {
			return ErrCorrupt
		}
		r.last = true
		var extra [1]byte
		if m, _ := r.f.Read(extra[:]); m > 0 {
			return ErrCorrupt // data after the last chunk
		}
	}
	r.index++
	r.plain, r.buf = plain, plain
	return nil
}

func (r *localReader) Close() error { return r.f.Close() }

// Delete implements Store.
func (l *Local) Delete(_ context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("filestore: %w", err)
	}
	return nil
}

// DeletePrefixStep is one bounded, resumable step of deleting a folder
// (prefix, such as "tenants/<id>/") with an exact count of what it held.
// Files are taken in walk order (KeyLess). It removes the files at or
// before done that are still there — the ones an earlier step returned —
// and returns, without removing them, up to limit files after done. The
// caller counts those and records the last as its new done in one
// transaction; the next step removes them. When a step returns nothing,
// every file is gone, and so is the folder.
//
// So a crash never loses or doubles a count: a file is counted once, when
// done passes it (committed with the count), and removed after that.
// Partial files of unfinished writes are files like any other here.
func (l *Local) DeletePrefixStep(ctx context.Context, prefix, done string, limit int) ([]string, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	p, err := l.path(prefix)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	var next []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(l.dir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if done != "" && !KeyLess(done, key) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		next = append(next, key)
		if len(next) == limit {
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("filestore: delete %s: %w", prefix, err)
	}
	if len(next) == 0 {
		if err := os.RemoveAll(p); err != nil {
			return nil, fmt.Errorf("filestore: delete %s: %w", prefix, err)
		}
	}
	return next, nil
}

// KeyLess orders keys as a walk of the store meets them: by path element,
// each compared byte by byte ("a/b" before "a.txt", as the folder "a"
// comes before the file "a.txt").
func KeyLess(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

// Exists implements Store.
func (l *Local) Exists(_ context.Context, key string) (bool, error) {
	p, err := l.path(key)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// RemoveStalePartials deletes the hidden partial files of writes whose
// writer died before it could commit or abort (a killed worker), last
// written before olderThan, and reports how many it removed. They are
// never visible under a key, but they hold data that must not outlive its
// retention.
func (l *Local) RemoveStalePartials(ctx context.Context, olderThan time.Time) (int, error) {
	n := 0
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), ".") || !strings.Contains(d.Name(), ".partial-") {
			return nil
		}
		info, err := d.Info()
		if err != nil || !info.ModTime().Before(olderThan) {
			return nil
		}
		if err := os.Remove(p); err == nil {
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("filestore: sweep partial files: %w", err)
	}
	return n, nil
}
