package consumer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"fmn/rules/meta"
)

// fedora-messaging's wire format (its docs' "Message Format" page and its
// Message class): an AMQP basic message whose routing key is the topic,
// whose message_id property is the message's id (a UUID), with
// content-type application/json, content-encoding utf-8, delivery mode 2
// (persistent), a body that is one JSON object, and headers:
//
//	fedora_messaging_schema    the schema's entry point name
//	sent-at                    ISO 8601 with the UTC offset, no fraction
//	fedora_messaging_severity  10 debug, 20 info, 30 warning, 40 error
//	priority                   an integer, 0 unless the publisher says
//	fedora_messaging_<kind>_<name> = true, one per object the message
//	    concerns; kind is user, group, rpm, container, module or flatpak
//
// The schema packages compute those object sets in Python; only the header
// flags reach the wire, so they are what fmn believes (the metadata tables
// would only guess them from the body again). The tables still give what
// the headers do not carry: the app, agent, summary and link.
const (
	fmSchemaHeader   = "fedora_messaging_schema"
	fmSentAtHeader   = "sent-at"
	fmSeverityHeader = "fedora_messaging_severity"
	fmPriorityHeader = "priority"
	fmObjectPrefix   = "fedora_messaging_"
	fmContentType    = "application/json"
	fmEncoding       = "utf-8"
)

// fmSeverities maps fedora-messaging's levels to rules' severity words.
var fmSeverities = map[int64]string{10: "debug", 20: "info", 30: "warning", 40: "error"}

// fmObjectKinds are the object headers' kinds, with the metadata set each
// fills.
var fmObjectKinds = []struct {
	kind string
	set  func(*meta.Metadata) *[]string
}{
	{"user", func(m *meta.Metadata) *[]string { return &m.Usernames }},
	{"group", func(m *meta.Metadata) *[]string { return &m.Groups }},
	{"rpm", func(m *meta.Metadata) *[]string { return &m.Packages }},
	{"container", func(m *meta.Metadata) *[]string { return &m.Containers }},
	{"module", func(m *meta.Metadata) *[]string { return &m.Modules }},
	{"flatpak", func(m *meta.Metadata) *[]string { return &m.Flatpaks }},
}

// headerMeta is what a fedora-messaging message's headers say about it:
// the object sets and the severity, authoritative over what the metadata
// tables derive from the body.
type headerMeta struct {
	severity string
	sets     *meta.Metadata // only the six sets are used; nil: the tables' sets stand
}

// overlay replaces md's sets and severity with the headers'.
func (h *headerMeta) overlay(md meta.Metadata) meta.Metadata {
	md.Severity = h.severity
	if h.sets != nil {
		for _, k := range fmObjectKinds {
			*k.set(&md) = *k.set(h.sets)
		}
	}
	return md
}

// Fedora's bridges between the two buses (fedmsg-migration-tools) shape
// what they carry across:
//
//   - zmq_to_amqp publishes each fedmsg envelope, whole, as the body of a
//     base Message (no object headers: the base class computes none) with
//     message_id = the envelope's msg_id. fmn reads such a message as the
//     fedmsg envelope it carries, with the metadata tables' sets, exactly
//     as it reads the ZeroMQ original: whichever copy comes first is stored
//     the same way, and the other is a duplicate.
//   - amqp_to_zmq wraps the body in a fedmsg envelope whose username is
//     "amqp-bridge" and whose msg_id is "YEAR-" and the message_id: fmn
//     takes the message_id back (see Decode), so that copy too is a
//     duplicate of the AMQP original.
const amqpBridgeUser = "amqp-bridge"

// bridgedFedmsg reports whether an AMQP body is a fedmsg envelope carried
// by zmq_to_amqp: an object with its own msg, the routing key as topic and
// the message_id as msg_id.
func bridgedFedmsg(body map[string]any, topic, messageID string) bool {
	if messageID == "" {
		return false
	}
	_, hasMsg := body["msg"]
	t, _ := body["topic"].(string)
	id, _ := body["msg_id"].(string)
	return hasMsg && t == topic && id == messageID
}

