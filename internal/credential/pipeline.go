package credential

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
)

// Outcome is what one check concluded.
type Outcome string

// Outcomes, from best to worst. A credential is verified when every check
// passes, waits for a person when one asks for review, and is rejected
// when one fails.
const (
	Pass   Outcome = "pass"
	Review Outcome = "review"
	Fail   Outcome = "fail"
)

// Result is one check's finding, recorded on the credential as it is.
type Result struct {
	Check   string  `json:"check"`
	Outcome Outcome `json:"outcome"`
	Reason  string  `json:"reason"`
}

// Subject is the credential under check.
type Subject struct {
	ID         uuid.UUID
	TenantID   uuid.UUID
	ProID      uuid.UUID
	Kind       string
	Number     string
	NumberNorm string
	Issuer     string
	ExpiresOn  time.Time // a date (midnight UTC)
	Today      time.Time // the date in the tenant's time zone (midnight UTC)
	FileType   string
	FileSize   int64
	FileSHA256 string
	// Open streams the stored document's plaintext.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// A Check looks at one aspect of a credential. It returns its finding; an
// error means it could not look (a store or a service was unavailable) and
// the whole pipeline is tried again later.
type Check interface {
	Name() string
	Run(ctx context.Context, s Subject) (Result, error)
}

// Pipeline runs its checks in order. Every check runs, so a reviewer sees
// every problem at once, not just the first.
type Pipeline []Check

// Run returns each check's result and the verdict: a credential status.
func (p Pipeline) Run(ctx context.Context, s Subject) ([]Result, string, error) {
	results := make([]Result, 0, len(p))
	for _, c := range p {
		r, err := c.Run(ctx, s)
		if err != nil {
			return nil, "", fmt.Errorf("check %s: %w", c.Name(), err)
		}
		r.Check = c.Name()
		results = append(results, r)
	}
	return results, Verdict(results), nil
}

// Verdict is the status a list of results earns.
func Verdict(results []Result) string {
	status := StatusVerified
	for _, r := range results {
		switch r.Outcome {
		case Fail:
			return StatusRejected
		case Review:
			status = StatusNeedsReview
		}
	}
	return status
}

// DefaultPipeline is the list every upload goes through. sameNumber and
// sameDocument look up the tenant's other professionals (see Duplicates).
func DefaultPipeline(sameNumber, sameDocument Lookup) Pipeline {
	return Pipeline{
		Document{MaxPixels: 100_000_000, MinSide: 100},
		Expiry{ReviewBeyond: 15 * 365 * 24 * time.Hour},
		NumberFormat{},
		Duplicates{SameNumber: sameNumber, SameDocument: sameDocument},
	}
}
