package credential

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // registers the JPEG decoder for DecodeConfig
	_ "image/png"  // registers the PNG decoder for DecodeConfig
	"io"
	"strings"
	"time"

	"github.com/errandhq/errand/internal/filestore"
)

// Document checks that the stored file is the one uploaded (size and
// SHA-256), is of an accepted type by its content, and is readable: a PDF
// has its header and an end-of-file marker (a cut-off upload has none),
// an image's header decodes to sane dimensions. Images are not decoded in
// full, so a decompression bomb costs nothing.
type Document struct {
	MaxPixels int64
	MinSide   int
}

// Name implements Check.
func (Document) Name() string { return "document" }

// Run implements Check.
func (d Document) Run(ctx context.Context, s Subject) (Result, error) {
	f, err := s.Open(ctx)
	switch {
	case errors.Is(err, filestore.ErrNotFound):
		return Result{Outcome: Fail, Reason: "the document is missing from storage"}, nil
	case errors.Is(err, filestore.ErrCorrupt):
		return Result{Outcome: Fail, Reason: "the stored document is corrupt"}, nil
	case err != nil:
		return Result{}, err
	}
	defer f.Close()
	sum := sha256.New()
	tail := &tailBuffer{max: 1024}
	counted := &countWriter{}
	br := bufio.NewReaderSize(io.TeeReader(f, io.MultiWriter(sum, tail, counted)), 64<<10)
	res, err := d.inspect(br, s)
	if err == nil {
		_, err = io.Copy(io.Discard, br)
	}
	switch {
	case errors.Is(err, filestore.ErrCorrupt):
		return Result{Outcome: Fail, Reason: "the stored document is corrupt"}, nil
	case err != nil:
		return Result{}, err
	}
	if counted.n != s.FileSize || hex.EncodeToString(sum.Sum(nil)) != s.FileSHA256 {
		return Result{Outcome: Fail, Reason: "the stored document is not the one uploaded (size or checksum differ)"}, nil
	}
	if res.Outcome == "" && s.FileType == PDF {
		res = pdfEnd(tail.bytes())
	}
	if res.Outcome == "" {
		res = Result{Outcome: Pass, Reason: "readable " + strings.TrimPrefix(Describe(s.FileType), "a ")}
	}
	return res, nil
}

// inspect looks at the head of the document; an empty Outcome means
// nothing is wrong so far.
func (d Document) inspect(br *bufio.Reader, s Subject) (Result, error) {
	head, err := br.Peek(SniffLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return Result{}, err
	}
	media, ok := Sniff(head)
	if !ok {
		return Result{Outcome: Fail, Reason: "the document is not a PDF, JPEG or PNG"}, nil
	}
	if media != s.FileType {
		return Result{Outcome: Fail, Reason: fmt.Sprintf("the document is %s, not %s as recorded", Describe(media), Describe(s.FileType))}, nil
	}
	switch media {
	case PDF:
		h, err := br.Peek(8)
		if err != nil && !errors.Is(err, io.EOF) {
			return Result{}, err
		}
		if !bytes.HasPrefix(h, []byte("%PDF-1.")) && !bytes.HasPrefix(h, []byte("%PDF-2.")) {
			return Result{Outcome: Fail, Reason: "the PDF header names no PDF version"}, nil
		}
	case JPEG, PNG:
		cfg, _, err := image.DecodeConfig(br)
		if errors.Is(err, filestore.ErrCorrupt) {
			return Result{}, err
		}
		if err != nil {
			return Result{Outcome: Fail, Reason: "the image cannot be read: its header is damaged"}, nil
		}
		if cfg.Width < d.MinSide || cfg.Height < d.MinSide {
			return Result{Outcome: Fail, Reason: fmt.Sprintf("the image is too small to read (%d×%d pixels)", cfg.Width, cfg.Height)}, nil
		}
		if int64(cfg.Width)*int64(cfg.Height) > d.MaxPixels {
			return Result{Outcome: Fail, Reason: fmt.Sprintf("the image is implausibly large (%d×%d pixels)", cfg.Width, cfg.Height)}, nil
		}
		return Result{Outcome: Pass, Reason: fmt.Sprintf("readable %s image, %d×%d pixels", strings.ToUpper(strings.TrimPrefix(media, "image/")), cfg.Width, cfg.Height)}, nil
	}
	return Result{}, nil
}

