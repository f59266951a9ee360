// Package export writes an export archive: a zip with one file per table
// (CSV, JSON Lines or JSON), the tenant's stored documents, a README saying
// what each file is, and a manifest.json with row counts and a SHA-256 per
// file. What goes in is the table-driven list in sources.go.
//
// Everything streams: rows come from PostgreSQL by COPY … TO STDOUT inside
// one read-only snapshot, pass through a CSV formula guard (or a JSON
// framer) and the zip's compressor into the writer the caller gives
// (the file store, which publishes the file only once complete). Memory
// does not grow with the tenant's size.
//
// It must never read outside the tenant whose snapshot it is given, and
// never put an export's content in a log line.
package export

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/flate"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/filestore"
)

// Scope says whose data an export holds.
type Scope string

// Scopes.
const (
	ScopeTenant  Scope = "tenant"  // everything Errand holds for the tenant
	ScopeContact Scope = "contact" // everything about one person (subject access)
)

// Format is the table files' format.
type Format string

// Formats.
const (
	FormatCSV  Format = "csv"
	FormatJSON Format = "json"
)

// Request says what to export.
type Request struct {
	ExportID    uuid.UUID
	TenantID    uuid.UUID
	Scope       Scope
	Format      Format
	Contact     *Contact // the person, for ScopeContact
	GeneratedAt time.Time
}

// Contact is the person a contact export is about.
type Contact struct {
	ID         uuid.UUID // contact row ID
	ExternalID string    // the tenant's ID for them, as the API shows it
	SMSHash    []byte    // pseudonym of their phone number; nil without one
	EmailHash  []byte    // pseudonym of their email address; nil without one
	// PhoneDigits are their phone number as digits, as it may be typed
	// in free text (normalize.PhoneDigits); digits only.
	PhoneDigits []string
}

// Progress is how far an export has come.
type Progress struct {
	RowsDone  int64
	RowsTotal int64
}

// Manifest describes an archive; it is its manifest.json.
type Manifest struct {
	Format        string          `json:"format"`
	Version       int             `json:"version"`
	ExportID      string          `json:"export_id"`
	TenantID      string          `json:"tenant_id"`
	Scope         Scope           `json:"scope"`
	ContactID     *string         `json:"contact_id"`
	FileFormat    Format          `json:"file_format"`
	SchemaVersion int64           `json:"schema_version"`
	GeneratedAt   time.Time       `json:"generated_at"`
	Tables        []ManifestTable `json:"tables"`
	Files         []ManifestFile  `json:"files"`
}

// ManifestTable is one table and how many rows of it the archive holds.
type ManifestTable struct {
	Name string `json:"name"`
	File string `json:"file"`
	Rows int64  `json:"rows"`
}

