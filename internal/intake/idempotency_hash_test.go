package intake

import (
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A multipart body hashes the same whatever its boundary and however the
// body is cut into reads, and differently when anything else differs.
func TestRequestHashIgnoresTheMultipartBoundary(t *testing.T) {
	body := func(boundary, file string) string {
		return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\ninsurance\r\n" +
			"--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n" +
			"Content-Type: application/pdf\r\n\r\n" + file + "\r\n--" + boundary + "--\r\n"
	}
	hash := func(boundary, b string, rng *rand.Rand) string {
		r := httptest.NewRequest("POST", "/v1/pros/p-1/credentials", nil)
		r.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		h := requestHasher(r)
		for len(b) > 0 { // reads of random sizes, so boundaries fall across them
			n := min(len(b), 1+rng.IntN(2*len(boundary)))
			h.Write([]byte(b[:n]))
			b = b[n:]
		}
		return string(h.Sum())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	want := hash("X-curl-1f2e3d", body("X-curl-1f2e3d", "%PDF-1.7 the document"), rng)
	for i := 0; i < 200; i++ {
		b := strings.Repeat("ab", 1+rng.IntN(30))
		require.Equal(t, want, hash(b, body(b, "%PDF-1.7 the document"), rng), "boundary %q", b)
	}
	require.NotEqual(t, want, hash("X-curl-1f2e3d", body("X-curl-1f2e3d", "%PDF-1.7 another document"), rng))
	require.NotEqual(t, want, hash("zz", body("zz", "%PDF-1.7 the document, longer"), rng))

	// A JSON body is hashed as it is.
	r := httptest.NewRequest("POST", "/v1/messages", nil)
	r.Header.Set("Content-Type", "application/json")
	a, b := requestHasher(r), requestHasher(r)
	a.Write([]byte(`{"body":"--x--"}`))
	b.Write([]byte(`{"body":"--y--"}`))
	require.NotEqual(t, a.Sum(), b.Sum())
}
