package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The JSON built from CSV in Go must be what PostgreSQL's own row_to_json
// writes, for every type an export source selects.
func TestCSVToJSONMatchesRowToJSON(t *testing.T) {
	const query = `SELECT * FROM (VALUES
		(1::int, 9007199254740993::bigint, 1.50::numeric, 'NaN'::numeric, true, '{"a": [1, "x\"y"], "b": null}'::jsonb,
		 '{"b":2}'::json, '2026-03-01 12:00:00.123456+00'::timestamptz, '2026-03-01 12:00:00+00'::timestamptz,
		 'infinity'::timestamptz, '2026-03-01 12:00:00.5'::timestamp, '2026-03-01'::date,
		 E'text "q", \\ back\nline\ttab\x01ctl\r', ''::text, '11111111-2222-3333-4444-555555555555'::uuid, -5::int,
		 3.0e10::float8, encode('\x00ff'::bytea, 'hex')),
		(2, NULL, NULL, 'Infinity'::numeric, false, NULL, NULL, NULL, '1999-12-31 23:59:59.999+00', '-infinity', NULL, NULL,
		 'é ü 日本 ""', NULL, NULL, NULL, NULL, NULL)
	) AS t(i, big, num, nan, yes, jb, js, ts, ts0, inf, naive, day, txt, empty, id, neg, fl, hex)`
	ctx := context.Background()
	store := testenv.Store(t)
	var want, got bytes.Buffer
	err := store.InTenantTx(ctx, uuid.New(), pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'"); err != nil {
			return err
		}
		if _, err := tx.Conn().PgConn().CopyTo(ctx, &want, `COPY (SELECT row_to_json(t) FROM (`+query+`) AS t)
			TO STDOUT WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')`); err != nil {
			return err
		}
		// Through copyTable, as an export runs it.
		rep := &reporter{progress: func(Progress) error { return nil }, every: 1}
		n, err := copyTable(ctx, tx, &got, query, "jsonl", rep)
		if err != nil {
			return err
		}
		require.EqualValues(t, 2, n)
		require.Equal(t, decodeLines(t, want.String()), decodeLines(t, got.String()))

		// And fed in every chunking, as the network might cut it.
		var csvOut bytes.Buffer
		if _, err := tx.Conn().PgConn().CopyTo(ctx, &csvOut, "COPY ("+query+") TO STDOUT WITH (FORMAT csv)"); err != nil {
			return err
		}
		sd, err := tx.Conn().PgConn().Prepare(ctx, "", query, nil)
		if err != nil {
			return err
		}
		var names []string
		var oids []uint32
		for _, f := range sd.Fields {
			names, oids = append(names, f.Name), append(oids, f.DataTypeOID)
		}
		for _, chunk := range []int{1, 2, 5, 7} {
			var out bytes.Buffer
			c := newCSVToJSON(&out, jsonColumns(names, oids))
			in := csvOut.Bytes()
			for i := 0; i < len(in); i += chunk {
				_, err := c.Write(in[i:min(i+chunk, len(in))])
				require.NoError(t, err)
			}
			require.NoError(t, c.Close())
			require.EqualValues(t, 2, c.Rows())
			require.Equal(t, out.String(), got.String(), "chunk %d", chunk)
		}
		return nil
	})
	require.NoError(t, err)
	// Times read exactly as row_to_json writes them.
	require.Contains(t, got.String(), `"ts":"2026-03-01T12:00:00.123456+00:00"`)
	require.Contains(t, got.String(), `"naive":"2026-03-01T12:00:00.5"`)
}

func decodeLines(t *testing.T, s string) []any {
	t.Helper()
	var out []any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.UseNumber()
		var v any
		require.NoError(t, dec.Decode(&v), sc.Text())
		out = append(out, v)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out)
	return out
}
