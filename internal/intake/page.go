package intake

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// A page is where a list request starts and how much it reads. The
// cursor is the position of the last item of the previous page — its
// (created_at, id) for lists newest first, its id for lists in ID order —
// opaque to callers, so items created in the same instant are neither
// skipped nor repeated. One limit rule and one cursor for every list.
type page struct {
	At    time.Time // position of the last item already seen
	ID    uuid.UUID
	Limit int32
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// newestFirst starts a list ordered by (created_at, id) descending:
// every row sorts before it. inIDOrder starts a list by id ascending.
var (
	newestFirst = page{At: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), ID: uuid.MustParse("ffffffff-ffff-ffff-ffff-ffffffffffff")}
	inIDOrder   = page{}
)

// readPage reads ?limit= and ?cursor= for a list that starts at first,
// naming a bad one in problems.
func readPage(r *http.Request, first page, problems map[string]string) page {
	p := first
	p.Limit = defaultPageSize
	qv := r.URL.Query()
	if v := qv.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			problems["limit"] = "must be a whole number from 1 to " + strconv.Itoa(maxPageSize)
		} else {
			p.Limit = int32(n)
		}
	}
	if v := qv.Get("cursor"); v != "" {
		at, id, ok := parseCursor(v)
		if !ok {
			problems["cursor"] = "is not a cursor this API returned; pass next_cursor from the previous page"
		} else {
			p.At, p.ID = at, id
		}
	}
	return p
}

// fetch is how many rows to read for the page: one more than it holds,
// which says whether another page follows.
func (p page) fetch() int32 { return p.Limit + 1 }

// cut trims rows read with fetch to the page and returns the cursor of the
// next page, or nil on the last one. at gives a row's (created_at, id).
func cut[T any](p page, rows []T, at func(T) (time.Time, uuid.UUID)) ([]T, *string) {
	if len(rows) <= int(p.Limit) {
		return rows, nil
	}
	rows = rows[:p.Limit]
	t, id := at(rows[len(rows)-1])
	c := base64.RawURLEncoding.EncodeToString([]byte(t.UTC().Format(time.RFC3339Nano) + "|" + id.String()))
	return rows, &c
}

func parseCursor(v string) (time.Time, uuid.UUID, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return time.Time{}, uuid.UUID{}, false
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return time.Time{}, uuid.UUID{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}, uuid.UUID{}, false
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return time.Time{}, uuid.UUID{}, false
	}
	return t, u, true
}
