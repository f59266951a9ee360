package importer_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/importer"
)

// got is a record as the tests compare it.
type got struct {
	Line   int64
	Name   string
	Phone  string
	Email  string
	Extra  string // address | property type | closing date | notes | external id
	Reason string
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func readAll(t *testing.T, r io.Reader, opts importer.Options) (importer.Layout, []got) {
	t.Helper()
	rd, err := importer.NewReader(r, opts)
	require.NoError(t, err)
	var out []got
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		g := got{Line: rec.Line, Name: rec.Row.Name, Phone: str(rec.Row.Phone), Email: str(rec.Row.Email), Reason: rec.Reason}
		if rec.Reason == "" {
			date := ""
			if rec.Row.ClosingDate != nil {
				date = rec.Row.ClosingDate.Format(time.DateOnly)
			}
			g.Extra = strings.Join([]string{str(rec.Row.Address), str(rec.Row.PropertyType), date,
				str(rec.Row.Notes), str(rec.Row.ExternalID)}, "|")
		} else {
			g.Name, g.Phone, g.Email = "", "", ""
		}
		out = append(out, g)
	}
	return rd.Layout(), out
}

func fixture(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestMessyFiles(t *testing.T) {
	us := importer.Options{Region: "US"}
	cases := []struct {
		file      string
		encoding  string
		delimiter rune
		unknown   []string
		want      []got
	}{
		{"utf8_bom.csv", "utf-8-bom", ',', nil, []got{
			{2, "Zoë Adams", "+13125550142", "zoe@example.com", "||||c-1", ""},
			{3, "Bob Brown", "+13125550143", "", "||||c-2", ""},
		}},
		{"windows1252.csv", "windows-1252", ',', nil, []got{
			{2, "José Müller", "+13125550144", "", "|||“Café” owner|", ""},
			{3, "Renée Ångström", "+13125550145", "", "|||ok|", ""},
		}},
		{"utf16le.txt", "utf-16le", '\t', nil, []got{
			{2, "Łukasz Nowak", "+13125550146", "lukasz@example.com", "||||", ""},
			{3, "Ann Lee", "", "ann@example.com", "||||", ""},
		}},
		{"utf16be.csv", "utf-16be", ',', nil, []got{
			{2, "Mia Chen", "+13125550147", "", "||||", ""},
		}},
		{"crlf.csv", "utf-8", ',', nil, []got{
			{2, "Al Green", "+13125550148", "al@example.com", "||||", ""},
			{3, "Bea Hill", "+13125550149", "", "||||", ""},
		}},
		{"semicolon.csv", "utf-8", ';', nil, []got{
			{2, "Dupont, Jean", "+13125550150", "jean@example.com", "||2024-05-01||", ""},
			{3, "Eva Ruiz", "+13125550151", "", "||2024-05-01||", ""},
		}},
		{"tab.tsv", "utf-8", '\t', nil, []got{
			{2, "Tom Tab", "+13125550152", "tom@example.com", "||||77", ""},
			{3, "Uma Tab", "+13125550153", "", "||||78", ""},
		}},
		{"quoted_newlines.csv", "utf-8", ',', nil, []got{
			{2, "Nia Long", "+13125550154", "", "|||Gate code 12\nring twice\n\"back door\"|", ""},
			{5, "Omar Fox", "+13125550155", "", "|||plain|", ""},
			{6, "", "", "", "", "the phone number is not a valid number"},
		}},
		{"ragged.csv", "utf-8", ',', nil, []got{
			{2, "Pia Short", "+13125550156", "", "||||", ""},
			{3, "Quinn Long", "+13125550157", "q@example.com", "1 Main St||||", ""},
			{4, "", "", "", "", "the row has neither a phone number nor an email address"},
		}},
		{"blank_lines.csv", "utf-8", ',', nil, []got{
			{5, "Sue Blank", "+13125550158", "", "||||", ""},
			{9, "Tim Blank", "+13125550159", "", "||||", ""},
		}},
		{"wide40.csv", "utf-8", ',', nil, []got{
			{2, "Uma Wide", "+13125550160", "uma@example.com", "9 Elm St||||w-1", ""},
			{3, "Vic Wide", "+13125550161", "", "10 Elm St||||w-2", ""},
		}},
		{"first_last.csv", "utf-8", ',', nil, []got{
			{2, "Wes Ward", "+13125550162", "WES@example.com", "|Condo|2024-05-01|likes email|", ""},
			{3, "Solo", "", "solo@example.com", "||||", ""},
		}},
		{"dates.csv", "utf-8", ',', nil, []got{
			{2, "D One", "+13125550163", "", "||2024-05-01||", ""},
			{3, "D Two", "+13125550164", "", "||2024-05-01||", ""},
			{4, "D Three", "+13125550165", "", "||2024-05-01||", ""},
			{5, "", "", "", "", "the closing date is not a date we understand (use 2024-05-01 or 05/01/2024 (May 1))"},
			{6, "D Five", "+13125550166", "", "||||", ""}, // corrected below
		}},
	}
	cases[len(cases)-1].want[4].Phone = "+13125550167"
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			layout, rows := readAll(t, fixture(t, c.file), us)
			require.Equal(t, c.encoding, layout.Encoding)
			require.Equal(t, c.delimiter, layout.Delimiter)
			require.Equal(t, c.want, rows)
		})
	}
}

