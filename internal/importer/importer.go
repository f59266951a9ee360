// Package importer reads the client lists people upload (issue 5): CSV
// files exported from spreadsheets and old CRMs, in whatever encoding,
// separator and header wording they came in, one record at a time. It
// detects the encoding (UTF-8 with or without a BOM, UTF-16 from Excel,
// Windows-1252 for text whose high bytes are mostly not UTF-8) and the separator
// (comma, semicolon or tab), maps the header to Errand's fields, and turns
// each record into a normalised Row or a reason a person understands why
// it was rejected, with the physical line it started on.
//
// It streams: nothing is held but the record being read (a record longer
// than MaxRecordBytes stops the file, since it means a quote was left
// open). Reasons never repeat the cell values, so they are safe to log;
// the rejected record itself is returned for the error report.
package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	xunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"

	"github.com/errandhq/errand/internal/normalize"
)

// Field is one of the things Errand keeps about a client.
type Field string

// The fields a file can map its columns to.
const (
	ExternalID   Field = "external_id"
	Name         Field = "name"
	FirstName    Field = "first_name"
	LastName     Field = "last_name"
	Phone        Field = "phone"
	Email        Field = "email"
	Address      Field = "address"
	PropertyType Field = "property_type"
	ClosingDate  Field = "closing_date"
	Notes        Field = "notes"
)

// Fields lists every field, in the order the API documents them.
var Fields = []Field{ExternalID, Name, FirstName, LastName, Phone, Email, Address, PropertyType, ClosingDate, Notes}

// aliases are the header names (folded: lower case, letters and digits
// only) recognised for each field. For phone and email every matching
// column is kept, in file order: a blank first one falls back to the next.
var aliases = map[string]Field{
	"externalid": ExternalID, "id": ExternalID, "clientid": ExternalID, "customerid": ExternalID,
	"contactid": ExternalID, "crmid": ExternalID, "recordid": ExternalID, "clientnumber": ExternalID,
	"customernumber": ExternalID, "accountnumber": ExternalID,

	"name": Name, "fullname": Name, "clientname": Name, "customername": Name, "contactname": Name,
	"displayname": Name,
	"firstname":   FirstName, "first": FirstName, "givenname": FirstName, "forename": FirstName, "fname": FirstName,
	"lastname": LastName, "last": LastName, "surname": LastName, "familyname": LastName, "lname": LastName,

	"phone": Phone, "phonenumber": Phone, "phoneno": Phone, "mobile": Phone, "mobilephone": Phone,
	"mobilenumber": Phone, "cell": Phone, "cellphone": Phone, "cellnumber": Phone, "telephone": Phone,
	"tel": Phone, "primaryphone": Phone, "homephone": Phone, "workphone": Phone, "phone1": Phone,
	"phone2": Phone, "contactnumber": Phone,

	"email": Email, "emailaddress": Email, "mail": Email, "primaryemail": Email, "email1": Email,
	"email2": Email, "emailaddress1": Email,

	"address": Address, "propertyaddress": Address, "streetaddress": Address, "mailingaddress": Address,
	"homeaddress": Address, "street": Address, "fulladdress": Address,

	"propertytype": PropertyType, "hometype": PropertyType, "typeofproperty": PropertyType,

	"closingdate": ClosingDate, "closedate": ClosingDate, "closedon": ClosingDate, "closing": ClosingDate,
	"dateclosed": ClosingDate, "closeddate": ClosingDate, "settlementdate": ClosingDate,

	"notes": Notes, "note": Notes, "comments": Notes, "comment": Notes, "remarks": Notes,
}

