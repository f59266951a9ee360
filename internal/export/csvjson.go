package export

import (
	"io"

	"github.com/jackc/pgx/v5/pgtype"
)

// csvToJSON turns PostgreSQL's CSV output (COPY … FORMAT csv, no header)
// into one JSON object per line, typed by the query's columns. Building
// JSON in PostgreSQL (row_to_json) costs the server twice what plain CSV
// does; here the work runs beside it in the exporting process instead.
//
// Values come out as row_to_json would write them: NULL (an unquoted empty
// field) as null, numbers and booleans bare, json and jsonb as JSON,
// timestamps as ISO 8601 with a "T" and a full offset, the rest as
// strings.
type csvToJSON struct {
	w      io.Writer
	cols   []jsonColumn
	state  guardState // reuses the CSV states: atCellStart, inUnquoted, inQuoted, afterQuote
	cell   []byte     // the current field, unescaped
	quoted bool       // the current field was quoted (so empty means "", not NULL)
	field  int        // index of the current field in its record
	out    []byte     // the current record's JSON
	rows   int64
	err    error
}

type jsonKind uint8

const (
	jsonString jsonKind = iota
	jsonNumber
	jsonBool
	jsonRaw  // json, jsonb
	jsonTime // timestamp, timestamptz
)

type jsonColumn struct {
	key  []byte // `"name":`
	kind jsonKind
}

// jsonColumns maps result columns to how their values are written.
func jsonColumns(names []string, oids []uint32) []jsonColumn {
	cols := make([]jsonColumn, len(names))
	for i, n := range names {
		k := jsonString
		switch oids[i] {
		case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID, pgtype.NumericOID, pgtype.OIDOID:
			k = jsonNumber
		case pgtype.BoolOID:
			k = jsonBool
		case pgtype.JSONOID, pgtype.JSONBOID:
			k = jsonRaw
		case pgtype.TimestamptzOID, pgtype.TimestampOID:
			k = jsonTime
		}
		key := appendJSONString(nil, []byte(n))
		cols[i] = jsonColumn{key: append(key, ':'), kind: k}
	}
	return cols
}

func newCSVToJSON(w io.Writer, cols []jsonColumn) *csvToJSON {
	return &csvToJSON{w: w, cols: cols, cell: make([]byte, 0, 256), out: make([]byte, 0, 1024)}
}

func (c *csvToJSON) Rows() int64 { return c.rows }

// Write implements io.Writer.
func (c *csvToJSON) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for i := 0; i < len(p); {
		switch c.state {
		case atCellStart:
			if p[i] == '"' {
				c.quoted = true
				c.state = inQuoted
				i++
				continue
			}
			c.state = inUnquoted
		case inUnquoted:
			j := i
			for j < len(p) && p[j] != ',' && p[j] != '\n' {
				j++
			}
			c.cell = append(c.cell, p[i:j]...)
			i = j
			if i < len(p) {
				c.endField(p[i] == '\n')
				i++
			}
		case inQuoted:
			j := i
			for j < len(p) && p[j] != '"' {
				j++
			}
			c.cell = append(c.cell, p[i:j]...)
			i = j
			if i < len(p) {
				c.state = afterQuote
				i++
			}
		case afterQuote:
			switch p[i] {
			case '"':
				c.cell = append(c.cell, '"')
				c.state = inQuoted
			case ',', '\n':
				c.endField(p[i] == '\n')
			default: // not PostgreSQL's output; keep the byte
				c.cell = append(c.cell, p[i])
				c.state = inUnquoted
			}
			i++
		default:
			c.state = atCellStart
		}
		if c.err != nil {
			return 0, c.err
		}
	}
	return len(p), nil
}

// endField writes the finished field, and the record if it was the last.
func (c *csvToJSON) endField(last bool) {
	if c.field == 0 {
		c.out = append(c.out[:0], '{')
	} else {
		c.out = append(c.out, ',')
	}
	col := jsonColumn{key: []byte(`"?":`)}
	if c.field < len(c.cols) {
		col = c.cols[c.field]
	}
	c.out = append(c.out, col.key...)
	c.out = appendJSONValue(c.out, c.cell, c.quoted, col.kind)
	c.cell, c.quoted, c.state = c.cell[:0], false, atCellStart
	c.field++
	if !last {
		return
	}
	c.out = append(c.out, '}', '\n')
	c.field = 0
	c.rows++
	if _, err := c.w.Write(c.out); err != nil {
		c.err = err
	}
}

// Close implements io.Closer; PostgreSQL ends every record with a newline.
func (c *csvToJSON) Close() error { return c.err }

func appendJSONValue(dst, v []byte, quoted bool, kind jsonKind) []byte {
	if len(v) == 0 && !quoted {
		return append(dst, "null"...)
	}
	switch kind {
	case jsonNumber:
		if plainJSONNumber(v) {
			return append(dst, v...)
		}
	case jsonBool:
		switch string(v) {
		case "t":
			return append(dst, "true"...)
		case "f":
			return append(dst, "false"...)
		}
	case jsonRaw:
		return append(dst, v...)
	case jsonTime:
		return appendISOTime(dst, v)
	}
	return appendJSONString(dst, v)
}

// plainJSONNumber rejects what PostgreSQL prints for numbers that JSON
// has no literal for (NaN, Infinity).
func plainJSONNumber(v []byte) bool {
	for _, b := range v {
		if (b < '0' || b > '9') && b != '-' && b != '+' && b != '.' && b != 'e' && b != 'E' {
			return false
		}
	}
	return len(v) > 0
}

// appendISOTime writes PostgreSQL's ISO timestamp ("2026-03-01
// 12:00:00.5+00") as row_to_json does ("2026-03-01T12:00:00.5+00:00").
// Anything else (infinity, BC dates) is written as it is.
func appendISOTime(dst, v []byte) []byte {
	if len(v) < 19 || v[10] != ' ' || v[4] != '-' || v[len(v)-1] == 'C' {
		return appendJSONString(dst, v)
	}
	dst = append(dst, '"')
	dst = append(dst, v[:10]...)
	dst = append(dst, 'T')
	dst = append(dst, v[11:]...)
	// An offset of whole hours ("+00", "-05") gets its minutes.
	if n := len(v); n >= 22 && (v[n-3] == '+' || v[n-3] == '-') {
		dst = append(dst, ":00"...)
	}
	return append(dst, '"')
}

// needsEscape marks the bytes a JSON string cannot hold as they are.
var needsEscape = func() (t [256]bool) {
	for i := 0; i < 0x20; i++ {
		t[i] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONString writes s (valid UTF-8) as a JSON string.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !needsEscape[b] {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch b {
		case '"', '\\':
			dst = append(dst, '\\', b)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
