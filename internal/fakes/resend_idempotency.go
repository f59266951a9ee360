package fakes

import (
	"crypto/sha256"
	"time"
)

// idempotencyTTL is how long Resend remembers an idempotency key.
const idempotencyTTL = 24 * time.Hour

// maxIdempotencyKey is the longest key Resend accepts.
const maxIdempotencyKey = 256

type idempotentRequest struct {
	payload [sha256.Size]byte
	started time.Time
	id      string // "" while the first request is in progress
}

type idempotencyOutcome int

const (
	idempotencyNew        idempotencyOutcome = iota // go ahead, then complete or abort
	idempotencyReplay                               // answer with the stored id
	idempotencyInProgress                           // 409 concurrent_idempotent_requests
	idempotencyMismatch                             // 409 invalid_idempotent_request
)

// beginIdempotent claims key for a request with this payload.
func (f *Resend) beginIdempotent(key string, payload []byte) (idempotencyOutcome, string) {
	sum := sha256.Sum256(payload)
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if prev, ok := f.keys[key]; ok && now.Sub(prev.started) < idempotencyTTL {
		switch {
		case prev.payload != sum:
			return idempotencyMismatch, ""
		case prev.id == "":
			return idempotencyInProgress, ""
		default:
			return idempotencyReplay, prev.id
		}
	}
	f.keys[key] = &idempotentRequest{payload: sum, started: now}
	return idempotencyNew, ""
}

// completeIdempotent stores the id later requests with key get.
func (f *Resend) completeIdempotent(key, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.keys[key]; ok {
		r.id = id
	}
}

// abortIdempotent releases key after a request that sent nothing, so a
// retry can proceed.
func (f *Resend) abortIdempotent(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.keys[key]; ok && r.id == "" {
		delete(f.keys, key)
	}
}