func TestWideFileListsUnknownColumns(t *testing.T) {
	layout, _ := readAll(t, fixture(t, "wide40.csv"), importer.Options{Region: "US"})
	require.Len(t, layout.Header, 40)
	require.Len(t, layout.Unknown, 34)
	require.Equal(t, "Col00", layout.Unknown[0])
}

func TestNoIdentityColumnFailsFast(t *testing.T) {
	_, err := importer.NewReader(fixture(t, "no_identity.csv"), importer.Options{Region: "US"})
	var le *importer.LayoutError
	require.ErrorAs(t, err, &le)
	require.Contains(t, le.Reason, "no phone or email column")
	require.Contains(t, le.Reason, "Name, Address, Notes")
}

func TestExplicitMapping(t *testing.T) {
	in := "Client,Digits,Where\nAmy,3125550170,Here\n"
	_, rows := readAll(t, strings.NewReader(in), importer.Options{Region: "US",
		Mapping: map[importer.Field]string{importer.Phone: "digits", importer.Name: "CLIENT", importer.Address: "where"}})
	require.Equal(t, []got{{2, "Amy", "+13125550170", "", "Here||||", ""}}, rows)

	_, err := importer.NewReader(strings.NewReader(in), importer.Options{Mapping: map[importer.Field]string{importer.Phone: "nope"}})
	require.ErrorContains(t, err, `the file has no column "nope"`)
	_, err = importer.NewReader(strings.NewReader(in), importer.Options{Mapping: map[importer.Field]string{"shoe_size": "Client"}})
	require.ErrorContains(t, err, `"shoe_size" is not a field`)
}

func TestInvalidBytesAfterTheSniffedHeadAreRejectedNotGarbled(t *testing.T) {
	layout, rows := readAll(t, fixture(t, "late_bad_bytes.csv"), importer.Options{Region: "US"})
	require.Equal(t, "utf-8", layout.Encoding)
	require.Len(t, rows, 702)
	require.Equal(t, int64(702), rows[700].Line)
	require.Contains(t, rows[700].Reason, "encoding")
	require.Equal(t, "Good End", rows[701].Name)
}

// A small UTF-8 file (all of it in the sniffed head) with one stray byte
// from another encoding is still UTF-8: its many valid multi-byte
// characters decide, the row with the stray byte is rejected, and no "ë"
// turns into "Ã«".
func TestStrayByteInASmallUTF8FileRejectsOnlyItsRow(t *testing.T) {
	layout, rows := readAll(t, fixture(t, "utf8_stray_byte.csv"), importer.Options{Region: "US"})
	require.Equal(t, "utf-8", layout.Encoding)
	require.Equal(t, []got{
		{2, "Zoë Vermeulen", "+13125550181", "zoe.v@example.com", "|||Café regular|", ""},
		{3, "Chloë Brontë", "+13125550182", "", "||||", ""},
		{4, "", "", "", "", "the row contains characters that cannot be read as text (check the file's encoding)"},
		{5, "Renée Ångström", "+13125550184", "", "|||naïve “quotes”|", ""},
	}, rows)
}

// A file of Windows-1252 text is still recognised as such when a few of
// its byte pairs happen to be valid UTF-8.
func TestWindows1252WinsWhenMostHighBytesAreNotUTF8(t *testing.T) {
	in := "Name,Phone,Notes\nJos\xe9 M\xfcller,3125550185,\xc3\xa9t\xe9 caf\xe9 na\xefve\n"
	_, rows := readAll(t, strings.NewReader(in), importer.Options{Region: "US"})
	require.Equal(t, "José Müller", rows[0].Name)
}

func TestDayFirstRegions(t *testing.T) {
	d, ok := importer.ParseDate("05/01/2024", true)
	require.True(t, ok)
	require.Equal(t, "2024-01-05", d.Format(time.DateOnly))
	d, ok = importer.ParseDate("05/01/2024", false)
	require.True(t, ok)
	require.Equal(t, "2024-05-01", d.Format(time.DateOnly))
}

