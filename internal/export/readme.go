package export

import (
	"fmt"
	"strings"
)

// Readme is the README.txt inside an archive: what it is, how its files
// are written, and what each one holds.
func Readme(r Request, sources []Source, schema int64) string {
	var b strings.Builder
	b.WriteString("Errand data export\n==================\n\n")
	switch r.Scope {
	case ScopeContact:
		fmt.Fprintf(&b, "Everything Errand holds about one person (contact %q) for this account:\n", r.Contact.ExternalID)
		b.WriteString("their contact record, the messages sent to them, and their opt-out history.\n")
	default:
		b.WriteString("Everything Errand holds for this account.\n")
	}
	fmt.Fprintf(&b, "\nExport %s, generated %s (UTC), database schema version %d.\n",
		r.ExportID, r.GeneratedAt.UTC().Format("2006-01-02 15:04:05"), schema)
	b.WriteString("All files show the same moment: they were read in one database snapshot.\n\n")

	b.WriteString("Formats\n-------\n")
	if r.Format == FormatCSV {
		b.WriteString(`Tables are CSV (RFC 4180): UTF-8, comma-separated, a header row, fields with
commas, quotes or line breaks in double quotes. An empty field is a missing
value; "" is an empty text. A text that begins with = + - @, a tab or a
carriage return is written with a leading apostrophe (') so that spreadsheets
do not run it as a formula; plain numbers such as +13125550142 are kept as
they are.
`)
	} else {
		b.WriteString(`Tables are JSON, one object per row with the column names as keys:
.jsonl files hold one object per line (JSON Lines), .json files one array.
A missing value is null.
`)
	}
	b.WriteString(`Times are UTC in ISO 8601. Phone numbers are E.164 (+13125550142).
Addresses on the opt-out lists are kept only as keyed pseudonyms (hex), so an
opt-out can be honoured after the contact itself is erased.
manifest.json lists every file with its row count, size in bytes and SHA-256.

`)
	b.WriteString("Files\n-----\n")
	fmt.Fprintf(&b, "%-32s %s\n", ReadmeName, "This file.")
	for _, s := range sources {
		name, _ := s.fileName(r.Format)
		if s.Documents {
			name = "documents/" + s.File + "/"
		}
		fmt.Fprintf(&b, "%-32s %s\n", name, s.Description)
	}
	fmt.Fprintf(&b, "%-32s %s\n", ManifestName, "What is in this archive: tables, row counts, checksums.")
	b.WriteString(`
Not included: secrets (API key hashes, verification codes, which are never
stored in clear), and the 24-hour cache of API responses kept to make retried
requests safe.
`)
	return b.String()
}