// ManifestFile is one file of the archive (the manifest itself aside).
type ManifestFile struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // readme, table, document
	Table  string `json:"table,omitempty"`
	Format string `json:"format,omitempty"` // csv, jsonl, json
	Rows   *int64 `json:"rows,omitempty"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Rows is the total number of table rows in the archive.
func (m Manifest) Rows() int64 {
	var n int64
	for _, t := range m.Tables {
		n += t.Rows
	}
	return n
}

// ManifestName and ReadmeName are the archive's fixed files.
const (
	ManifestName = "manifest.json"
	ReadmeName   = "README.txt"
	archiveKind  = "errand-export"
	archiveVer   = 1
)

// Exporter writes archives.
type Exporter struct {
	Sources []Source
	Files   filestore.Store // where documents are read from
	// ProgressEvery is how many rows pass between progress reports
	// (default 50,000); reports also come at each file's end.
	ProgressEvery int64
	// Level is the deflate level (default flate.BestSpeed: compression
	// is most of an export's own work, and table text compresses well at
	// the fastest level). klauspost/compress's deflate writes the same
	// format as the standard library's at twice the speed.
	Level int
}

// ErrPlaceholder means a source's query names a placeholder this package
// does not fill.
var ErrPlaceholder = errors.New("export: unknown placeholder in source query")

// Write streams the archive for r into out, reading through tx: a
// transaction scoped to r.TenantID, best a read-only repeatable-read
// snapshot so that every file shows the same moment. progress is called as
// rows go by; an error from it stops the export.
func (e *Exporter) Write(ctx context.Context, tx pgx.Tx, r Request, out io.Writer, progress func(Progress) error) (Manifest, error) {
	m := Manifest{Format: archiveKind, Version: archiveVer, ExportID: r.ExportID.String(), TenantID: r.TenantID.String(),
		Scope: r.Scope, FileFormat: r.Format, SchemaVersion: SchemaVersion(), GeneratedAt: r.GeneratedAt.UTC(),
		Tables: []ManifestTable{}, Files: []ManifestFile{}}
	if r.Scope == ScopeContact {
		if r.Contact == nil {
			return m, errors.New("export: a contact export needs its contact")
		}
		m.ContactID = &r.Contact.ExternalID
	}
	if r.Format != FormatCSV && r.Format != FormatJSON {
		return m, fmt.Errorf("export: unknown format %q", r.Format)
	}
	// One zone and date style for every file, whatever the server's
	// defaults; and room for the hash join that gives each message its
	// contact's ID (a million contacts stay in memory, not in temp files).
	if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "+
		"SET LOCAL IntervalStyle = 'iso_8601'; SET LOCAL work_mem = '64MB'"); err != nil {
		return m, fmt.Errorf("export: session settings: %w", err)
	}
	sources, queries, err := e.plan(r)
	if err != nil {
		return m, err
	}

	// Count first (same snapshot), so progress has a denominator.
	var p Progress
	for i, q := range queries {
		var n int64
		// Simple protocol: these queries hold literals, so preparing and
		// caching them per tenant would only fill the statement cache.
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM ("+q+") AS t", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
			return m, fmt.Errorf("export: count %s: %w", sources[i].Name, err)
		}
		p.RowsTotal += n
	}
	if err := progress(p); err != nil {
		return m, err
	}

	zw := zip.NewWriter(out)
	level := e.Level
	if level == 0 {
		level = flate.BestSpeed
	}
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, level) })
	rep := &reporter{progress: progress, every: e.ProgressEvery, p: p}
	if rep.every <= 0 {
		rep.every = 50_000
	}

	readme := Readme(r, sources, m.SchemaVersion)
	f, err := e.entry(zw, ReadmeName, zip.Deflate, r.GeneratedAt, func(w io.Writer) (int64, error) {
		_, err := io.WriteString(w, readme)
		return 0, err
	})
	if err != nil {
		return m, err
	}
	f.Kind = "readme"
	m.Files = append(m.Files, f)

	for i, src := range sources {
		if src.Documents {
			files, err := e.documents(ctx, tx, zw, src, queries[i], r.GeneratedAt, rep)
			if err != nil {
				return m, err
			}
			m.Files = append(m.Files, files...)
			m.Tables = append(m.Tables, ManifestTable{Name: src.Name, File: "documents/" + src.File + "/", Rows: int64(len(files))})
			continue
		}
		name, format := src.fileName(r.Format)
		f, err := e.entry(zw, name, zip.Deflate, r.GeneratedAt, func(w io.Writer) (int64, error) {
			return copyTable(ctx, tx, w, queries[i], format, rep)
		})
		if err != nil {
			return m, fmt.Errorf("export: %s: %w", src.Name, err)
		}
		f.Kind, f.Table, f.Format = "table", src.Name, format
		m.Files = append(m.Files, f)
		m.Tables = append(m.Tables, ManifestTable{Name: src.Name, File: name, Rows: *f.Rows})
		if err := rep.flush(); err != nil {
			return m, err
		}
	}

	mw, err := zw.CreateHeader(&zip.FileHeader{Name: ManifestName, Method: zip.Deflate, Modified: r.GeneratedAt})
	if err != nil {
		return m, fmt.Errorf("export: %w", err)
	}
	enc := json.NewEncoder(mw)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return m, fmt.Errorf("export: write manifest: %w", err)
	}
	if err := zw.Close(); err != nil {
		return m, fmt.Errorf("export: finish zip: %w", err)
	}
	return m, nil
}

// plan picks the sources of r's scope and fills in their queries.
func (e *Exporter) plan(r Request) ([]Source, []string, error) {
	vals := []string{"{{tenant_id}}", uuidLiteral(r.TenantID)}
	if r.Contact != nil {
		vals = append(vals, "{{contact_id}}", uuidLiteral(r.Contact.ID),
			"{{contact_sms_hash}}", byteaLiteral(r.Contact.SMSHash),
			"{{contact_email_hash}}", byteaLiteral(r.Contact.EmailHash),
			"{{contact_phone_digits}}", digitsLiteral(r.Contact.PhoneDigits))
	}
	fill := strings.NewReplacer(vals...)
	var sources []Source
	var queries []string
	for _, s := range e.Sources {
		q := s.Tenant
		if r.Scope == ScopeContact {
			q = s.Contact
		}
		if q == "" {
			continue
		}
		q = fill.Replace(q)
		if strings.Contains(q, "{{") {
			return nil, nil, fmt.Errorf("%w: %s", ErrPlaceholder, s.Name)
		}
		sources = append(sources, s)
		queries = append(queries, q)
	}
	return sources, queries, nil
}

// uuidLiteral and byteaLiteral render values Errand generated as SQL
// literals (COPY takes no parameters). Their alphabets are hex digits and
// dashes only.
func uuidLiteral(id uuid.UUID) string { return "'" + id.String() + "'::uuid" }

func byteaLiteral(b []byte) string {
	if b == nil {
		return "NULL::bytea"
	}
	return `'\x` + hex.EncodeToString(b) + "'::bytea"
}

