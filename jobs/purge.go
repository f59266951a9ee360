package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/normalize"
)

// What a deletion removes, as data: one step per table (or file prefix),
// in an order the foreign keys accept. Adding a table to the purge is one
// line in TenantPurgeTables (and, if it holds a person's data, one step in
// contactErasureSteps); files under tenants/<tenant>/ go with the tenant
// whatever folder they are in.
//
// Every step runs in bounded batches (batchArgs.limit rows per short
// transaction) and is idempotent: a batch only touches rows still to do,
// so re-running a step after a crash, or twice, changes nothing more.

// TenantPurgeTables are the tenant-scoped tables the purge empties, in
// order (children before parents). Kept on purpose, with their retention
// policy deciding their end:
//   - messages: the message log. Its metadata (status, channel, times,
//     provider ID) stays 3 years for TCPA; its bodies, subjects, addresses
//     and links to the person go now (the "messages" step below).
//   - suppressions, suppression_events: opt-out records, pseudonymous
//     (keyed hashes), 3 years.
//   - billing_records: 7 years. security_events: 1 year.
//   - deletions (the certificates), legal_holds, retention_policies, and
//     the tenant row itself, without its name and owner email.
//   - api_keys: hashes only; they can reach nothing but the deletion's
//     certificate and (empty) exports once the tenant is purged.
//
// Imports' uploads live under tenants/<id>/imports/ and go with the
// tenant's prefix.
var TenantPurgeTables = []string{
	"import_errors",
	"import_seen",
	"import_rows",
	"imports",
	"credential_expiry_notices",
	"credential_reviews",
	"credentials",
	"pros",
	"verifications",
	"appointments",
	"location_templates",
	"locations",
	"message_batches",
	"exports",
	"privacy_request_events",
	"privacy_requests",
	"privacy_settings",
	"contacts",
}

// TenantFilePrefix is where a tenant's files live in the file store
// (credentials, exports, imports).
const TenantFilePrefix = "tenants/%s/"

// prefixDeleter is a file store that can remove a folder a bounded,
// counted step at a time (filestore.Local.DeletePrefixStep).
type prefixDeleter interface {
	DeletePrefixStep(ctx context.Context, prefix, done string, limit int) ([]string, error)
}

type batchArgs struct {
	deletion uuid.UUID
	tenant   uuid.UUID
	limit    int
	cursor   uuid.UUID
	now      time.Time
}

// step is one table's (or the files') share of a deletion. batch does one
// batch and returns how many rows it changed and where to go on from: nil
// when the step is finished.
type step struct {
	name  string
	batch func(ctx context.Context, tx pgx.Tx, a batchArgs) (int64, *uuid.UUID, error)
}

// more says whether a batch that changed n rows of at most limit leaves
// work: a full batch may.
func more(n int64, limit int) *uuid.UUID {
	if n < int64(limit) {
		return nil
	}
	return &uuid.Nil
}

// deleteStep removes rows matching where ($1 tenant, $2 limit, then args)
// in batches, by physical row address (every table has one, whatever its
// key).
func deleteStep(name, table, where string, args ...any) step {
	sql := fmt.Sprintf("DELETE FROM %s WHERE ctid = ANY(ARRAY(SELECT ctid FROM %s WHERE %s LIMIT $2))",
		pgx.Identifier{table}.Sanitize(), pgx.Identifier{table}.Sanitize(), where)
	return step{name: name, batch: func(ctx context.Context, tx pgx.Tx, a batchArgs) (int64, *uuid.UUID, error) {
		tag, err := tx.Exec(ctx, sql, append([]any{a.tenant, a.limit}, args...)...)
		if err != nil {
			return 0, nil, err
		}
		return tag.RowsAffected(), more(tag.RowsAffected(), a.limit), nil
	}}
}

// messagesAnonymise strips a message down to its log metadata.
const messagesAnonymise = `body = '', subject = NULL, destination = NULL, error = NULL, contact_id = NULL,
	appointment_id = NULL, location_id = NULL, batch_id = NULL, updated_at = $3`

// messagesPurgeStep walks a tenant's messages by ID (keyset: a batch never
// rescans what earlier ones did) and strips each to its log metadata.
var messagesPurgeStep = step{name: "messages", batch: func(ctx context.Context, tx pgx.Tx, a batchArgs) (int64, *uuid.UUID, error) {
	var last *uuid.UUID
	var n int64
	err := tx.QueryRow(ctx, `
		WITH b AS (SELECT id FROM messages WHERE tenant_id = $1 AND id > $4 ORDER BY id LIMIT $2),
		     u AS (UPDATE messages m SET `+messagesAnonymise+`
		           FROM b WHERE m.id = b.id AND m.tenant_id = $1
		             AND (m.body <> '' OR m.subject IS NOT NULL OR m.destination IS NOT NULL OR m.contact_id IS NOT NULL
		                  OR m.appointment_id IS NOT NULL OR m.location_id IS NOT NULL OR m.batch_id IS NOT NULL
		                  OR m.error IS NOT NULL)
		           RETURNING 1)
		SELECT (SELECT id FROM b ORDER BY id DESC LIMIT 1), (SELECT count(*) FROM u)`,
		a.tenant, a.limit, a.now, a.cursor).Scan(&last, &n)
	if err != nil {
		return 0, nil, err
	}
	return n, last, nil
}}

