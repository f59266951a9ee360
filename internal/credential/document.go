package credential

import (
	"bytes"
	"path/filepath"
	"strings"
)

// Document media types Errand accepts.
const (
	PDF  = "application/pdf"
	JPEG = "image/jpeg"
	PNG  = "image/png"
)

// SniffLen is how many leading bytes Sniff needs.
const SniffLen = 8

var magics = []struct {
	prefix []byte
	media  string
}{
	{[]byte("%PDF-"), PDF},
	{[]byte{0xFF, 0xD8, 0xFF}, JPEG},
	{[]byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}, PNG},
}

// Sniff names the document type of a file from its first bytes (its magic
// number), or reports that it is none Errand accepts.
func Sniff(head []byte) (string, bool) {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.prefix) {
			return m.media, true
		}
	}
	return "", false
}

var extensions = map[string]string{
	".pdf": PDF, ".jpg": JPEG, ".jpeg": JPEG, ".jpe": JPEG, ".png": PNG,
}

// NameAgrees reports whether a file's name is consistent with the type its
// content shows: a name without an extension says nothing and agrees; a
// name whose extension belongs to another type (or to none Errand
// accepts) lies.
func NameAgrees(filename, media string) bool {
	ext := strings.ToLower(filepath.Ext(filepath.Base(strings.ReplaceAll(filename, `\`, "/"))))
	if ext == "" {
		return true
	}
	return extensions[ext] == media
}

// DeclaredAgrees reports whether a declared Content-Type is consistent with
// the type the content shows. Absent and generic declarations agree.
func DeclaredAgrees(declared, media string) bool {
	declared = strings.ToLower(strings.TrimSpace(strings.SplitN(declared, ";", 2)[0]))
	switch declared {
	case "", "application/octet-stream", "binary/octet-stream":
		return true
	case "image/jpg", "image/pjpeg":
		declared = JPEG
	case "application/x-pdf":
		declared = PDF
	}
	return declared == media
}

// Describe names a media type for people.
func Describe(media string) string {
	switch media {
	case PDF:
		return "a PDF"
	case JPEG:
		return "a JPEG image"
	case PNG:
		return "a PNG image"
	}
	return "a file of another type"
}
