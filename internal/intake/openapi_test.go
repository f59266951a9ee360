package intake_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every route the intake serves is documented in openapi.yaml, and the
// document names no route the intake does not serve.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	routesGo, err := os.ReadFile("routes.go")
	require.NoError(t, err)
	doc, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)

	served := map[string]bool{}
	anyMethod := map[string]bool{} // mounted handlers (the console) answer every method
	for _, m := range regexp.MustCompile(`m\.Handle(?:Func)?\("(?:([A-Z]+) )?(/[^"]*)"`).FindAllStringSubmatch(string(routesGo), -1) {
		if m[1] == "" {
			anyMethod[m[2]] = true
			continue
		}
		served[m[1]+" "+m[2]] = true
	}
	require.NotEmpty(t, served)

	documented := map[string]bool{}
	path := ""
	pathLine := regexp.MustCompile(`^  (/\S*):\s*$`)
	opLine := regexp.MustCompile(`^    (get|post|put|delete|patch):`)
	for _, line := range regexp.MustCompile(`\r?\n`).Split(string(doc), -1) {
		if m := pathLine.FindStringSubmatch(line); m != nil {
			path = m[1]
		} else if m := opLine.FindStringSubmatch(line); m != nil && path != "" {
			documented[map[string]string{"get": "GET", "post": "POST", "put": "PUT", "delete": "DELETE", "patch": "PATCH"}[m[1]]+" "+path] = true
		}
	}
	for r := range served {
		require.Truef(t, documented[r], "%s is served but not in openapi.yaml", r)
	}
	for r := range documented {
		_, p, _ := strings.Cut(r, " ")
		require.Truef(t, served[r] || anyMethod[p], "openapi.yaml documents %s, which is not served", r)
	}
}
