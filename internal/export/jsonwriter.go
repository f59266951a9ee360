package export

import (
	"bytes"
	"io"
)

// jsonLines passes PostgreSQL's one-JSON-object-per-line output through,
// counting records. JSON text never holds a raw newline (row_to_json
// escapes control characters), so every newline ends a record.
type jsonLines struct {
	w    io.Writer
	rows int64
}

func (j *jsonLines) Write(p []byte) (int, error) {
	j.rows += int64(bytes.Count(p, []byte{'\n'}))
	return j.w.Write(p)
}

func (j *jsonLines) Rows() int64  { return j.rows }
func (j *jsonLines) Close() error { return nil }

// jsonArray turns one-object-per-line output into a single JSON array,
// one element per line:
//
//	[
//	{"id":"…"},
//	{"id":"…"}
//	]
type jsonArray struct {
	w       io.Writer
	rows    int64
	started bool
	pending bool // a record ended; its separator waits for the next one
	err     error
}

var (
	arrayOpen  = []byte("[\n")
	arraySep   = []byte(",\n")
	arrayClose = []byte("\n]\n")
	arrayEmpty = []byte("[]\n")
)

func (j *jsonArray) emit(b []byte) {
	if j.err == nil && len(b) > 0 {
		_, j.err = j.w.Write(b)
	}
}

func (j *jsonArray) Write(p []byte) (int, error) {
	n := len(p)
	if !j.started && n > 0 {
		j.emit(arrayOpen)
		j.started = true
	}
	for len(p) > 0 && j.err == nil {
		if j.pending {
			j.emit(arraySep)
			j.pending = false
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			j.emit(p)
			break
		}
		j.emit(p[:i])
		j.rows++
		j.pending = true
		p = p[i+1:]
	}
	if j.err != nil {
		return 0, j.err
	}
	return n, nil
}

func (j *jsonArray) Rows() int64 { return j.rows }

// Close ends the array.
func (j *jsonArray) Close() error {
	if !j.started {
		j.emit(arrayEmpty)
	} else {
		j.emit(arrayClose)
	}
	return j.err
}