// bridgedAMQPID returns the AMQP message_id inside a msg_id amqp_to_zmq
// made ("2026-" and a UUID).
func bridgedAMQPID(msgID string) (string, bool) {
	year, id, ok := strings.Cut(msgID, "-")
	if !ok || len(year) != 4 || strings.Trim(year, "0123456789") != "" || !isUUID(id) {
		return "", false
	}
	return id, true
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// DecodeDelivery decodes one AMQP message in fedora-messaging's format
// into an envelope: Fields (and Raw, their encoding) hold the topic, the
// msg_id, the body as "msg", the headers and, from sent-at, a fedmsg-style
// "timestamp", so that what is stored (and what `fmn tail -amqp` prints)
// reads like a fedmsg envelope. A message that can never be stored (not
// JSON, not an object, too big, another content type or encoding) is a
// *DecodeError whose Reason labels the dropped-messages metric.
func DecodeDelivery(d *amqp.Delivery, maxBytes int) (Envelope, *headerMeta, error) {
	if maxBytes > 0 && len(d.Body) > maxBytes {
		return Envelope{}, nil, bad("oversized", "body of %d bytes exceeds the limit of %d", len(d.Body), maxBytes)
	}
	if d.ContentType != "" {
		mt, params, err := mime.ParseMediaType(d.ContentType)
		if err != nil || mt != fmContentType || (params["charset"] != "" && !isUTF8Name(params["charset"])) {
			return Envelope{}, nil, bad("content_type", "content type %q is not %s", d.ContentType, fmContentType)
		}
	}
	if d.ContentEncoding != "" && !isUTF8Name(d.ContentEncoding) {
		return Envelope{}, nil, bad("content_encoding", "content encoding %q is not %s", d.ContentEncoding, fmEncoding)
	}
	topic := d.RoutingKey
	if topic == "" || len(topic) > maxTopicLen || strings.ContainsAny(topic, " \t\r\n\x00") {
		return Envelope{}, nil, bad("shape", "routing key %q is not a topic", topic)
	}
	body, err := decodeBody(d.Body)
	if err != nil {
		return Envelope{}, nil, err
	}
	hm := readHeaderMeta(d.Headers)
	if bridgedFedmsg(body, topic, d.MessageId) {
		raw := bytes.TrimSpace(d.Body)
		env, err := Decode(raw, 0)
		if err != nil {
			return Envelope{}, nil, err
		}
		hm.sets = nil
		return env, hm, nil
	}
	headers := jsonTable(d.Headers)
	fields := map[string]any{"topic": topic, "headers": headers}
	env := Envelope{Topic: topic, Body: body, Headers: headers, Fields: fields}
	if id := d.MessageId; id != "" {
		if len(id) > 200 {
			return Envelope{}, nil, bad("shape", "message_id must be at most 200 bytes")
		}
		env.MsgID = id
	}
	if s, ok := d.Headers[fmSentAtHeader].(string); ok {
		if t, ok := parseSentAt(s); ok {
			env.Timestamp = &t
			fields["timestamp"] = json.Number(strconv.FormatFloat(float64(t.UnixMicro())/1e6, 'f', -1, 64))
		}
	}
	if env.MsgID == "" {
		// fedora-messaging always sets one; a message without is given
		// one derived from its content, so a redelivery gets the same.
		fields["msg"] = body
		env.MsgID, env.Derived = DeriveMsgID(fields), true
		delete(fields, "msg")
	}
	fields["msg_id"] = env.MsgID
	// The head is encoded straight into the envelope's own buffer, sized
	// for it and the body, and the body spliced in as received (it is
	// valid JSON), instead of being encoded again: one allocation, where
	// encoding the head apart grew a buffer of its own and copied it.
	trimmed := bytes.TrimSpace(d.Body)
	raw, ok := appendJSON(make([]byte, 0, headRoom(len(d.Headers))+len(trimmed)), fields)
	if !ok {
		// Only a number with no JSON form gets here (a NaN or an
		// infinite float header); encoding/json's error says which.
		_, err := EncodeEnvelope(fields)
		return Envelope{}, nil, bad("shape", "headers: %v", err)
	}
	raw = append(raw[:len(raw)-1], `,"msg":`...)
	raw = append(raw, trimmed...)
	env.Raw = append(raw, '}')
	fields["msg"] = body
	return env, hm, nil
}

// headRoom is room enough, in nearly every case, for an envelope's head
// (topic, msg_id, timestamp) and n headers as JSON: fedora-messaging's
// run to about 60 bytes each.
func headRoom(n int) int {
	return 200 + 96*n
}

// decodeBody checks and decodes a body that must be one JSON object.
func decodeBody(b []byte) (map[string]any, error) {
	if !utf8.Valid(b) {
		return nil, bad("json", "body is not valid UTF-8")
	}
	if jsonDepth(b) > maxDepth {
		return nil, bad("nesting", "body nests deeper than %d levels", maxDepth)
	}
	v, err := parseJSON(b)
	if err != nil {
		return nil, bad("json", "body is not JSON: %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, bad("not_object", "body is JSON but not an object")
	}
	return obj, nil
}

func isUTF8Name(s string) bool {
	s = strings.ToLower(s)
	return s == "utf-8" || s == "utf8"
}

// parseSentAt reads sent-at: ISO 8601 with an offset, or without one
// (then UTC), with or without a fraction.
func parseSentAt(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// readHeaderMeta collects the object sets and the severity. An object
// header counts when its value is true (fedora-messaging sets no other); a
// severity it does not define counts as info, as its own consumers do.
func readHeaderMeta(h amqp.Table) *headerMeta {
	hm := &headerMeta{severity: "info", sets: &meta.Metadata{}}
	for _, k := range fmObjectKinds {
		*k.set(hm.sets) = []string{}
	}
	if n, ok := tableInt(h[fmSeverityHeader]); ok {
		if s, ok := fmSeverities[n]; ok {
			hm.severity = s
		}
	}
	for key, v := range h {
		rest, ok := strings.CutPrefix(key, fmObjectPrefix)
		if !ok || v != true {
			continue
		}
		for _, k := range fmObjectKinds {
			if name, ok := strings.CutPrefix(rest, k.kind+"_"); ok && strings.TrimSpace(name) != "" {
				set := k.set(hm.sets)
				*set = append(*set, name)
				break
			}
		}
	}
	for _, k := range fmObjectKinds {
		set := k.set(hm.sets)
		slices.Sort(*set)
		*set = slices.Compact(*set)
	}
	return hm
}

// tableInt reads an AMQP table integer of any width.
func tableInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case uint8:
		return int64(n), true
	case int16:
		return int64(n), true
	case uint16:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint32:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	case float32:
		if n == float32(int64(n)) {
			return int64(n), true
		}
	}
	return 0, false
}

// jsonTable turns AMQP header values into JSON ones: byte strings that are
// UTF-8 become strings (others base64), times RFC 3339, decimals numbers.
func jsonTable(t amqp.Table) map[string]any {
	out := make(map[string]any, len(t))
	for k, v := range t {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string:
		return x
	case amqp.Table:
		return jsonTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return base64.StdEncoding.EncodeToString(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case amqp.Decimal:
		return json.Number(strconv.FormatFloat(float64(x.Value)/pow10(x.Scale), 'f', -1, 64))
	case float32:
		return json.Number(strconv.FormatFloat(float64(x), 'g', -1, 32))
	case float64:
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
	}
	if n, ok := tableInt(v); ok {
		return json.Number(strconv.FormatInt(n, 10))
	}
	return fmt.Sprint(v)
}

func pow10(n uint8) float64 {
	f := 1.0
	for range n {
		f *= 10
	}
	return f
}

// FMPublishing is a message in fedora-messaging's format, as its Message
// class builds one: topic (the routing key), body, the object headers from
// md's sets, md's severity (info when empty) and sent-at now. msgID is
// kept when given, else a new UUID is made.
func FMPublishing(msgID string, md meta.Metadata, body map[string]any, now time.Time) (amqp.Publishing, error) {
	raw, err := EncodeEnvelope(body)
	if err != nil {
		return amqp.Publishing{}, err
	}
	if msgID == "" {
		msgID = newUUID()
	}
	sev := int32(20)
	for n, s := range fmSeverities {
		if s == md.Severity {
			sev = int32(n)
		}
	}
	h := amqp.Table{
		fmSchemaHeader:   "base.message",
		fmSentAtHeader:   now.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05+00:00"),
		fmSeverityHeader: sev,
		fmPriorityHeader: int32(0),
	}
	for _, k := range fmObjectKinds {
		for _, name := range *k.set(&md) {
			h[fmObjectPrefix+k.kind+"_"+name] = true
		}
	}
	return amqp.Publishing{
		ContentType:     fmContentType,
		ContentEncoding: fmEncoding,
		DeliveryMode:    amqp.Persistent,
		MessageId:       msgID,
		Headers:         h,
		Body:            raw,
	}, nil
}

// newUUID makes a random (version 4) UUID, the form of fedora-messaging's
// message ids.
func newUUID() string {
	id := NewMsgID(time.Time{}) // "YEAR-" followed by a UUID
	_, u, _ := strings.Cut(id, "-")
	return u
}