// digitsLiteral renders digit strings as a text[] literal; anything but
// digits is left out, so nothing a caller typed can reach the SQL.
func digitsLiteral(ds []string) string {
	var parts []string
	for _, d := range ds {
		if d != "" && strings.Trim(d, "0123456789") == "" {
			parts = append(parts, "'"+d+"'")
		}
	}
	return "ARRAY[" + strings.Join(parts, ",") + "]::text[]"
}

// fileName is the source's file in the archive and its format.
func (s Source) fileName(f Format) (string, string) {
	switch {
	case f == FormatCSV:
		return s.File + ".csv", "csv"
	case s.Large:
		return s.File + ".jsonl", "jsonl"
	}
	return s.File + ".json", "json"
}

// entry writes one zip entry through fill, measuring its size and SHA-256;
// fill returns a row count when the entry is a table.
func (e *Exporter) entry(zw *zip.Writer, name string, method uint16, mod time.Time, fill func(io.Writer) (int64, error)) (ManifestFile, error) {
	f := ManifestFile{Name: name}
	zf, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: mod})
	if err != nil {
		return f, err
	}
	sum := &summer{h: sha256.New(), w: zf}
	buf := bufio.NewWriterSize(sum, 256<<10)
	rows, err := fill(buf)
	if err != nil {
		return f, err
	}
	if err := buf.Flush(); err != nil {
		return f, err
	}
	f.Bytes, f.SHA256, f.Rows = sum.n, hex.EncodeToString(sum.h.Sum(nil)), &rows
	return f, nil
}

// summer writes through to w while hashing and counting.
type summer struct {
	h hash.Hash
	w io.Writer
	n int64
}

func (s *summer) Write(p []byte) (int, error) {
	s.h.Write(p)
	s.n += int64(len(p))
	return s.w.Write(p)
}

// framer is what sits between COPY and the file: it shapes the output and
// counts records.
type framer interface {
	io.WriteCloser
	Rows() int64
}

// copyTable streams one query's rows into w in format, returning the
// number of rows.
func copyTable(ctx context.Context, tx pgx.Tx, w io.Writer, query, format string, rep *reporter) (int64, error) {
	var fr framer
	header := int64(0)
	copySQL := "COPY (" + query + ") TO STDOUT WITH (FORMAT csv)"
	switch format {
	case "csv":
		fr, header = newFormulaGuard(w), 1
		copySQL = "COPY (" + query + ") TO STDOUT WITH (FORMAT csv, HEADER true)"
	default:
		// JSON is built from the same CSV, typed by the query's columns.
		sd, err := tx.Conn().PgConn().Prepare(ctx, "", query, nil)
		if err != nil {
			return 0, err
		}
		names, oids := make([]string, len(sd.Fields)), make([]uint32, len(sd.Fields))
		for i, f := range sd.Fields {
			names[i], oids[i] = f.Name, f.DataTypeOID
		}
		if format == "json" {
			arr := &jsonArray{w: w}
			fr = &chain{framer: newCSVToJSON(arr, jsonColumns(names, oids)), then: arr}
		} else {
			fr = newCSVToJSON(w, jsonColumns(names, oids))
		}
	}
	tag, err := tx.Conn().PgConn().CopyTo(ctx, &counted{fr: fr, rep: rep, header: header}, copySQL)
	if err != nil {
		return 0, err
	}
	if err := fr.Close(); err != nil {
		return 0, err
	}
	if got, want := fr.Rows()-header, tag.RowsAffected(); got != want {
		return 0, fmt.Errorf("wrote %d rows, PostgreSQL sent %d", got, want)
	}
	return tag.RowsAffected(), nil
}

