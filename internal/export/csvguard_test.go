package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// guard runs input through a formulaGuard in pieces of size chunk (0 = at
// once) and returns the output and the record count.
func guard(t *testing.T, input string, chunk int) (string, int64) {
	t.Helper()
	var out bytes.Buffer
	g := newFormulaGuard(&out)
	if chunk <= 0 {
		chunk = len(input) + 1
	}
	for i := 0; i < len(input); i += chunk {
		end := min(i+chunk, len(input))
		n, err := g.Write([]byte(input[i:end]))
		require.NoError(t, err)
		require.Equal(t, end-i, n)
	}
	require.NoError(t, g.Close())
	return out.String(), g.Rows()
}

func TestFormulaGuardCells(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"formula", "=1+2", "'=1+2"},
		{"hyperlink", `=HYPERLINK("http://x.example","click")`, `'=HYPERLINK("http://x.example","click")`},
		{"plus command", "+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"},
		{"minus formula", "-1+1", "'-1+1"},
		{"at", "@SUM(A1:A9)", "'@SUM(A1:A9)"},
		{"tab", "\t=1", "'\t=1"},
		{"carriage return", "\r=1", "'\r=1"},
		{"lone minus", "-", "'-"},
		{"sign and point", "+1.", "'+1."},
		{"point first", "-.5", "'-.5"},
		{"two points", "-1.2.3", "'-1.2.3"},
		{"number then comma inside quotes", "+1,2", "'+1,2"},
		{"number then quote", `-1"`, `'-1"`},
		{"very long number", "+" + strings.Repeat("9", 80), "'+" + strings.Repeat("9", 80)},
		{"e164 phone", "+13125550142", "+13125550142"},
		{"negative integer", "-4", "-4"},
		{"negative decimal", "-2.5", "-2.5"},
		{"plain text", "Pat Doe", "Pat Doe"},
		{"formula later in the cell", "a=1+2", "a=1+2"},
		{"formula on a later line", "hello\n=1+2", "hello\n=1+2"},
		{"empty", "", ""},
		{"apostrophe already", "'=x", "'=x"},
		{"unicode", "=Ünïcødé", "'=Ünïcødé"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Each cell in the middle of a record, quoted both ways
			// PostgreSQL might write it, at every chunking.
			for _, quoteAll := range []bool{false, true} {
				in := csvLine(t, []string{"before", c.in, "after"}, quoteAll) + csvLine(t, []string{c.in, "x", c.in}, quoteAll)
				for _, chunk := range []int{0, 1, 2, 3, 7} {
					out, rows := guard(t, in, chunk)
					recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
					require.NoError(t, err, "output must stay valid CSV: %q", out)
					require.Equal(t, [][]string{{"before", c.want, "after"}, {c.want, "x", c.want}}, recs,
						"quoteAll=%v chunk=%d", quoteAll, chunk)
					require.EqualValues(t, 2, rows)
				}
			}
		})
	}
}

// csvLine writes a record as PostgreSQL's COPY … FORMAT csv does: quoted
// when it must be (delimiter, quote, CR, LF, or the empty string), or
// always.
func csvLine(t *testing.T, cells []string, quoteAll bool) string {
	t.Helper()
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteByte(',')
		}
		if quoteAll || c == "" || strings.ContainsAny(c, ",\"\r\n") {
			b.WriteString(`"` + strings.ReplaceAll(c, `"`, `""`) + `"`)
		} else {
			b.WriteString(c)
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// A NULL is an empty unquoted field; a record may end in one.
func TestFormulaGuardNullsAndRecordCount(t *testing.T) {
	in := "id,phone,note\n1,,\n2,+13125550142,\n3,,\"=x\"\n"
	out, rows := guard(t, in, 1)
	require.Equal(t, "id,phone,note\n1,,\n2,+13125550142,\n3,,\"'=x\"\n", out)
	require.EqualValues(t, 4, rows)
}

func TestJSONArray(t *testing.T) {
	for _, c := range []struct {
		in   string
		rows int64
	}{{"", 0}, {"{\"a\":1}\n", 1}, {"{\"a\":1}\n{\"a\":\"x\\ny\"}\n{}\n", 3}} {
		for _, chunk := range []int{1, 3, 100} {
			var out bytes.Buffer
			j := &jsonArray{w: &out}
			for i := 0; i < len(c.in); i += chunk {
				_, err := j.Write([]byte(c.in[i:min(i+chunk, len(c.in))]))
				require.NoError(t, err)
			}
			require.NoError(t, j.Close())
			var v []map[string]any
			require.NoError(t, json.Unmarshal(out.Bytes(), &v), out.String())
			require.Len(t, v, int(c.rows))
			require.Equal(t, c.rows, j.Rows())
		}
	}
}

func TestSafeDocumentNames(t *testing.T) {
	seen := map[string]int{}
	require.Equal(t, "licence.pdf", uniqueName(safeName("../../etc/licence.pdf"), seen))
	require.Equal(t, "licence-2.pdf", uniqueName(safeName(`C:\scans\licence.pdf`), seen))
	require.Equal(t, "my_scan_1_.jpg", uniqueName(safeName("my scan (1).jpg"), seen))
	require.Equal(t, "document", uniqueName(safeName(".."), seen))
}
