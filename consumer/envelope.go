// Package consumer is fmn's bus side: the fedmsg wire format, the SUB loops
// that read every endpoint, the ingester that stores what they read, and the
// core of the publish and tail tools.
package consumer

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// maxTopicLen bounds a topic: real fedmsg topics are under 100 bytes.
const maxTopicLen = 255

// Envelope is a decoded fedmsg envelope. Fields keeps every key as decoded
// (numbers as json.Number, so that re-encoding keeps their exact text), for
// signature checks and for storing the envelope as received.
type Envelope struct {
	Topic     string
	MsgID     string // as sent, or derived from the content when absent
	Derived   bool   // MsgID was derived, not sent
	Body      any    // the "msg" value
	Username  string
	Timestamp *time.Time
	Seq       int64 // "i", the publishing process's counter; 0 when absent
	// SeqID is "seq_id", the number a publisher with a persistent store
	// (and so a replay endpoint) gives each message; 0 when absent. It
	// survives the publisher's restarts, unlike "i", and is what replay
	// queries ask for, so gap detection follows it.
	SeqID   int64
	Headers map[string]any // "headers", newer publishers' free-form metadata
	Fields  map[string]any
	Raw     []byte // the envelope frame as received
}

// DecodeError says why a frame was refused; Reason is a short label for the
// dropped-messages metric.
type DecodeError struct {
	Reason string
	Err    error
}

func (e *DecodeError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

func bad(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// DecodeFrames decodes a fedmsg wire message: two frames, the topic and the
// JSON envelope. The topic frame is only a routing hint; the envelope's own
// topic is authoritative and the two must agree.
func DecodeFrames(frames [][]byte, maxBytes int) (Envelope, error) {
	if len(frames) != 2 {
		return Envelope{}, bad("frames", "want 2 frames (topic, envelope), got %d", len(frames))
	}
	env, err := Decode(frames[1], maxBytes)
	if err != nil {
		return env, err
	}
	if string(frames[0]) != env.Topic {
		return Envelope{}, bad("topic_mismatch", "topic frame %q differs from the envelope's topic %q", frames[0], env.Topic)
	}
	return env, nil
}

// Decode decodes and checks one JSON envelope.
func Decode(raw []byte, maxBytes int) (Envelope, error) {
	if maxBytes > 0 && len(raw) > maxBytes {
		return Envelope{}, bad("oversized", "envelope of %d bytes exceeds the limit of %d", len(raw), maxBytes)
	}
	if !utf8.Valid(raw) {
		return Envelope{}, bad("json", "envelope is not valid UTF-8")
	}
	if jsonDepth(raw) > maxDepth {
		return Envelope{}, bad("nesting", "envelope nests deeper than %d levels", maxDepth)
	}
	v, err := parseJSON(raw)
	if err != nil {
		return Envelope{}, bad("json", "envelope is not JSON: %v", err)
	}
	fields, ok := v.(map[string]any)
	if !ok {
		return Envelope{}, bad("json", "envelope is not a JSON object")
	}
	env := Envelope{Fields: fields, Raw: raw}
	topic, ok := fields["topic"].(string)
	if !ok || topic == "" || len(topic) > maxTopicLen || strings.ContainsAny(topic, " \t\r\n\x00") {
		return Envelope{}, bad("shape", "envelope needs a topic: a non-empty string without spaces, at most %d bytes", maxTopicLen)
	}
	env.Topic = topic
	body, ok := fields["msg"]
	if !ok {
		return Envelope{}, bad("shape", "envelope has no msg")
	}
	env.Body = body
	if v, ok := fields["msg_id"]; ok && v != nil {
		s, ok := v.(string)
		if !ok || s == "" || len(s) > 200 {
			return Envelope{}, bad("shape", "msg_id must be a non-empty string of at most 200 bytes")
		}
		env.MsgID = s
	} else {
		env.MsgID, env.Derived = DeriveMsgID(fields), true
	}
	if v, ok := fields["username"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return Envelope{}, bad("shape", "username must be a string")
		}
		env.Username = s
		if s == amqpBridgeUser {
			if id, ok := bridgedAMQPID(env.MsgID); ok {
				env.MsgID = id // the AMQP original's id (see fmwire.go)
			}
		}
	}
	if v, ok := fields["timestamp"]; ok && v != nil {
		n, ok := v.(json.Number)
		f, err := n.Float64()
		if !ok || err != nil || f < 0 || f > 1e11 || math.IsNaN(f) {
			return Envelope{}, bad("shape", "timestamp must be seconds since the epoch")
		}
		sec, frac := math.Modf(f)
		t := time.Unix(int64(sec), int64(frac*1e9)).UTC()
		env.Timestamp = &t
	}
	if v, ok := fields["i"]; ok && v != nil {
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil || i < 0 {
			return Envelope{}, bad("shape", "i must be a non-negative integer")
		}
		env.Seq = i
	}
	if v, ok := fields["seq_id"]; ok && v != nil {
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil || i < 0 {
			return Envelope{}, bad("shape", "seq_id must be a non-negative integer")
		}
		env.SeqID = i
	}
	if v, ok := fields["headers"]; ok && v != nil {
		h, ok := v.(map[string]any)
		if !ok {
			return Envelope{}, bad("shape", "headers must be an object")
		}
		env.Headers = h
	}
	return env, nil
}

// maxDepth bounds how deeply an envelope may nest: real ones stay under
// ten levels; deeper input is an attack on the decoder's stack and time.
const maxDepth = 64

// jsonDepth returns the deepest nesting of arrays and objects in raw,
// skipping strings. It does not validate; the decoder does that.
func jsonDepth(raw []byte) int {
	depth, deepest, inStr := 0, 0, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inStr {
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '[', '{':
			depth++
			deepest = max(deepest, depth)
		case ']', '}':
			depth--
		}
	}
	return deepest
}

// DeriveMsgID gives old envelopes without msg_id a stable id: a hash of the
// whole envelope re-encoded with sorted keys, so the same message seen twice
// (through a relay, or replayed) gets the same id.
func DeriveMsgID(fields map[string]any) string {
	b, err := json.Marshal(fields) // map keys are sorted; numbers keep their text
	if err != nil {
		b = []byte(fmt.Sprint(fields))
	}
	h := sha256.Sum256(b)
	return "derived-" + hex.EncodeToString(h[:16])
}

// NewMsgID makes a msg_id the way fedmsg's publisher does: the year, a dash,
// and a random UUID.
func NewMsgID(now time.Time) string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return fmt.Sprintf("%d-%s-%s-%s-%s-%s", now.Year(), h[0:8], h[8:12], h[12:16], h[16:20], h[20:])
}

// ErrNotEnvelope is returned by ReadEnvelopes for input that is neither an
// envelope nor a corpus line.
var ErrNotEnvelope = errors.New("not a fedmsg envelope")
