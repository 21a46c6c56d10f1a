package delivery

import (
	"bytes"
	"encoding/json"

	"fmn/apperr"
)

// Policy is a destination's delivery policy. Only immediate delivery exists
// so far; digests come with their sender.
type Policy struct {
	Mode string `json:"mode"`
}

// ParsePolicy validates a policy and returns its normalised JSON.
func ParsePolicy(raw json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, apperr.Invalid("delivery", "delivery must be an object like {\"mode\":\"immediate\"}")
	}
	if p.Mode != "immediate" {
		return nil, apperr.Invalid("delivery.mode", "mode must be \"immediate\"")
	}
	return json.Marshal(p)
}
