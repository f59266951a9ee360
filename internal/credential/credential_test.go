package credential

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/filestore"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestSniffByContent(t *testing.T) {
	cases := []struct {
		file  string
		media string
		ok    bool
	}{
		{"insurance.pdf", PDF, true},
		{"truncated.pdf", PDF, true}, // the header is intact; the document check finds the cut
		{"license.png", PNG, true},
		{"license.jpg", JPEG, true},
		{"not-a-pdf.pdf", "", false},
	}
	for _, c := range cases {
		media, ok := Sniff(fixture(t, c.file))
		require.Equal(t, c.ok, ok, c.file)
		require.Equal(t, c.media, media, c.file)
	}
	_, ok := Sniff([]byte{0x89, 'P', 'N', 'G'})
	require.False(t, ok, "a partial PNG signature is not a PNG")
}

func TestNamesAndDeclaredTypesMustNotLie(t *testing.T) {
	require.True(t, NameAgrees("scan.PDF", PDF))
	require.True(t, NameAgrees("licence", JPEG), "no extension says nothing")
	require.True(t, NameAgrees(`C:\Users\pat\photo.jpeg`, JPEG))
	require.False(t, NameAgrees("licence.pdf", PNG))
	require.False(t, NameAgrees("licence.exe", PDF))
	require.True(t, DeclaredAgrees("", PNG))
	require.True(t, DeclaredAgrees("application/octet-stream", PNG))
	require.True(t, DeclaredAgrees("image/jpg", JPEG))
	require.False(t, DeclaredAgrees("application/pdf", JPEG))
	require.False(t, DeclaredAgrees("text/html", PDF))
}

func TestNormalizeAndMask(t *testing.T) {
	require.Equal(t, "D12345678", NormalizeNumber(" d123-456 78 "))
	require.Equal(t, "AB12CD", NormalizeNumber("ab.12/cd"))
	require.Equal(t, "••••5678", Mask("D1234-5678"))
	require.Equal(t, "••••45", Mask("12-345"))
	require.Equal(t, "••••", Mask("12-34"))
	require.Equal(t, "••••", Mask("123"))
	require.NotContains(t, Mask("TX 1234 5678"), "1234")
}

func TestNumberFormats(t *testing.T) {
	cases := []struct {
		kind, issuer, number string
		ok                   bool
	}{
		{DriversLicense, "TX", "12345679", true},
		{DriversLicense, "Texas", "1234 5679", true},
		{DriversLicense, "State of Texas", "A1234567", false},
		{DriversLicense, "CA", "D1234567", true},
		{DriversLicense, "ca", "12345678", false},
		{DriversLicense, "FL", "S123-456-78-901-0", true},
		{DriversLicense, "New York", "987654321", true},
		{DriversLicense, "Ontario", "A1234-56789-01234", false}, // no US state: a person looks
		{DriversLicense, "TX", "11111111", false},               // placeholder
		{DriversLicense, "NC", "123456789", false},              // a run
		{TradeLicense, "TDLR", "TACLA00012345C", true},
		{TradeLicense, "TDLR", "HVAC", false},
		{Insurance, "State Farm", "98-7654-321", true},
		{Insurance, "State Farm", "n/a", false},
	}
	for _, c := range cases {
		ok, _, why := plausible(c.kind, c.issuer, NormalizeNumber(c.number))
		require.Equal(t, c.ok, ok, "%s %s %s: %s", c.kind, c.issuer, c.number, why)
		if !ok {
			require.NotEmpty(t, why)
		}
	}
	for state, re := range licenceFormats {
		require.NotNil(t, re, state)
		require.Equal(t, state, State(state))
	}
	require.Len(t, licenceFormats, 51, "50 states and DC")
	require.Equal(t, "DC", State("District of Columbia"))
}