// tenantPurgeSteps is the whole purge of a cancelled tenant.
func (s *Deletions) tenantPurgeSteps() []step {
	steps := []step{messagesPurgeStep}
	for _, t := range TenantPurgeTables {
		steps = append(steps, deleteStep(t, t, "tenant_id = $1"))
	}
	steps = append(steps,
		step{name: "idempotency_keys", batch: func(ctx context.Context, tx pgx.Tx, a batchArgs) (int64, *uuid.UUID, error) {
			tag, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
				SELECT ctid FROM idempotency_keys WHERE scope = $1 LIMIT $2))`, a.tenant.String(), a.limit)
			if err != nil {
				return 0, nil, err
			}
			return tag.RowsAffected(), more(tag.RowsAffected(), a.limit), nil
		}},
		s.filesStep(),
	)
	return steps
}

// filesStep removes everything under the tenant's prefix in the file
// store, a batch at a time: each batch counts the next files and records
// the last as deletions.file_cursor in its transaction; the following
// batch removes them (DeletePrefixStep). A crash loses no count and
// doubles none.
func (s *Deletions) filesStep() step {
	return step{name: "files", batch: func(ctx context.Context, tx pgx.Tx, a batchArgs) (int64, *uuid.UUID, error) {
		if s.Files == nil {
			return 0, nil, nil
		}
		pd, ok := s.Files.(prefixDeleter)
		if !ok {
			return 0, nil, errors.New("the file store cannot delete a tenant's folder")
		}
		var done *string
		if err := tx.QueryRow(ctx, "SELECT file_cursor FROM deletions WHERE id = $1", a.deletion).Scan(&done); err != nil {
			return 0, nil, err
		}
		if done == nil {
			done = new(string)
		}
		next, err := pd.DeletePrefixStep(ctx, fmt.Sprintf(TenantFilePrefix, a.tenant), *done, a.limit)
		if err != nil || len(next) == 0 {
			return 0, nil, err
		}
		if _, err := tx.Exec(ctx, "UPDATE deletions SET file_cursor = $2 WHERE id = $1", a.deletion, next[len(next)-1]); err != nil {
			return 0, nil, err
		}
		return int64(len(next)), &uuid.Nil, nil
	}}
}

// plan is the list of steps of a deletion.
func (s *Deletions) plan(ctx context.Context, d db.Deletion) ([]step, error) {
	if d.Scope == DeletionScopeTenant {
		return s.tenantPurgeSteps(), nil
	}
	var c *db.Contact
	err := s.Store.InTenant(ctx, d.TenantID, func(q *db.Queries) error {
		got, err := q.ContactGet(ctx, db.ContactGetParams{TenantID: d.TenantID, ID: *d.ContactID})
		if db.IsNotFound(err) {
			return nil
		}
		c = &got
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.contactErasureSteps(*d.ContactID, c, d.Minor), nil
}

// contactErasureSteps erase one person: their pending messages stop, their
// messages lose body, subject and address (a child's are removed outright),
// their verifications, appointments and exports go, every export file that
// may hold them (theirs, and the tenant's whole-account exports) is
// deleted, notes and stored responses naming them are scrubbed, and the
// contact row goes last. What stays: opt-out records, which hold only a
// keyed hash of the address (the pseudonym the TCPA records need).
//
// c is nil when the contact row is already gone (a re-run after the last
// step): the steps that need its addresses then have nothing to match.
func (s *Deletions) contactErasureSteps(contactID uuid.UUID, c *db.Contact, minor bool) []step {
	var addrs, idents []string
	var hashes [][]byte
	if c != nil {
		if c.Phone != nil && *c.Phone != "" {
			addrs = append(addrs, *c.Phone)
			hashes = append(hashes, s.Pseudonyms.Address("sms", *c.Phone))
			idents = append(idents, normalize.PhoneDigits(*c.Phone)...)
		}
		if c.Email != nil && *c.Email != "" {
			addrs = append(addrs, *c.Email, strings.ToLower(*c.Email))
			hashes = append(hashes, s.Pseudonyms.Address("email", *c.Email))
			idents = append(idents, *c.Email)
		}
		idents = append(idents, c.Name)
	}
	if addrs == nil {
		addrs = []string{}
	}
	if hashes == nil {
		hashes = [][]byte{}
	}
	// Free text (notes, rejected import rows, stored responses) is
	// searched for the person ignoring case, spaces and punctuation:
	// "ZELDA QUIXOTE", "Quixote" beside "Zelda" in a CSV row, and
	// "(312) 555-0199" all match. What matches is removed whole, never
	// search-and-replaced.
	texts, escaped := freeTextNeedles(idents)
	theirs := "tenant_id = $1 AND (contact_id = $3 OR destination = ANY($4::text[]))"
	steps := []step{
		{name: "messages_cancelled", batch: func(ctx context.Context, tx pgx.Tx, a batchArgs) (int64, *uuid.UUID, error) {
			rows, err := tx.Query(ctx, `UPDATE messages SET status = 'cancelled', updated_at = $5
				WHERE id IN (SELECT id FROM messages WHERE `+theirs+` AND status IN ('scheduled', 'queued') LIMIT $2)
				RETURNING id, kind`, a.tenant, a.limit, contactID, addrs, a.now)
			if err != nil {
				return 0, nil, err
			}
			var n int64
			for rows.Next() {
				var m db.Message
				if err := rows.Scan(&m.ID, &m.Kind); err != nil {
					return 0, nil, err
				}
				m.TenantID = a.tenant
				if s.Dispatcher != nil {
					s.Dispatcher.ForgetMessage(m)
				}
				n++
			}
			return n, more(n, a.limit), rows.Err()
		}},
	}
	if minor {
		steps = append(steps, deleteStep("messages", "messages", theirs, contactID, addrs))
	} else {
		steps = append(steps, step{name: "messages", batch: func(ctx context.Context, tx pgx.Tx, a batchArgs) (int64, *uuid.UUID, error) {
			tag, err := tx.Exec(ctx, `UPDATE messages SET `+messagesAnonymise+`
				WHERE id IN (SELECT id FROM messages WHERE tenant_id = $1 AND (contact_id = $4 OR destination = ANY($5::text[])) LIMIT $2)`,
				a.tenant, a.limit, a.now, contactID, addrs)
			if err != nil {
				return 0, nil, err
			}
			return tag.RowsAffected(), more(tag.RowsAffected(), a.limit), nil
		}})
	}
	steps = append(steps,
		deleteStep("verifications", "verifications",
			"tenant_id = $1 AND (destination_hash = ANY($3::bytea[]) OR destination = ANY($4::text[]))", hashes, addrs),
		deleteStep("appointments", "appointments", "tenant_id = $1 AND contact_id = $3", contactID),
		s.exportFilesStep(contactID),
		s.importFilesStep(),
		deleteStep("import_errors", "import_errors",
			"tenant_id = $1 AND EXISTS (SELECT FROM unnest($3::text[]) i WHERE strpos("+freeText("raw::text")+", i) > 0)", texts),
		deleteStep("exports", "exports", "tenant_id = $1 AND contact_id = $3", contactID),
		// Notes in privacy-request trails: every note on a request about
		// them, and any other note that names them, is blanked whole.
		step{name: "privacy_request_notes", batch: func(ctx context.Context, tx pgx.Tx, a batchArgs) (int64, *uuid.UUID, error) {
			tag, err := tx.Exec(ctx, `UPDATE privacy_request_events SET note = '[erased]'
				WHERE ctid = ANY(ARRAY(SELECT e.ctid FROM privacy_request_events e
				  WHERE e.tenant_id = $1 AND e.note NOT IN ('', '[erased]')
				    AND (e.request_id IN (SELECT id FROM privacy_requests WHERE tenant_id = $1 AND contact_id = $3)
				         OR EXISTS (SELECT FROM unnest($4::text[]) i WHERE strpos(`+freeText("e.note")+`, i) > 0))
				  LIMIT $2))`, a.tenant, a.limit, contactID, texts)
			if err != nil {
				return 0, nil, err
			}
			return tag.RowsAffected(), more(tag.RowsAffected(), a.limit), nil
		}},
		// Stored idempotent responses that name them go (the request
		// can no longer be replayed; it would be refused as a duplicate
		// of nothing and run again, which is what an erasure implies).
		// Bytes are searched through their escape form, which needs no
		// valid UTF-8.
		deleteStep("idempotency_keys", "idempotency_keys",
			"scope = $1::text AND response_body IS NOT NULL AND EXISTS (SELECT FROM unnest($3::text[]) i WHERE strpos("+
				freeBytes("response_body")+", i) > 0)", escaped),
		deleteStep("contacts", "contacts", "tenant_id = $1 AND id = $3", contactID),
	)
	return steps
}

// exportFilesStep deletes every finished export file that may hold the
// person: their own exports, and the tenant's whole-account ones. The rows
// say expired (the tenant can export again).
func (s *Deletions) exportFilesStep(contactID uuid.UUID) step {
	return step{name: "export_files", batch: func(ctx context.Context, tx pgx.Tx, a batchArgs) (int64, *uuid.UUID, error) {
		rows, err := tx.Query(ctx, `UPDATE exports SET status = 'expired', file_key = NULL, updated_at = $4
			WHERE id IN (SELECT id FROM exports WHERE tenant_id = $1 AND status = 'succeeded'
			             AND (scope = 'tenant' OR contact_id = $3) LIMIT $2)
			RETURNING id, attempts`, a.tenant, a.limit, contactID, a.now)
		if err != nil {
			return 0, nil, err
		}
		type ex struct {
			id       uuid.UUID
			attempts int32
		}
		var list []ex
		for rows.Next() {
			var e ex
			if err := rows.Scan(&e.id, &e.attempts); err != nil {
				return 0, nil, err
			}
			list = append(list, e)
		}
		if err := rows.Err(); err != nil {
			return 0, nil, err
		}
		// The files go before the rows say so (commit): a failure here
		// rolls the batch back and the next run deletes them again.
		if s.Files != nil {
			for _, e := range list {
				if err := deleteExportFiles(ctx, s.Files, a.tenant, e.id, e.attempts); err != nil {
					return 0, nil, err
				}
			}
		}
		n := int64(len(list))
		return n, more(n, a.limit), nil
	}}
}

// importFilesStep deletes the stored uploads of the tenant's finished
// imports: a client list names many people and cannot be edited, so an
// erasure does not wait for the uploads' own expiry (7 days after each
// import). The import rows and their counts stay, and so does their
// expiry: the other people's rejected rows still go on the import's own
// schedule (ImportExpire). An import still running keeps its upload until
// it ends; its expiry then removes it.
func (s *Deletions) importFilesStep() step {
	return step{name: "import_files", batch: func(ctx context.Context, tx pgx.Tx, a batchArgs) (int64, *uuid.UUID, error) {
		rows, err := tx.Query(ctx, `UPDATE imports i SET file_key = NULL, updated_at = $3
			FROM (SELECT id, file_key FROM imports WHERE tenant_id = $1 AND file_key IS NOT NULL
			      AND status IN ('succeeded', 'failed', 'cancelled') LIMIT $2) old
			WHERE i.id = old.id RETURNING old.file_key`, a.tenant, a.limit, a.now)
		if err != nil {
			return 0, nil, err
		}
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return 0, nil, err
		}
		// As with exports: the files go before the rows say so.
		if s.Files != nil {
			for _, k := range keys {
				if err := s.Files.Delete(ctx, k); err != nil { // what is gone already is no error
					return 0, nil, err
				}
			}
		}
		n := int64(len(keys))
		return n, more(n, a.limit), nil
	}}
}

// Erasure and the person's export decide differently whether free text
// names someone, on purpose: erasure removes a note or row in which any of
// the person's identifiers appears (when in doubt, the person's data goes),
// while their export (internal/export, rejected_import_rows) shows only
// rows with a cell that is wholly their name, email or phone (when in
// doubt, another person's data stays out of it). Both fold case and
// punctuation the same way (normalize.Letters, normalize.PhoneDigits).

// minNeedle is the shortest folded identifier searched for in free text:
// shorter ones ("Al", "Bo") would match too much to mean the person.
const minNeedle = 5

// freeText folds a text expression for searching: lower case, letters and
// digits only.
func freeText(expr string) string {
	return "regexp_replace(lower(" + expr + "), '[^[:alnum:]]+', '', 'g')"
}

// freeBytes folds a bytea expression the same way through its escape form
// (bytes past ASCII become octal digits; see escapeFold).
func freeBytes(expr string) string {
	return "regexp_replace(lower(encode(" + expr + ", 'escape')), '[^a-z0-9]+', '', 'g')"
}

// fold is freeText in Go.
func fold(s string) string { return normalize.Letters(s) }

// escapeFold is freeBytes in Go: the lower-cased text's ASCII letters and
// digits, and each byte past ASCII as its three octal digits.
func escapeFold(s string) string {
	var b strings.Builder
	for _, c := range []byte(strings.ToLower(s)) {
		switch {
		case c >= 0x80:
			fmt.Fprintf(&b, "%03o", c)
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteByte(c)
		}
	}
	return b.String()
}

// freeTextNeedles folds the person's identifiers for freeText and
// freeBytes searches, dropping those too short to mean them.
func freeTextNeedles(idents []string) (texts, escaped []string) {
	texts, escaped = []string{}, []string{}
	for _, id := range idents {
		if f := fold(id); utf8.RuneCountInString(f) >= minNeedle && !slices.Contains(texts, f) {
			texts = append(texts, f)
			escaped = append(escaped, escapeFold(id))
		}
	}
	return texts, escaped
}