// Fold reduces a header to what matching compares: lower-case letters and
// digits (case, spacing and punctuation ignored).
func Fold(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// Caps on field lengths, in characters.
const (
	MaxExternalID   = 200
	MaxName         = 200
	MaxAddress      = 500
	MaxPropertyType = 100
	MaxNotes        = 5000
)

// MaxRecordBytes bounds one record: longer means a quote was left open,
// and reading on would hold the rest of the file in memory.
const MaxRecordBytes = 1 << 20

// sniffBytes is how much of the file decides its encoding and separator.
const sniffBytes = 64 << 10

// Options say how to read a file.
type Options struct {
	// Mapping maps fields to header names (compared folded), overriding
	// the aliases for those fields.
	Mapping map[Field]string
	// Region is the tenant's default phone region (ISO 3166, e.g. "US"),
	// which also decides whether 05/01/2024 is May 1 (US) or 5 January.
	Region string
}

// Layout is what the reader found at the top of the file.
type Layout struct {
	Encoding  string // utf-8, utf-8-bom, utf-16le, utf-16be, windows-1252
	Delimiter rune
	Header    []string
	Columns   map[Field][]int // field → column indexes, in file order
	Unknown   []string        // headers mapped to nothing (ignored)
}

// LayoutError is a file that cannot be imported at all (no identity
// column, an empty file, a mapping naming a missing column).
type LayoutError struct{ Reason string }

func (e *LayoutError) Error() string { return e.Reason }

// FileError stops reading part-way (a record too long, unreadable bytes).
type FileError struct {
	Line   int64
	Reason string
}

func (e *FileError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Row is a record's normalised values; nil = blank.
type Row struct {
	ExternalID   *string
	Name         string
	Phone        *string // E.164
	Email        *string
	Address      *string
	PropertyType *string
	ClosingDate  *time.Time
	Notes        *string
}

// Record is one record of the file: a Row, or the reason it was rejected.
type Record struct {
	Line   int64    // the physical line the record starts on (the header is usually line 1)
	Raw    []string // the cells as uploaded (after transcoding)
	Row    Row
	Reason string // non-empty: rejected
}

// Reader reads records one at a time.
type Reader struct {
	opts    Options
	layout  Layout
	csv     *csv.Reader
	guard   *recordGuard
	records int64 // CSV records consumed, the header included
	endLine int64 // the physical line the last record ended on
	dayMon  bool  // dates like 05/01/2024 are day first
}

// NewReader detects r's encoding and separator, reads the header and maps
// it. A *LayoutError means the file cannot be imported.
func NewReader(r io.Reader, opts Options) (*Reader, error) {
	raw := bufio.NewReaderSize(r, sniffBytes)
	head, err := raw.Peek(sniffBytes)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	enc, decoded := decode(raw, head)
	text := bufio.NewReaderSize(decoded, sniffBytes)
	thead, err := text.Peek(sniffBytes)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	delim := sniffDelimiter(thead)
	guard := &recordGuard{r: text}
	c := csv.NewReader(guard)
	c.Comma = delim
	c.FieldsPerRecord = -1
	c.LazyQuotes = true
	rd := &Reader{opts: opts, csv: c, guard: guard, dayMon: !monthFirst(opts.Region)}
	rd.layout = Layout{Encoding: enc, Delimiter: delim}

	var header []string
	for {
		rec, err := rd.read()
		if errors.Is(err, io.EOF) {
			return nil, &LayoutError{Reason: "the file is empty: no header row was found"}
		}
		if err != nil {
			var fe *FileError
			if errors.As(err, &fe) {
				return nil, &LayoutError{Reason: "the header row cannot be read: " + fe.Reason}
			}
			return nil, err
		}
		if !blank(rec) {
			header = rec
			break
		}
	}
	for i, h := range header {
		h = strings.TrimSpace(strings.ToValidUTF8(h, "\uFFFD"))
		if i == 0 {
			h = strings.TrimPrefix(h, "\uFEFF") // a BOM that survived double encoding
		}
		header[i] = h
	}
	rd.layout.Header = header
	if err := rd.mapHeader(); err != nil {
		return nil, err
	}
	return rd, nil
}

// Layout is what the reader found at the top of the file.
func (rd *Reader) Layout() Layout { return rd.layout }

// Records is how many CSV records have been consumed, the header included:
// the resume point to give Skip.
func (rd *Reader) Records() int64 { return rd.records }

// Skip reads on, without validating, until n records have been consumed
// (resuming after the last committed batch). It returns the line reached.
func (rd *Reader) Skip(n int64) error {
	for rd.records < n {
		if _, err := rd.read(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	return nil
}

// read returns the next CSV record, counted.
func (rd *Reader) read() ([]string, error) {
	rd.guard.n = 0
	rec, err := rd.csv.Read()
	if err != nil {
		if errors.Is(err, errTooLong) {
			// FieldPos is not valid after an error: the record starts
			// after the last one read (blank lines aside).
			return nil, &FileError{Line: rd.endLine + 1, Reason: fmt.Sprintf(
				"a record is longer than %d bytes; is a quotation mark left open?", MaxRecordBytes)}
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// With lazy quotes and ragged rows allowed encoding/csv has
			// little left to complain about; whatever it is, stop here.
			return nil, &FileError{Line: int64(pe.StartLine), Reason: "the file is not valid CSV here"}
		}
		return nil, err // io.EOF, or reading the stored file failed
	}
	rd.records++
	if n := len(rec); n > 0 {
		line, _ := rd.csv.FieldPos(n - 1)
		rd.endLine = int64(line + strings.Count(rec[n-1], "\n"))
	}
	return rec, nil
}

// Next returns the next non-blank record, validated: io.EOF at the end, a
// *FileError if the rest of the file cannot be read.
func (rd *Reader) Next() (Record, error) {
	for {
		rec, err := rd.read()
		if err != nil {
			return Record{}, err
		}
		if blank(rec) {
			continue
		}
		line, _ := rd.csv.FieldPos(0)
		out := Record{Line: int64(line), Raw: rec}
		out.Row, out.Reason = rd.validate(rec)
		return out, nil
	}
}

// blank reports whether every cell of rec is empty or spaces (a blank
// line, or a row of separators).
func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// mapHeader maps the header's columns to fields.
func (rd *Reader) mapHeader() error {
	cols := map[Field][]int{}
	explicit := map[int]bool{}
	for f, name := range rd.opts.Mapping {
		if !slices.Contains(Fields, f) {
			return &LayoutError{Reason: fmt.Sprintf("mapping: %q is not a field (fields: %s)", f, fieldList())}
		}
		want := Fold(name)
		idx := -1
		for i, h := range rd.layout.Header {
			if Fold(h) == want && want != "" {
				idx = i
				break
			}
		}
		if idx < 0 {
			return &LayoutError{Reason: fmt.Sprintf("mapping: the file has no column %q (for %s)", name, f)}
		}
		cols[f] = []int{idx}
		explicit[idx] = true
	}
	var unknown []string
	for i, h := range rd.layout.Header {
		if explicit[i] {
			continue
		}
		f, ok := aliases[Fold(h)]
		if !ok {
			if h != "" {
				unknown = append(unknown, h)
			}
			continue
		}
		if _, set := rd.opts.Mapping[f]; set {
			unknown = append(unknown, h) // the caller chose another column
			continue
		}
		if f != Phone && f != Email && len(cols[f]) > 0 {
			unknown = append(unknown, h) // a second column for a one-column field
			continue
		}
		cols[f] = append(cols[f], i)
	}
	if len(cols[Phone]) == 0 && len(cols[Email]) == 0 {
		return &LayoutError{Reason: "no phone or email column was recognised, so no row could identify a client " +
			"(expected a header such as \"Phone\", \"Mobile\", \"Email\" or \"E-mail Address\"; " +
			"or pass a mapping such as {\"phone\": \"Your Column\"}); the header was: " +
			strings.Join(rd.layout.Header, ", ")}
	}
	rd.layout.Columns = cols
	rd.layout.Unknown = unknown
	return nil
}

func fieldList() string {
	s := make([]string, len(Fields))
	for i, f := range Fields {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// cell returns field f's first non-blank value in rec, trimmed.
func (rd *Reader) cell(rec []string, f Field) string {
	for _, i := range rd.layout.Columns[f] {
		if i < len(rec) {
			if v := strings.TrimSpace(rec[i]); v != "" {
				return v
			}
		}
	}
	return ""
}

// validate turns a record into a Row, or a reason.
func (rd *Reader) validate(rec []string) (Row, string) {
	var row Row
	for _, cols := range rd.layout.Columns {
		for _, i := range cols {
			if i < len(rec) && (!utf8.ValidString(rec[i]) || strings.ContainsRune(rec[i], 0)) {
				return row, "the row contains characters that cannot be read as text (check the file's encoding)"
			}
		}
	}
	capped := func(f Field, max int) (*string, string) {
		v := rd.cell(rec, f)
		if v == "" {
			return nil, ""
		}
		if utf8.RuneCountInString(v) > max {
			return nil, fmt.Sprintf("%s is longer than %d characters", strings.ReplaceAll(string(f), "_", " "), max)
		}
		return &v, ""
	}
	var why string
	if row.ExternalID, why = capped(ExternalID, MaxExternalID); why != "" {
		return row, why
	}
	if row.ExternalID != nil && strings.IndexFunc(*row.ExternalID, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return row, "external_id contains characters that cannot be printed"
	}
	name := rd.cell(rec, Name)
	if name == "" {
		name = strings.TrimSpace(rd.cell(rec, FirstName) + " " + rd.cell(rec, LastName))
	}
	name = strings.Join(strings.Fields(name), " ")
	if utf8.RuneCountInString(name) > MaxName {
		return row, fmt.Sprintf("name is longer than %d characters", MaxName)
	}
	row.Name = name
	if v := rd.cell(rec, Phone); v != "" {
		p, err := normalize.Phone(v, rd.opts.Region)
		if err != nil {
			if errors.Is(err, normalize.ErrPhoneRegion) {
				return row, "the phone number has no country code, and the account has no default region to read it in"
			}
			return row, "the phone number is not a valid number"
		}
		row.Phone = &p
	}
	if v := rd.cell(rec, Email); v != "" {
		e, err := normalize.Email(v)
		if err != nil {
			return row, "the email address is not valid"
		}
		row.Email = &e
	}
	if row.Phone == nil && row.Email == nil {
		return row, "the row has neither a phone number nor an email address"
	}
	if row.Address, why = capped(Address, MaxAddress); why != "" {
		return row, why
	}
	if row.PropertyType, why = capped(PropertyType, MaxPropertyType); why != "" {
		return row, why
	}
	if row.Notes, why = capped(Notes, MaxNotes); why != "" {
		return row, why
	}
	if v := rd.cell(rec, ClosingDate); v != "" {
		d, ok := ParseDate(v, rd.dayMon)
		if !ok {
			example := "05/01/2024 (May 1)"
			if rd.dayMon {
				example = "01/05/2024 (1 May)"
			}
			return row, "the closing date is not a date we understand (use 2024-05-01 or " + example + ")"
		}
		row.ClosingDate = &d
	}
	return row, ""
}

// monthFirst reports whether a region writes 05/01/2024 for May 1.
func monthFirst(region string) bool {
	switch strings.ToUpper(region) {
	case "", "US", "CA", "PH", "PR", "GU", "VI", "AS", "MP", "UM", "FM", "MH", "PW":
		return true
	}
	return false
}

var (
	isoLayouts      = []string{"2006-01-02", "2006/01/02", "2006.01.02", "20060102", time.RFC3339, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04"}
	monthLayouts    = []string{"01/02/2006", "1/2/2006", "01-02-2006", "1-2-2006", "01/02/06", "1/2/06", "1/2/2006 15:04", "1/2/2006 3:04 PM", "1/2/2006 15:04:05"}
	dayLayouts      = []string{"02/01/2006", "2/1/2006", "02-01-2006", "2-1-2006", "02.01.2006", "2.1.2006", "02/01/06", "2/1/06", "2/1/2006 15:04"}
	wordLayouts     = []string{"Jan 2, 2006", "January 2, 2006", "2 Jan 2006", "2 January 2006", "02-Jan-2006", "2-Jan-2006", "Jan 2 2006", "January 2 2006", "02-Jan-06"}
	earliestClosing = time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ParseDate reads a date in the common formats; dayFirst decides
// ambiguous ones like 05/01/2024.
func ParseDate(s string, dayFirst bool) (time.Time, bool) {
	s = strings.TrimSpace(s)
	groups := [][]string{isoLayouts, monthLayouts, dayLayouts, wordLayouts}
	if dayFirst {
		groups[1], groups[2] = dayLayouts, monthLayouts
	}
	for _, g := range groups {
		for _, l := range g {
			if t, err := time.Parse(l, s); err == nil {
				d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
				if d.Before(earliestClosing) || d.Year() > 9999 {
					return time.Time{}, false
				}
				return d, true
			}
		}
	}
	return time.Time{}, false
}

// decode picks the encoding from the file's first bytes and returns a
// UTF-8 reader of its text.
func decode(raw *bufio.Reader, head []byte) (string, io.Reader) {
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		raw.Discard(3) //nolint:errcheck // peeked
		return "utf-8-bom", raw
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}):
		return "utf-16le", transform.NewReader(raw, xunicode.UTF16(xunicode.LittleEndian, xunicode.ExpectBOM).NewDecoder())
	case bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return "utf-16be", transform.NewReader(raw, xunicode.UTF16(xunicode.BigEndian, xunicode.ExpectBOM).NewDecoder())
	}
	if le, be := utf16Guess(head); le {
		return "utf-16le", transform.NewReader(raw, xunicode.UTF16(xunicode.LittleEndian, xunicode.IgnoreBOM).NewDecoder())
	} else if be {
		return "utf-16be", transform.NewReader(raw, xunicode.UTF16(xunicode.BigEndian, xunicode.IgnoreBOM).NewDecoder())
	}
	if looksUTF8(head) {
		// Invalid bytes (a stray one in the sample, or any later in the
		// file) reject their rows (validate): nothing is stored garbled.
		return "utf-8", raw
	}
	return "windows-1252", transform.NewReader(raw, charmap.Windows1252.NewDecoder())
}

// utf16Guess recognises UTF-16 without a BOM from its NUL bytes: ASCII
// text has one in every other position.
func utf16Guess(head []byte) (le, be bool) {
	n := min(len(head), 4096) &^ 1
	if n < 4 {
		return false, false
	}
	var even, odd int
	for i := 0; i < n; i += 2 {
		if head[i] == 0 {
			even++
		}
		if head[i+1] == 0 {
			odd++
		}
	}
	pairs := n / 2
	return odd*10 > pairs*7 && even*10 < pairs, even*10 > pairs*7 && odd*10 < pairs
}

// looksUTF8 reports whether the sample head reads as UTF-8: no invalid
// bytes at all, or more valid multi-byte characters than invalid bytes (a
// UTF-8 file with a stray byte pasted from elsewhere: decoding all of it
// as Windows-1252 would turn every "ë" into "Ã«"; instead the rows with
// the stray bytes are rejected). Windows-1252 text writes its accented
// letters as lone high bytes, each invalid in UTF-8, and hardly ever forms
// a valid multi-byte sequence. A character cut off at the end of a full
// sample is not counted.
func looksUTF8(head []byte) bool {
	full := len(head) >= sniffBytes
	multi, invalid := 0, 0
	for i := 0; i < len(head); {
		r, size := utf8.DecodeRune(head[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			if full && !utf8.FullRune(head[i:]) {
				i = len(head) // the sample ends inside a character
				continue
			}
			invalid++
		case size > 1:
			multi++
		}
		i += size
	}
	return invalid == 0 || multi > invalid
}

// sniffDelimiter picks the separator the header line uses most: comma,
// semicolon or tab (comma when none).
func sniffDelimiter(head []byte) rune {
	counts := map[rune]int{}
	quoted := false
	for _, c := range string(head) {
		if c == '"' {
			quoted = !quoted
			continue
		}
		if quoted {
			continue
		}
		if c == '\n' {
			if counts[','] > 0 || counts[';'] > 0 || counts['\t'] > 0 {
				break
			}
			continue // a leading blank line
		}
		if c == ',' || c == ';' || c == '\t' {
			counts[c]++
		}
	}
	best := ','
	for _, c := range []rune{';', '\t'} {
		if counts[c] > counts[best] {
			best = c
		}
	}
	return best
}

var errTooLong = errors.New("record too long")

// recordGuard bounds what encoding/csv may read for one record.
type recordGuard struct {
	r io.Reader
	n int
}

func (g *recordGuard) Read(p []byte) (int, error) {
	if g.n > MaxRecordBytes {
		return 0, errTooLong
	}
	n, err := g.r.Read(p)
	g.n += n
	return n, err
}
