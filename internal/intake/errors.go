package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/logging"
)

// status maps each fault code to its HTTP status: the only place that does.
func status(c fault.Code) int {
	switch c {
	case fault.Malformed:
		return http.StatusBadRequest
	case fault.Unauthenticated:
		return http.StatusUnauthorized
	case fault.Forbidden, fault.TenantCancelled:
		return http.StatusForbidden
	case fault.NotFound:
		return http.StatusNotFound
	case fault.MethodNotAllowed:
		return http.StatusMethodNotAllowed
	case fault.Conflict:
		return http.StatusConflict
	case fault.TooLarge:
		return http.StatusRequestEntityTooLarge
	case fault.UnsupportedType:
		return http.StatusUnsupportedMediaType
	case fault.Invalid:
		return http.StatusUnprocessableEntity
	case fault.RateLimited:
		return http.StatusTooManyRequests
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

var (
	errPanic   = errors.New("handler panicked")
	errNoRoute = fault.New(fault.NotFound, "no such endpoint; see the OpenAPI document at /openapi.yaml")
	errMethod  = fault.New(fault.MethodNotAllowed, "this endpoint does not accept that method; see the Allow header")
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Details   any    `json:"details,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// errDependencyDown answers a request that PostgreSQL or Redis could not
// serve because it is not answering (API.md: 503 dependency down).
var errDependencyDown = &fault.Error{Code: fault.Unavailable, RetryAfter: 5,
	Message: "a database Errand depends on is not answering; nothing was lost, try again shortly"}

// writeError answers with err in the API's error format. A dependency that
// is down is a 503; anything else that is not a fault is an internal
// error. Both are logged, and answered without detail.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	f, ok := fault.As(err)
	switch {
	case ok:
	case dependencyDown(err):
		s.logger.ErrorContext(r.Context(), "dependency unavailable", "err", err)
		f = errDependencyDown
	default:
		s.logger.ErrorContext(r.Context(), "request failed", "err", err)
		f = &fault.Error{Code: "internal_error", Message: "something went wrong on our side; the request ID identifies it in our logs"}
	}
	code := string(f.Code)
	if f.Subcode != "" {
		code = f.Subcode
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	encode(w, status(f.Code), errorBody{Error: errorDetail{
		Code: code, Message: f.Message, Details: f.Details, RequestID: requestID(r.Context()),
	}})
}

// encode writes v as JSON with the given status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v) //nolint:errcheck // the client went away; nothing to do
}

// decode reads a JSON request body into v strictly: the body must be JSON,
// a single object, with the right types and no field the request type does
// not name exactly (encoding/json alone would accept "NAME" for "name").
func decode[T any](r *http.Request) (T, error) {
	var v T
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return v, fault.New(fault.UnsupportedType, "send the body as application/json")
		}
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return v, decodeFault(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, decodeFault(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return v, fault.New(fault.Malformed, "the body must hold a single JSON object")
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err == nil {
		if field := unknownField(tree, reflect.TypeOf(v), ""); field != "" {
			return v, fault.Fields(map[string]string{field: "unknown field"})
		}
	}
	return v, nil
}

// unknownField finds a key in a decoded JSON value that the Go type does
// not name exactly, returning its dotted path.
func unknownField(val any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch x := val.(type) {
	case map[string]any:
		if t.Kind() == reflect.Map {
			for k, sub := range x {
				if f := unknownField(sub, t.Elem(), join(path, k)); f != "" {
					return f
				}
			}
			return ""
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
		fields := jsonFields(t)
		for k, sub := range x {
			ft, ok := fields[k]
			if !ok {
				return join(path, k)
			}
			if f := unknownField(sub, ft, join(path, k)); f != "" {
				return f
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, sub := range x {
				if f := unknownField(sub, t.Elem(), path); f != "" {
					return f
				}
			}
		}
	}
	return ""
}

// jsonFields maps a struct's JSON names to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// decodeFault explains a JSON decoding error in terms of the request.
func decodeFault(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case tooLarge(err):
		var mbe *http.MaxBytesError
		errors.As(err, &mbe)
		return fault.New(fault.TooLarge, "the body is larger than the %d bytes allowed", mbe.Limit)
	case errors.Is(err, io.EOF):
		return fault.New(fault.Malformed, "the body is empty; send a JSON object")
	case errors.As(err, &syntax):
		return fault.New(fault.Malformed, "the body is not valid JSON (at byte %d)", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.New(fault.Malformed, "the body is not valid JSON (it ends early)")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return fault.New(fault.Malformed, "the body must be a JSON object")
		}
		return fault.Fields(map[string]string{field: fmt.Sprintf("must be %s, not %s", jsonType(typ.Type.Kind().String()), typ.Value)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fault.Fields(map[string]string{name: "unknown field"})
	}
	return fault.New(fault.Malformed, "the body could not be read as JSON")
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "int", "int32", "int64", "uint", "uint32", "uint64", "float64", "float32":
		return "a number"
	}
	return "of another type"
}

// logRequest adds the request's attributes to every line logged with its
// context.
func logRequest(r *http.Request, id string) *http.Request {
	return r.WithContext(logging.With(r.Context(), slog.String("request_id", id)))
}

// dependencyDown says whether err is PostgreSQL or Redis not answering: a
// connection that could not be made or broke, a server shutting down or
// starting up, or an answer that did not come in time (net.Error covers
// context.DeadlineExceeded too). A query that failed on its own merits is
// not.
func dependencyDown(err error) bool {
	var connect *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connect), errors.As(err, &netErr):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-03: shutting down, crashed, starting up.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
