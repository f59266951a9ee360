package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeJustifiesEveryDependency: each module go.mod requires directly
// (and the pinned tool) is named, owner/name, in the README's "Choices,
// and the dependencies they brought" section, so none arrives unexplained.
func TestReadmeJustifiesEveryDependency(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Choices, and the dependencies they brought\n")
	require.True(t, ok, "README.md has no dependencies section")
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}

	var modules []string
	inRequire := false
	for _, line := range strings.Split(string(mod), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "tool "):
			modules = append(modules, strings.TrimSuffix(strings.TrimPrefix(line, "tool "), "/cmd/sqlc"))
		case line == "require (":
			inRequire = true
		case line == ")":
			inRequire = false
		case inRequire && line != "" && !strings.HasSuffix(line, "// indirect"):
			modules = append(modules, strings.Fields(line)[0])
		}
	}
	require.GreaterOrEqual(t, len(modules), 10, "found only %v in go.mod", modules)
	major := regexp.MustCompile(`/v[0-9]+$`)
	for _, m := range modules {
		name := major.ReplaceAllString(strings.TrimPrefix(m, "github.com/"), "")
		require.Contains(t, section, name, "the README's dependencies section does not name %s (%s)", name, m)
	}
}
