// Package promises checks PROMISES.md, the ledger that ties each promise
// of the platforms' privacy policies to the tests that prove Errand keeps
// it. It holds no code: only the check that the ledger and the tests have
// not drifted apart.
package promises

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var testRef = regexp.MustCompile("`([a-z][a-z0-9_/]*)\\.((?:Test|Fuzz)[A-Za-z0-9_]+)`")

// TestEveryPromiseNamesTestsThatExist: each row of the ledger names at
// least one test, and each named test is a function in that package's
// _test.go files.
func TestEveryPromiseNamesTestsThatExist(t *testing.T) {
	root := filepath.Join("..", "..")
	f, err := os.Open(filepath.Join(root, "PROMISES.md"))
	require.NoError(t, err)
	defer f.Close()

	rows, refs := 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if !strings.HasPrefix(text, "| ") || strings.HasPrefix(text, "| Promise") {
			continue
		}
		rows++
		found := testRef.FindAllStringSubmatch(text, -1)
		require.NotEmpty(t, found, "PROMISES.md:%d names no test", line)
		for _, m := range found {
			refs++
			dir, name := m[1], m[2]
			require.Truef(t, defines(t, filepath.Join(root, dir), name),
				"PROMISES.md:%d names %s.%s, which is not a test in %s", line, dir, name, dir)
		}
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, rows, 15, "the ledger lost its rows")
	t.Logf("%d promises, %d test references, all present", rows, refs)
}

func defines(t *testing.T, dir, name string) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	require.NoError(t, err)
	decl := regexp.MustCompile(`(?m)^func ` + regexp.QuoteMeta(name) + `\(`)
	for _, file := range files {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		if decl.Match(b) {
			return true
		}
	}
	return false
}
