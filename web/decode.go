package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"fmn/apperr"
)

// maxBody bounds a JSON request: a rule with every list full is well under.
const maxBody = 256 << 10

var errTooLarge = errors.New("request body too large")

// decodeJSON reads one JSON object into v, strictly: unknown fields and
// trailing data are errors, reported with the offending field where known.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		var maxErr *http.MaxBytesError
		switch {
		case errors.As(err, &maxErr):
			return errTooLarge
		case errors.As(err, &typeErr):
			return apperr.Invalid(typeErr.Field, "must be of type %s", jsonType(typeErr.Type.Kind().String()))
		case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
			return apperr.Invalid("", "the body is not valid JSON")
		case errors.Is(err, io.EOF):
			return apperr.Invalid("", "the body is empty; a JSON object is expected")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return apperr.Invalid(field, "unknown field")
		}
		return apperr.Invalid("", "the body is not a valid JSON object")
	}
	if dec.More() {
		return apperr.Invalid("", "trailing data after the JSON object")
	}
	return nil
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "number"
	}
	return fmt.Sprint(kind)
}
