package intake

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
)

// keyCacheMax bounds the cache: past it, it starts again empty.
const keyCacheMax = 10_000

// keyCache remembers API keys found live for a moment (Deps.KeyCacheTTL,
// ERRAND_API_KEY_CACHE_TTL), so a busy client's requests do not each
// cost a database round trip. Only keys found live are remembered; the
// presented secret is still compared on every request; unknown and
// revoked keys always go to the database. A key revoked, or a tenant
// cancelled or restored, through this process is forgotten at once;
// through another (or by hand in SQL) the change reaches this process
// within the TTL.
type keyCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedKey
}

type cachedKey struct {
	row   db.APIKeyAuthenticateRow
	until time.Time
}

func newKeyCache(ttl time.Duration) *keyCache {
	if ttl <= 0 {
		return nil
	}
	return &keyCache{ttl: ttl, m: map[string]cachedKey{}}
}

// get returns the remembered row of prefix, if it is still fresh at now.
func (c *keyCache) get(prefix string, now time.Time) (db.APIKeyAuthenticateRow, bool) {
	if c == nil {
		return db.APIKeyAuthenticateRow{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.m[prefix]
	if !ok || !now.Before(k.until) {
		delete(c.m, prefix)
		return db.APIKeyAuthenticateRow{}, false
	}
	return k.row, true
}

// put remembers a live key's row, read at now.
func (c *keyCache) put(prefix string, row db.APIKeyAuthenticateRow, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= keyCacheMax {
		clear(c.m)
	}
	c.m[prefix] = cachedKey{row: row, until: now.Add(c.ttl)}
}

// forget drops prefix (its key was just revoked).
func (c *keyCache) forget(prefix string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, prefix)
}

// forgetTenant drops every key of tenant (it was just cancelled or
// restored: the remembered status is stale).
func (c *keyCache) forgetTenant(tenant uuid.UUID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for prefix, k := range c.m {
		if k.row.TenantID == tenant {
			delete(c.m, prefix)
		}
	}
}