func subject(t *testing.T, data []byte, media string) Subject {
	sum := sha256.Sum256(data)
	return Subject{Kind: Insurance, FileType: media, FileSize: int64(len(data)), FileSHA256: hex.EncodeToString(sum[:]),
		Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
}

func TestDocumentCheck(t *testing.T) {
	d := Document{MaxPixels: 100_000_000, MinSide: 100}
	cases := []struct {
		file    string
		media   string
		outcome Outcome
		reason  string
	}{
		{"insurance.pdf", PDF, Pass, "readable PDF"},
		{"license.png", PNG, Pass, "320×200"},
		{"license.jpg", JPEG, Pass, "JPEG image"},
		{"truncated.pdf", PDF, Fail, "no end-of-file marker"},
		{"tiny.png", PNG, Fail, "too small"},
		{"not-a-pdf.pdf", PDF, Fail, "not a PDF, JPEG or PNG"},
		{"license.png", JPEG, Fail, "a PNG image, not a JPEG image"},
	}
	for _, c := range cases {
		r, err := d.Run(context.Background(), subject(t, fixture(t, c.file), c.media))
		require.NoError(t, err, c.file)
		require.Equal(t, c.outcome, r.Outcome, "%s: %s", c.file, r.Reason)
		require.Contains(t, r.Reason, c.reason, c.file)
	}

	t.Run("damaged image header", func(t *testing.T) {
		b := fixture(t, "license.png")
		b = append(append([]byte{}, b[:12]...), bytes.Repeat([]byte{0}, 40)...)
		r, err := d.Run(context.Background(), subject(t, b, PNG))
		require.NoError(t, err)
		require.Equal(t, Fail, r.Outcome)
		require.Contains(t, r.Reason, "header is damaged")
	})
	t.Run("checksum differs from the upload", func(t *testing.T) {
		s := subject(t, fixture(t, "insurance.pdf"), PDF)
		s.FileSHA256 = hex.EncodeToString(make([]byte, 32))
		r, err := d.Run(context.Background(), s)
		require.NoError(t, err)
		require.Equal(t, Fail, r.Outcome)
		require.Contains(t, r.Reason, "not the one uploaded")
	})
	t.Run("stored file tampered with", func(t *testing.T) {
		dir := t.TempDir()
		store, err := filestore.NewLocal(dir, "credential-test-secret-0123456789abcdef")
		require.NoError(t, err)
		data := fixture(t, "insurance.pdf")
		_, err = filestore.Put(context.Background(), store, "doc", bytes.NewReader(data))
		require.NoError(t, err)
		s := subject(t, data, PDF)
		s.Open = func(ctx context.Context) (io.ReadCloser, error) { return store.Open(ctx, "doc") }
		r, err := d.Run(context.Background(), s)
		require.NoError(t, err)
		require.Equal(t, Pass, r.Outcome, "read back through the store: %s", r.Reason)

		path := filepath.Join(dir, "doc")
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		raw[len(raw)-5] ^= 0xFF
		require.NoError(t, os.WriteFile(path, raw, 0o600))
		r, err = d.Run(context.Background(), s)
		require.NoError(t, err)
		require.Equal(t, Fail, r.Outcome)
		require.Equal(t, "the stored document is corrupt", r.Reason)

		require.NoError(t, store.Delete(context.Background(), "doc"))
		r, err = d.Run(context.Background(), s)
		require.NoError(t, err)
		require.Equal(t, "the document is missing from storage", r.Reason)
	})
	t.Run("storage unavailable is not a verdict", func(t *testing.T) {
		s := subject(t, nil, PDF)
		s.Open = func(context.Context) (io.ReadCloser, error) { return nil, errors.New("disk unavailable") }
		_, err := d.Run(context.Background(), s)
		require.Error(t, err)
	})
}

func TestExpiryCheck(t *testing.T) {
	today := time.Date(2026, 5, 10, 0, 0, 0, 0, time.UTC)
	e := Expiry{ReviewBeyond: 15 * 365 * 24 * time.Hour}
	cases := []struct {
		expires time.Time
		outcome Outcome
		reason  string
	}{
		{today.AddDate(0, 0, -1), Fail, "expired on 2026-05-09"},
		{today, Pass, "expires today"},
		{today.AddDate(0, 0, 1), Pass, "expires tomorrow"},
		{today.AddDate(0, 0, 30), Pass, "valid until 2026-06-09 (30 days from now)"},
		{today.AddDate(40, 0, 0), Review, "implausibly far"},
	}
	for _, c := range cases {
		r, err := e.Run(context.Background(), Subject{ExpiresOn: c.expires, Today: today})
		require.NoError(t, err)
		require.Equal(t, c.outcome, r.Outcome, r.Reason)
		require.Contains(t, r.Reason, c.reason)
	}
}

func TestDuplicatesCheck(t *testing.T) {
	none := func(context.Context, Subject) ([]string, error) { return nil, nil }
	two := func(context.Context, Subject) ([]string, error) { return []string{"pro-2", "pro-3"}, nil }
	r, err := Duplicates{SameNumber: none, SameDocument: none}.Run(context.Background(), Subject{Kind: TradeLicense})
	require.NoError(t, err)
	require.Equal(t, Pass, r.Outcome)
	r, err = Duplicates{SameNumber: two, SameDocument: none}.Run(context.Background(), Subject{Kind: TradeLicense})
	require.NoError(t, err)
	require.Equal(t, Review, r.Outcome)
	require.Contains(t, r.Reason, `trade license number is on a credential of pros "pro-2", "pro-3"`)
	broken := func(context.Context, Subject) ([]string, error) { return nil, errors.New("db down") }
	_, err = Duplicates{SameNumber: none, SameDocument: broken}.Run(context.Background(), Subject{})
	require.Error(t, err)
}

type fixed struct {
	name string
	r    Result
	err  error
}

func (f fixed) Name() string                                 { return f.name }
func (f fixed) Run(context.Context, Subject) (Result, error) { return f.r, f.err }

// A new check is one more element of the list; the verdict takes the
// worst outcome, and every result is kept.
func TestPipelineVerdict(t *testing.T) {
	pass := fixed{"a", Result{Outcome: Pass, Reason: "fine"}, nil}
	review := fixed{"board_lookup", Result{Outcome: Review, Reason: "board has no record"}, nil}
	fail := fixed{"c", Result{Outcome: Fail, Reason: "bad"}, nil}
	cases := []struct {
		p      Pipeline
		status string
	}{
		{Pipeline{pass, pass}, StatusVerified},
		{Pipeline{pass, review}, StatusNeedsReview},
		{Pipeline{review, fail, pass}, StatusRejected},
	}
	for _, c := range cases {
		results, status, err := c.p.Run(context.Background(), Subject{})
		require.NoError(t, err)
		require.Equal(t, c.status, status)
		require.Len(t, results, len(c.p))
		require.Equal(t, c.p[len(c.p)-1].Name(), results[len(results)-1].Check)
	}
	_, _, err := Pipeline{pass, fixed{"x", Result{}, errors.New("timeout")}}.Run(context.Background(), Subject{})
	require.ErrorContains(t, err, "check x: timeout")
}