// chain is a framer writing into another writer that needs closing after
// it (the JSON array around JSON lines).
type chain struct {
	framer
	then io.Closer
}

func (c *chain) Close() error {
	if err := c.framer.Close(); err != nil {
		return err
	}
	return c.then.Close()
}

// counted reports progress as a framer's record count grows.
type counted struct {
	fr     framer
	rep    *reporter
	header int64
	last   int64
}

func (c *counted) Write(p []byte) (int, error) {
	n, err := c.fr.Write(p)
	if err != nil {
		return n, err
	}
	rows := max(c.fr.Rows()-c.header, 0)
	if err := c.rep.add(rows - c.last); err != nil {
		return n, err
	}
	c.last = rows
	return n, nil
}

// reporter throttles progress reports.
type reporter struct {
	progress func(Progress) error
	every    int64
	p        Progress
	unsent   int64
}

func (r *reporter) add(n int64) error {
	r.p.RowsDone += n
	r.unsent += n
	if r.unsent < r.every {
		return nil
	}
	return r.flush()
}

func (r *reporter) flush() error {
	r.unsent = 0
	p := r.p
	p.RowsDone = min(p.RowsDone, p.RowsTotal) // rows added since the count
	return r.progress(p)
}

// documents copies the stored files a Documents source lists into the
// archive, stored as they are (documents are already compressed).
func (e *Exporter) documents(ctx context.Context, tx pgx.Tx, zw *zip.Writer, src Source, query string, mod time.Time, rep *reporter) ([]ManifestFile, error) {
	if e.Files == nil {
		return nil, errors.New("export: documents need a file store")
	}
	rows, err := tx.Query(ctx, query, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, fmt.Errorf("export: list %s: %w", src.Name, err)
	}
	type doc struct{ key, name string }
	var docs []doc
	// Collected first: a list of keys is small, and the connection must be
	// free before the next query.
	for rows.Next() {
		var d doc
		if err := rows.Scan(&d.key, &d.name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("export: list %s: %w", src.Name, err)
		}
		docs = append(docs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("export: list %s: %w", src.Name, err)
	}
	out := make([]ManifestFile, 0, len(docs))
	seen := map[string]int{}
	for _, d := range docs {
		name := "documents/" + src.File + "/" + uniqueName(safeName(d.name), seen)
		f, err := e.entry(zw, name, zip.Store, mod, func(w io.Writer) (int64, error) {
			rc, err := e.Files.Open(ctx, d.key)
			if err != nil {
				return 0, err
			}
			defer rc.Close()
			_, err = io.Copy(w, rc)
			return 0, err
		})
		if err != nil {
			return nil, fmt.Errorf("export: document of %s: %w", src.Name, err)
		}
		f.Kind, f.Table, f.Rows = "document", src.Name, nil
		out = append(out, f)
		if err := rep.add(1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// safeName keeps a document's name a plain file name inside the zip.
func safeName(name string) string {
	name = unsafeChars.ReplaceAllString(path.Base(strings.ReplaceAll(name, `\`, "/")), "_")
	name = strings.TrimLeft(name, ".")
	if name == "" {
		name = "document"
	}
	if len(name) > 120 {
		name = name[len(name)-120:]
	}
	return name
}

func uniqueName(name string, seen map[string]int) string {
	n := seen[name]
	seen[name] = n + 1
	if n == 0 {
		return name
	}
	ext := path.Ext(name)
	return strings.TrimSuffix(name, ext) + "-" + strconv.Itoa(n+1) + ext
}

// SchemaVersion is the database schema version this binary runs against:
// its newest migration's number.
func SchemaVersion() int64 {
	var v int64
	entries, _ := fs.ReadDir(db.Migrations(), ".")
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(num, 10, 64); err == nil && n > v {
			v = n
		}
	}
	return v
}
