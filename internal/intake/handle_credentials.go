package intake

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/credential"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/filestore"
)

// Credentials of professionals. An upload streams the document into the
// encrypted file store (never into memory), writes a pending credential
// row and enqueues its check task (credential:verify), which moves it to
// verified, needs_review or rejected with a reason per check; the expiry
// watch later flips it to expired. Documents are never served to tenants;
// ops read them through the audited admin API.

// formOverhead is what the text fields and part headers of an upload may
// add to the document's own limit.
const formOverhead = 64 << 10

// maxFieldBytes bounds each text field of an upload.
const maxFieldBytes = 1024

var uploadFields = map[string]bool{"kind": true, "number": true, "issuer": true, "expires_on": true}

// withBodyLimit bounds a streaming route's body before anything reads it
// (the idempotency hash included).
func withBodyLimit(limit func() int64, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		r.Body = http.MaxBytesReader(w, r.Body, limit())
		return h(w, r)
	}
}

func (s *Server) credentialBodyLimit() int64 { return s.Verify.credentialMaxBytes() + formOverhead }

// storedDocument is an upload's document, committed to the file store.
type storedDocument struct {
	key   string
	media string
	info  filestore.Info
}

func (s *Server) handleCredentialUpload(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	ext := r.PathValue("external_id")
	if !validExternalID(ext) {
		return fault.Fields(map[string]string{"external_id": "1 to 200 printable characters"})
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "multipart/form-data" {
		return fault.New(fault.UnsupportedType, "send the credential as multipart/form-data with the fields kind, number, issuer, expires_on and file")
	}
	if s.Files == nil {
		return fault.New(fault.Unavailable, "document storage is not configured")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return fault.New(fault.Malformed, "the multipart body cannot be read")
	}
	id := uuid.New()
	key := fmt.Sprintf("tenants/%s/credentials/%s", p.TenantID, id)
	var doc *storedDocument
	committed := false
	defer func() {
		if doc != nil && !committed {
			if err := s.Files.Delete(context.WithoutCancel(r.Context()), key); err != nil {
				s.logger.ErrorContext(r.Context(), "could not delete a refused upload", "credential_id", id, "err", err)
			}
		}
	}()

	fields := map[string]string{}
	problems := map[string]string{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return uploadReadFault(err, s.credentialBodyLimit())
		}
		name := part.FormName()
		switch {
		case name == "file":
			if doc != nil {
				problems["file"] = "send one file"
				continue
			}
			if doc, err = s.storeDocument(r.Context(), key, part); err != nil {
				return err
			}
		case uploadFields[name]:
			b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
			if err != nil {
				return uploadReadFault(err, s.credentialBodyLimit())
			}
			if _, dup := fields[name]; dup {
				problems[name] = "given more than once"
			}
			if len(b) > maxFieldBytes {
				problems[name] = fmt.Sprintf("at most %d bytes", maxFieldBytes)
			}
			fields[name] = string(b)
		default:
			if name == "" {
				name = "(unnamed part)"
			}
			problems[name] = "unknown field"
		}
	}
	c, problems := validateCredentialFields(fields, problems)
	if doc == nil && problems["file"] == "" {
		problems["file"] = "required: the document (PDF, JPEG or PNG)"
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}

	now := s.Clock.Now()
	var enqueuedAt *time.Time
	if s.Dispatcher.Within(now) {
		enqueuedAt = &now
	}
	var row db.Credential
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		pro, err := q.ProUpsert(r.Context(), db.ProUpsertParams{TenantID: p.TenantID, ExternalID: ext, Now: now})
		if err != nil {
			return err
		}
		row, err = q.CredentialCreate(r.Context(), db.CredentialCreateParams{ID: id, TenantID: p.TenantID, ProID: pro.ID,
			Kind: c.kind, Number: c.number, NumberNorm: credential.NormalizeNumber(c.number), Issuer: c.issuer,
			ExpiresOn: pgtype.Date{Time: c.expiresOn, Valid: true}, FileKey: doc.key, FileType: doc.media,
			FileSize: doc.info.Size, FileSha256: doc.info.SHA256, EnqueuedAt: enqueuedAt, Now: now})
		return err
	})
	if err != nil {
		return err
	}
	committed = true
	s.Dispatcher.EnqueueCredential(r.Context(), row)
	encode(w, http.StatusAccepted, credentialView(row, ext))
	return nil
}