func TestFieldCaps(t *testing.T) {
	in := "Name,Phone,Notes\nAmy," + "3125550171," + strings.Repeat("n", importer.MaxNotes+1) + "\n"
	_, rows := readAll(t, strings.NewReader(in), importer.Options{Region: "US"})
	require.Equal(t, "notes is longer than 5000 characters", rows[0].Reason)
}

func TestUnclosedQuoteStopsWithoutReadingTheRestIntoMemory(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("Name,Phone\nAmy,3125550172\n\"Open,")
	b.WriteString(strings.Repeat("x", importer.MaxRecordBytes+64<<10))
	rd, err := importer.NewReader(&b, importer.Options{Region: "US"})
	require.NoError(t, err)
	rec, err := rd.Next()
	require.NoError(t, err)
	require.Equal(t, "Amy", rec.Row.Name)
	_, err = rd.Next()
	var fe *importer.FileError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, int64(3), fe.Line)
	require.Contains(t, fe.Reason, "quotation mark")
}

func TestSkipResumesAtTheSameRecord(t *testing.T) {
	in := "Name,Phone\nA,3125550173\n\nB,\"3125550174\"\nC,3125550175\n"
	rd, err := importer.NewReader(strings.NewReader(in), importer.Options{Region: "US"})
	require.NoError(t, err)
	_, err = rd.Next()
	require.NoError(t, err)
	_, err = rd.Next()
	require.NoError(t, err)
	mark := rd.Records()

	rd2, err := importer.NewReader(strings.NewReader(in), importer.Options{Region: "US"})
	require.NoError(t, err)
	require.NoError(t, rd2.Skip(mark))
	rec, err := rd2.Next()
	require.NoError(t, err)
	require.Equal(t, "C", rec.Row.Name)
	require.Equal(t, int64(5), rec.Line)
}

// FuzzReader: whatever the bytes, the reader never panics, and every
// non-blank record after the header comes out either as a row with a
// phone or an email, or with a reason. Where the records can be counted
// independently (plain UTF-8 that encoding/csv reads to the end), the
// reader returns exactly those records, at the lines encoding/csv reports
// them: none lost, none invented.
func FuzzReader(f *testing.F) {
	entries, _ := os.ReadDir("testdata")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata", e.Name()))
		if err == nil && len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Add([]byte("Phone\n\"unterminated"))
	f.Add([]byte("\xff\xfeP\x00h\x00o\x00n\x00e\x00"))
	f.Add([]byte("Name;Phone\n\n\"A;\nB\";3125550101\n ; \nC;x\r\nD;3125550102"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := importer.NewReader(bytes.NewReader(data), importer.Options{Region: "US"})
		if err != nil {
			var le *importer.LayoutError
			if !errors.As(err, &le) {
				t.Fatalf("NewReader: unexpected error type %T: %v", err, err)
			}
			return
		}
		var lines []int64
		complete := true
		last := int64(0)
		for {
			rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				var fe *importer.FileError
				if !errors.As(err, &fe) {
					t.Fatalf("Next: unexpected error type %T: %v", err, err)
				}
				complete = false
				break
			}
			if rec.Line <= last {
				t.Fatalf("lines do not increase: %d after %d", rec.Line, last)
			}
			last = rec.Line
			lines = append(lines, rec.Line)
			if rec.Reason == "" && rec.Row.Phone == nil && rec.Row.Email == nil {
				t.Fatalf("record at line %d accepted without a phone or email", rec.Line)
			}
		}
		want, ok := csvRecordLines(data, rd.Layout().Delimiter)
		if !complete || !ok {
			return
		}
		if !slices.Equal(want, lines) {
			t.Fatalf("records at lines %v, encoding/csv reads %v", lines, want)
		}
	})
}

// csvRecordLines reads data as the importer would when it is plain UTF-8
// (no BOM, no NUL, so neither transcoded nor taken for UTF-16) and returns
// the lines of the non-blank records after the header; ok is false when
// that cannot be done (another encoding, or encoding/csv gives up).
func csvRecordLines(data []byte, delim rune) (lines []int64, ok bool) {
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 || bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return nil, false
	}
	c := csv.NewReader(bytes.NewReader(data))
	c.Comma, c.FieldsPerRecord, c.LazyQuotes = delim, -1, true
	header := false
	for {
		rec, err := c.Read()
		if errors.Is(err, io.EOF) {
			return lines, true
		}
		if err != nil {
			return nil, false
		}
		if isBlank(rec) {
			continue
		}
		if !header {
			header = true
			continue
		}
		line, _ := c.FieldPos(0)
		lines = append(lines, int64(line))
	}
}

func isBlank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}