// pdfEnd checks the end-of-file marker a complete PDF ends with (within
// its last kilobyte, where the format allows trailing bytes).
func pdfEnd(tail []byte) Result {
	if !bytes.Contains(tail, []byte("%%EOF")) {
		return Result{Outcome: Fail, Reason: "the PDF is incomplete: it has no end-of-file marker"}
	}
	return Result{Outcome: Pass, Reason: "readable PDF"}
}

// Expiry checks the expiry date is still ahead, and says how far.
type Expiry struct {
	// ReviewBeyond asks a person about dates further away than this (a
	// typo such as 2062 for 2026).
	ReviewBeyond time.Duration
}

// Name implements Check.
func (Expiry) Name() string { return "expiry" }

// Run implements Check.
func (e Expiry) Run(_ context.Context, s Subject) (Result, error) {
	date := s.ExpiresOn.Format(time.DateOnly)
	days := int(s.ExpiresOn.Sub(s.Today).Hours() / 24)
	switch {
	case days < 0:
		return Result{Outcome: Fail, Reason: "expired on " + date}, nil
	case days == 0:
		return Result{Outcome: Pass, Reason: "expires today (" + date + ")"}, nil
	case e.ReviewBeyond > 0 && s.ExpiresOn.Sub(s.Today) > e.ReviewBeyond:
		return Result{Outcome: Review, Reason: fmt.Sprintf("expires on %s, implausibly far ahead (%d days)", date, days)}, nil
	case days == 1:
		return Result{Outcome: Pass, Reason: "expires tomorrow (" + date + ")"}, nil
	}
	return Result{Outcome: Pass, Reason: fmt.Sprintf("valid until %s (%d days from now)", date, days)}, nil
}

// NumberFormat checks the number could be real for its kind and issuer.
type NumberFormat struct{}

// Name implements Check.
func (NumberFormat) Name() string { return "number_format" }

// Run implements Check.
func (NumberFormat) Run(_ context.Context, s Subject) (Result, error) {
	ok, specific, why := plausible(s.Kind, s.Issuer, s.NumberNorm)
	if !ok {
		return Result{Outcome: Review, Reason: why}, nil
	}
	if specific {
		return Result{Outcome: Pass, Reason: "the number matches the format of " + State(s.Issuer) + " driver's licenses"}, nil
	}
	return Result{Outcome: Pass, Reason: "the number has a plausible shape for a " + Label(s.Kind)}, nil
}

// Lookup names the tenant's other professionals sharing something with the
// credential (its number, its document).
type Lookup func(ctx context.Context, s Subject) ([]string, error)

// Duplicates asks a person to look when another professional of the same
// tenant holds a credential with the same number, or uploaded the very
// same file: possible fraud, or a mix-up.
type Duplicates struct {
	SameNumber   Lookup
	SameDocument Lookup
}

// Name implements Check.
func (Duplicates) Name() string { return "duplicates" }

// Run implements Check.
func (d Duplicates) Run(ctx context.Context, s Subject) (Result, error) {
	var found []string
	if d.SameNumber != nil {
		pros, err := d.SameNumber(ctx, s)
		if err != nil {
			return Result{}, err
		}
		if len(pros) > 0 {
			found = append(found, "the same "+Label(s.Kind)+" number is on a credential of "+names(pros))
		}
	}
	if d.SameDocument != nil {
		pros, err := d.SameDocument(ctx, s)
		if err != nil {
			return Result{}, err
		}
		if len(pros) > 0 {
			found = append(found, "the very same document was uploaded for "+names(pros))
		}
	}
	if len(found) > 0 {
		return Result{Outcome: Review, Reason: strings.Join(found, "; ") + " (possible fraud)"}, nil
	}
	return Result{Outcome: Pass, Reason: "no other professional of this business uses this number or document"}, nil
}

func names(pros []string) string {
	quoted := make([]string, len(pros))
	for i, p := range pros {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	if len(pros) == 1 {
		return "pro " + quoted[0]
	}
	return "pros " + strings.Join(quoted, ", ")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return n, nil
}

func (t *tailBuffer) bytes() []byte { return t.buf }

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