// storeDocument streams the file part into the store after checking, from
// its first bytes, that it is a PDF, JPEG or PNG and that neither its name
// nor its declared type says otherwise.
func (s *Server) storeDocument(ctx context.Context, key string, part *multipart.Part) (*storedDocument, error) {
	limit := s.Verify.credentialMaxBytes()
	filename, declared := part.FileName(), part.Header.Get("Content-Type")
	br := bufio.NewReaderSize(part, 32<<10)
	head, err := br.Peek(credential.SniffLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, uploadReadFault(err, s.credentialBodyLimit())
	}
	if len(head) == 0 {
		return nil, fault.Fields(map[string]string{"file": "the file is empty"})
	}
	media, ok := credential.Sniff(head)
	if !ok {
		return nil, fault.New(fault.UnsupportedType, "the file is not a PDF, JPEG or PNG (its content was checked, not its name)")
	}
	if !credential.NameAgrees(filename, media) {
		return nil, fault.Fields(map[string]string{"file": fmt.Sprintf("the file's name ends in %s but its content is %s",
			strings.ToLower(filepath.Ext(filename)), credential.Describe(media))})
	}
	if !credential.DeclaredAgrees(declared, media) {
		return nil, fault.Fields(map[string]string{"file": "the file's declared type does not match its content, which is " +
			credential.Describe(media)})
	}
	fw, err := s.Files.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(fw, io.LimitReader(br, limit+1))
	if err == nil && n > limit {
		err = &http.MaxBytesError{Limit: limit}
	}
	if err != nil {
		fw.Abort() //nolint:errcheck // nothing was committed
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fault.New(fault.TooLarge, "the document is larger than the %d bytes allowed", limit)
		}
		return nil, uploadReadFault(err, s.credentialBodyLimit())
	}
	info, err := fw.Commit()
	if err != nil {
		return nil, err
	}
	return &storedDocument{key: key, media: media, info: info}, nil
}

// uploadReadFault explains why an upload's body could not be read.
func uploadReadFault(err error, limit int64) error {
	if tooLarge(err) {
		return fault.New(fault.TooLarge, "the upload is larger than the %d bytes allowed", limit)
	}
	return fault.New(fault.Malformed, "the multipart body is malformed or was cut short")
}

type credentialFields struct {
	kind, number, issuer string
	expiresOn            time.Time
}

func validateCredentialFields(f map[string]string, problems map[string]string) (credentialFields, map[string]string) {
	var c credentialFields
	c.kind = strings.TrimSpace(f["kind"])
	if !credential.ValidKind(c.kind) && problems["kind"] == "" {
		problems["kind"] = "must be one of " + strings.Join(credential.Kinds, ", ")
	}
	c.number = strings.TrimSpace(f["number"])
	if problems["number"] == "" && !validNumber(c.number) {
		problems["number"] = "required: up to 64 letters, digits, spaces, dashes, dots or slashes"
	}
	c.issuer = strings.Join(strings.Fields(f["issuer"]), " ")
	if problems["issuer"] == "" && (c.issuer == "" || utf8.RuneCountInString(c.issuer) > 200 || !utf8.ValidString(c.issuer) ||
		strings.ContainsFunc(c.issuer, unicode.IsControl)) {
		problems["issuer"] = "required: the state or agency that issued it, at most 200 characters"
	}
	if problems["expires_on"] == "" {
		d, err := time.Parse(time.DateOnly, strings.TrimSpace(f["expires_on"]))
		if err != nil || d.Year() < 1900 || d.Year() > 2200 {
			problems["expires_on"] = "required: a date such as 2027-03-31"
		}
		c.expiresOn = d
	}
	return c, problems
}

