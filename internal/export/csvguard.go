package export

import (
	"io"
)

// formulaGuard rewrites PostgreSQL's CSV output (COPY … FORMAT csv: comma,
// double quote, LF between records) on its way to the archive, so that no
// cell opens as a formula in a spreadsheet (CSV injection): a cell whose
// first character is = + - @, a tab or a carriage return gets a leading
// apostrophe. A cell that is a plain number (+13125550142, -4, -2.5) is
// left alone: digits cannot call anything, and E.164 phone numbers must
// stay portable.
//
// It is a byte-level state machine, so it streams: nothing is buffered but
// the start of a cell beginning with + or - while it still looks like a
// number (at most maxNumber bytes). It also counts records, for progress.
type formulaGuard struct {
	w       io.Writer
	state   guardState
	pending []byte // held start of a +/- cell while it may be a number
	rows    int64  // records finished, the header included
	err     error
}

type guardState uint8

const (
	atCellStart       guardState = iota
	inUnquoted                   // inside an unquoted cell
	atQuotedStart                // just after a cell's opening quote
	inQuoted                     // inside a quoted cell
	afterQuote                   // a quote inside a quoted cell: closing, or the first of a doubled pair
	pendingUnquoted              // an unquoted cell that so far is [+-][0-9.]*
	pendingQuoted                // the same, quoted
	pendingAfterQuote            // a quote after a pending quoted cell
)

// maxNumber bounds a held cell: a longer "number" is not one we keep as is.
const maxNumber = 64

func newFormulaGuard(w io.Writer) *formulaGuard {
	return &formulaGuard{w: w, pending: make([]byte, 0, maxNumber+1)}
}

// Rows is the number of records written so far, the header included.
func (g *formulaGuard) Rows() int64 { return g.rows }

func (g *formulaGuard) emit(b []byte) {
	if g.err == nil && len(b) > 0 {
		_, g.err = g.w.Write(b)
	}
}

var apostrophe = []byte{'\''}

// flushPending writes the held cell start, neutralised unless it is a
// plain number.
func (g *formulaGuard) flushPending(complete bool) {
	if !complete || !plainNumber(g.pending) {
		g.emit(apostrophe)
	}
	g.emit(g.pending)
	g.pending = g.pending[:0]
}

// plainNumber reports whether b is a sign, digits, and optionally a point
// and more digits.
func plainNumber(b []byte) bool {
	if len(b) < 2 || (b[0] != '+' && b[0] != '-') {
		return false
	}
	digits, point := 0, -1
	for i, c := range b[1:] {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && point < 0 && digits > 0:
			point = i
		default:
			return false
		}
	}
	return digits > 0 && (point < 0 || point < len(b)-2)
}

func isFormulaStart(c byte) bool { return c == '=' || c == '@' || c == '\t' || c == '\r' }

func isNumberByte(c byte) bool { return (c >= '0' && c <= '9') || c == '.' }

// Write implements io.Writer.
func (g *formulaGuard) Write(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	from := 0 // p[from:i] passes through unchanged
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch g.state {
		case atCellStart:
			switch {
			case c == '"':
				g.state = atQuotedStart
			case c == ',':
			case c == '\n':
				g.rows++
			case isFormulaStart(c):
				g.emit(p[from:i])
				g.emit(apostrophe)
				from = i
				g.state = inUnquoted
			case c == '+' || c == '-':
				g.emit(p[from:i])
				g.pending = append(g.pending, c)
				from = i + 1
				g.state = pendingUnquoted
			default:
				g.state = inUnquoted
			}
		case inUnquoted:
			// Fast path: run to the end of the cell.
			for i < len(p) && p[i] != ',' && p[i] != '\n' {
				i++
			}
			if i == len(p) {
				break
			}
			if p[i] == '\n' {
				g.rows++
			}
			g.state = atCellStart
		case atQuotedStart:
			switch {
			case isFormulaStart(c):
				g.emit(p[from:i])
				g.emit(apostrophe)
				from = i
				g.state = inQuoted
			case c == '+' || c == '-':
				g.emit(p[from:i])
				g.pending = append(g.pending, c)
				from = i + 1
				g.state = pendingQuoted
			case c == '"':
				g.state = afterQuote
			default:
				g.state = inQuoted
			}
		case inQuoted:
			for i < len(p) && p[i] != '"' {
				i++
			}
			if i < len(p) {
				g.state = afterQuote
			}
		case afterQuote:
			switch c {
			case '"':
				g.state = inQuoted // a doubled quote: content
			case ',':
				g.state = atCellStart
			case '\n':
				g.rows++
				g.state = atCellStart
			default:
				g.state = inUnquoted // not PostgreSQL's output; pass it through
			}
		case pendingUnquoted, pendingQuoted:
			quoted := g.state == pendingQuoted
			switch {
			case isNumberByte(c) && len(g.pending) < maxNumber:
				g.pending = append(g.pending, c)
				from = i + 1
				continue
			case quoted && c == '"':
				g.state = pendingAfterQuote
				from = i + 1
				continue
			case !quoted && (c == ',' || c == '\n'):
				g.flushPending(true)
				from = i
				if c == '\n' {
					g.rows++
				}
				g.state = atCellStart
				continue
			}
			// Not a number after all.
			g.flushPending(false)
			from = i
			if quoted {
				g.state = inQuoted
			} else {
				g.state = inUnquoted
			}
			i-- // look at c again in the plain state
		case pendingAfterQuote:
			if c == '"' {
				// A doubled quote inside the cell: not a number.
				g.flushPending(false)
				g.emit([]byte{'"'})
				from = i
				g.state = inQuoted
				continue
			}
			g.flushPending(true)
			g.emit([]byte{'"'})
			from = i
			g.state = afterQuote
			i-- // the character after the closing quote
		}
	}
	if g.state != pendingUnquoted && g.state != pendingQuoted && g.state != pendingAfterQuote {
		g.emit(p[from:])
	}
	if g.err != nil {
		return 0, g.err
	}
	return len(p), nil
}

// Close writes a cell still held at the end of the stream.
// PostgreSQL ends every record with a newline, so this is a formality.
func (g *formulaGuard) Close() error {
	switch g.state {
	case pendingUnquoted:
		g.flushPending(true)
	case pendingQuoted:
		g.flushPending(false)
	case pendingAfterQuote:
		g.flushPending(true)
		g.emit([]byte{'"'})
	}
	g.state = atCellStart
	return g.err
}

// NewFormulaGuard wraps w so that CSV written through it (comma, double
// quote, LF between records, as encoding/csv and COPY write it) cannot
// open as a formula in a spreadsheet; Close flushes a cell still held.
// Other features that serve CSV (an import's rejected rows) use it too.
func NewFormulaGuard(w io.Writer) io.WriteCloser { return newFormulaGuard(w) }
