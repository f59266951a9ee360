package intake

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fault"
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

// list answers one page of one of the tenant's lists: it reads ?limit=
// and ?cursor= (a list that starts at first), reads the rows with read in
// the tenant's transaction, and answers {"<name>": [view(row), ...],
// "next_cursor": ...}. at is a row's position (see page).
func list[R, V any](s *Server, w http.ResponseWriter, r *http.Request, name string, first page,
	read func(ctx context.Context, q *db.Queries, tenant uuid.UUID, pg page) ([]R, error),
	at func(R) (time.Time, uuid.UUID), view func(R) V) error {
	problems := map[string]string{}
	pg := readPage(r, first, problems)
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	p := tenantOf(r.Context())
	var rows []R
	err := s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) (err error) {
		rows, err = read(r.Context(), q, p.TenantID, pg)
		return err
	})
	if err != nil {
		return err
	}
	rows, next := cut(pg, rows, at)
	out := make([]V, len(rows))
	for i, row := range rows {
		out[i] = view(row)
	}
	encode(w, http.StatusOK, map[string]any{name: out, "next_cursor": next})
	return nil
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