func validNumber(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	norm := credential.NormalizeNumber(n)
	if norm == "" {
		return false
	}
	for _, r := range n {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune(" -./*", r)) {
			return false
		}
	}
	return true
}

type documentJSON struct {
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// credentialJSON is a credential as its tenant sees it: the number masked,
// the document described but never served.
type credentialJSON struct {
	ID         string              `json:"id"`
	ProID      string              `json:"pro_id"`
	Kind       string              `json:"kind"`
	Number     string              `json:"number"`
	Issuer     string              `json:"issuer"`
	ExpiresOn  string              `json:"expires_on"`
	Status     string              `json:"status"`
	Reasons    []credential.Result `json:"reasons"`
	Document   documentJSON        `json:"document"`
	CreatedAt  time.Time           `json:"created_at"`
	CheckedAt  *time.Time          `json:"checked_at"`
	ReviewedAt *time.Time          `json:"reviewed_at"`
	ExpiredAt  *time.Time          `json:"expired_at"`
}

func credentialView(c db.Credential, proExternalID string) credentialJSON {
	reasons := []credential.Result{}
	json.Unmarshal(c.Checks, &reasons) //nolint:errcheck // written by us as this type
	return credentialJSON{ID: c.ID.String(), ProID: proExternalID, Kind: c.Kind, Number: credential.Mask(c.Number),
		Issuer: c.Issuer, ExpiresOn: c.ExpiresOn.Time.Format(time.DateOnly), Status: c.Status, Reasons: reasons,
		Document:  documentJSON{Type: c.FileType, Size: c.FileSize, SHA256: c.FileSha256},
		CreatedAt: c.CreatedAt, CheckedAt: c.CheckedAt, ReviewedAt: c.ReviewedAt, ExpiredAt: c.ExpiredAt}
}

// errNoPro answers a request about a professional the tenant never
// uploaded a credential for (or has erased).
var errNoPro = fault.New(fault.NotFound, "no professional with this id has uploaded a credential")

// handleProDelete erases a professional (seed 000: "request deletion of
// your account and personal information"): their documents leave the file
// store, then their credentials, expiry notices and review trail leave the
// database, in one transaction that holds the professional against new
// uploads meanwhile. The files go first: a failure between the two leaves
// rows whose documents are gone, which the next DELETE finishes.
func (s *Server) handleProDelete(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	ext := r.PathValue("external_id")
	var deleted int
	err := s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		docs, err := q.ProLockDocuments(r.Context(), db.ProLockDocumentsParams{TenantID: p.TenantID, ExternalID: ext})
		if err != nil {
			return err
		}
		if len(docs) == 0 {
			return errNoPro
		}
		for _, d := range docs {
			if d.FileKey == nil {
				continue // a professional without credentials
			}
			if err := s.Files.Delete(r.Context(), *d.FileKey); err != nil { // one already gone is no error
				return fmt.Errorf("delete a credential document: %w", err)
			}
			deleted++
		}
		_, err = q.ProDelete(r.Context(), db.ProDeleteParams{TenantID: p.TenantID, ID: docs[0].ProID})
		return err
	})
	if err != nil {
		return err
	}
	s.logger.InfoContext(r.Context(), "professional erased", "credentials", deleted)
	encode(w, http.StatusOK, map[string]any{"pro_id": ext, "credentials_deleted": deleted})
	return nil
}

func (s *Server) handleCredentialList(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	ext := r.PathValue("external_id")
	var rows []db.Credential
	err := s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		pro, err := q.ProGetByExternalID(r.Context(), db.ProGetByExternalIDParams{TenantID: p.TenantID, ExternalID: ext})
		if err != nil {
			return err
		}
		rows, err = q.CredentialListByPro(r.Context(), db.CredentialListByProParams{TenantID: p.TenantID, ProID: pro.ID})
		return err
	})
	if db.IsNotFound(err) {
		return errNoPro
	}
	if err != nil {
		return err
	}
	out := make([]credentialJSON, len(rows))
	for i, c := range rows {
		out[i] = credentialView(c, ext)
	}
	encode(w, http.StatusOK, map[string]any{"pro_id": ext, "credentials": out})
	return nil
}
