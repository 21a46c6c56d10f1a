package consumer

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"fmn/rules/meta"
)

// fmDelivery is a message as fedora-messaging's Message class sends it
// (_build_properties and _filter_headers): the properties and headers it
// sets, with pika's integer widths.
func fmDelivery(body string, headers amqp.Table) amqp.Delivery {
	h := amqp.Table{
		"fedora_messaging_schema":   "bodhi.update.comment.v1",
		"sent-at":                   "2019-07-30T19:12:22+00:00",
		"fedora_messaging_severity": int64(20),
		"priority":                  int64(0),
	}
	for k, v := range headers {
		h[k] = v
	}
	return amqp.Delivery{
		RoutingKey: "org.fedoraproject.prod.bodhi.update.comment", MessageId: "0c9b8d42-9f2e-4c36-9a37-6f1d7c2b4e11",
		ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Headers: h, Body: []byte(body),
	}
}

const bodhiComment = `{"agent":"ralph","comment":{"user":{"name":"ralph"},"text":"works","update_title":"kernel-5.0-1.fc30"}}`

// The headers' sets and severity are what the rules see; the tables fill
// only what the headers do not carry.
func TestFedoraMessagingMapping(t *testing.T) {
	t.Parallel()
	d := fmDelivery(bodhiComment, amqp.Table{
		"fedora_messaging_severity":                 int32(30),
		"fedora_messaging_user_bob":                 true,
		"fedora_messaging_user_alice":               true,
		"fedora_messaging_rpm_python-requests":      true,
		"fedora_messaging_group_python-sig":         true,
		"fedora_messaging_container_rawhide:latest": true,
		"fedora_messaging_module_nodejs":            true,
		"fedora_messaging_flatpak_firefox":          true,
		"fedora_messaging_user_carol":               false, // not set: only true counts
		"fedora_messaging_user_":                    true,  // no name
		"fedora_messaging_gadget_x":                 true,  // not an object kind
	})
	env, hm, err := DecodeDelivery(&d, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if env.MsgID != d.MessageId || env.Derived || env.Topic != d.RoutingKey {
		t.Errorf("msg_id %q topic %q", env.MsgID, env.Topic)
	}
	if env.Timestamp == nil || !env.Timestamp.Equal(time.Date(2019, 7, 30, 19, 12, 22, 0, time.UTC)) {
		t.Errorf("sent_at %v", env.Timestamp)
	}
	r := Received{Envelope: env, hdr: hm}
	md := r.extract()
	want := map[string][]string{"usernames": {"alice", "bob"}, "packages": {"python-requests"}, "groups": {"python-sig"},
		"containers": {"rawhide:latest"}, "modules": {"nodejs"}, "flatpaks": {"firefox"}}
	got := map[string][]string{"usernames": md.Usernames, "packages": md.Packages, "groups": md.Groups,
		"containers": md.Containers, "modules": md.Modules, "flatpaks": md.Flatpaks}
	for k := range want {
		if !slices.Equal(got[k], want[k]) {
			t.Errorf("%s = %q, want exactly the headers' %q", k, got[k], want[k])
		}
	}
	if md.Severity != "warning" {
		t.Errorf("severity %q, want warning (30)", md.Severity)
	}
	if md.App != "bodhi" || md.Agent != "ralph" || md.Link != "https://bodhi.fedoraproject.org/updates/kernel-5.0-1.fc30" || md.Summary == "" {
		t.Errorf("what the tables give: %+v", md)
	}
	// What is stored reads like a fedmsg envelope and decodes as one.
	back, err := Decode(env.Raw, 0)
	if err != nil {
		t.Fatalf("stored envelope %s: %v", env.Raw, err)
	}
	if back.MsgID != env.MsgID || back.Topic != env.Topic || back.Headers["fedora_messaging_schema"] != "bodhi.update.comment.v1" ||
		back.Timestamp == nil || !back.Timestamp.Equal(*env.Timestamp) {
		t.Errorf("stored envelope %s", env.Raw)
	}
	if c, _ := back.Body.(map[string]any)["comment"].(map[string]any); c["text"] != "works" {
		t.Errorf("body not kept: %s", env.Raw)
	}
}

// Without object headers the sets are empty, not guessed from the body;
// severity follows the header, info when absent or unknown.
func TestFedoraMessagingSeverityAndEmptySets(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sev  any
		want string
	}{{int8(10), "debug"}, {int16(20), "info"}, {int32(30), "warning"}, {int64(40), "error"}, {nil, "info"}, {int64(42), "info"}, {"40", "info"}} {
		d := fmDelivery(bodhiComment, nil)
		if c.sev == nil {
			delete(d.Headers, "fedora_messaging_severity")
		} else {
			d.Headers["fedora_messaging_severity"] = c.sev
		}
		env, hm, err := DecodeDelivery(&d, 0)
		if err != nil {
			t.Fatal(err)
		}
		md := (&Received{Envelope: env, hdr: hm}).extract()
		if md.Severity != c.want {
			t.Errorf("severity header %#v: %q, want %q", c.sev, md.Severity, c.want)
		}
		if len(md.Usernames)+len(md.Packages) != 0 || md.Usernames == nil || md.Groups == nil {
			t.Errorf("no object headers, yet sets %q %q (the body names ralph and kernel)", md.Usernames, md.Packages)
		}
	}
}

// A message that can never be stored is refused with a reason for the
// metric.
func TestFedoraMessagingPoison(t *testing.T) {
	t.Parallel()
	big := `{"x":"` + strings.Repeat("a", 5<<20) + `"}`
	cases := []struct {
		name   string
		change func(d *amqp.Delivery)
		reason string
	}{
		{"not JSON", func(d *amqp.Delivery) { d.Body = []byte("hello") }, "json"},
		{"a JSON array", func(d *amqp.Delivery) { d.Body = []byte(`[1,2]`) }, "not_object"},
		{"a JSON string", func(d *amqp.Delivery) { d.Body = []byte(`"x"`) }, "not_object"},
		{"two objects", func(d *amqp.Delivery) { d.Body = []byte(`{}{}`) }, "json"},
		{"5 MB", func(d *amqp.Delivery) { d.Body = []byte(big) }, "oversized"},
		{"not UTF-8", func(d *amqp.Delivery) { d.Body = []byte("{\"x\":\"\xff\"}") }, "json"},
		{"deep", func(d *amqp.Delivery) { d.Body = []byte(strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)) }, "nesting"},
		{"text/plain", func(d *amqp.Delivery) { d.ContentType = "text/plain" }, "content_type"},
		{"json in latin-1", func(d *amqp.Delivery) { d.ContentType = "application/json; charset=latin-1" }, "content_type"},
		{"gzip", func(d *amqp.Delivery) { d.ContentEncoding = "gzip" }, "content_encoding"},
		{"no routing key", func(d *amqp.Delivery) { d.RoutingKey = "" }, "shape"},
		{"long message_id", func(d *amqp.Delivery) { d.MessageId = strings.Repeat("x", 201) }, "shape"},
	}
	for _, c := range cases {
		d := fmDelivery(bodhiComment, nil)
		c.change(&d)
		_, _, err := DecodeDelivery(&d, 4<<20)
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason != c.reason {
			t.Errorf("%s: %v, want reason %s", c.name, err, c.reason)
		}
	}
	// Leniency where fedora-messaging is lenient: no content type or
	// encoding, another spelling of UTF-8, no message_id (derived, stable).
	d := fmDelivery(bodhiComment, nil)
	d.ContentType, d.ContentEncoding, d.MessageId = "", "", ""
	e1, _, err := DecodeDelivery(&d, 0)
	if err != nil || !e1.Derived {
		t.Fatalf("bare message: %v %+v", err, e1)
	}
	d.ContentType, d.ContentEncoding = "application/json; charset=UTF-8", "UTF8"
	e2, _, err := DecodeDelivery(&d, 0)
	if err != nil || e2.MsgID != e1.MsgID {
		t.Fatalf("same message again: %v, id %q vs %q", err, e2.MsgID, e1.MsgID)
	}
}

// What fmn publishes is what fmn reads back, sets and severity included.
func TestFMPublishingRoundTrip(t *testing.T) {
	t.Parallel()
	md := meta.Metadata{Usernames: []string{"alice"}, Packages: []string{"kernel", "glibc"}, Groups: []string{"infra"},
		Severity: "debug"}
	pub, err := FMPublishing("", md, map[string]any{"k": "v"}, time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if pub.ContentType != "application/json" || pub.ContentEncoding != "utf-8" || pub.DeliveryMode != 2 || len(pub.MessageId) != 36 ||
		pub.Headers["sent-at"] != "2026-01-02T03:04:05+00:00" || pub.Headers["fedora_messaging_severity"] != int32(10) {
		t.Fatalf("publishing %+v", pub)
	}
	d := amqp.Delivery{RoutingKey: "org.fedoraproject.prod.test", MessageId: pub.MessageId, ContentType: pub.ContentType,
		ContentEncoding: pub.ContentEncoding, Headers: pub.Headers, Body: pub.Body}
	env, hm, err := DecodeDelivery(&d, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := (&Received{Envelope: env, hdr: hm}).extract()
	if !slices.Equal(got.Packages, []string{"glibc", "kernel"}) || !slices.Equal(got.Usernames, md.Usernames) ||
		!slices.Equal(got.Groups, md.Groups) || got.Severity != "debug" || env.MsgID != pub.MessageId {
		t.Fatalf("read back %+v", got)
	}
}

func FuzzDecodeDelivery(f *testing.F) {
	f.Add([]byte(bodhiComment), "application/json", "org.x.y")
	f.Add([]byte(`[]`), "", "a")
	f.Add([]byte(`{"a":"\u0000"}`), "application/json; charset=utf-8", "b")
	f.Fuzz(func(t *testing.T, body []byte, ctype, key string) {
		d := fmDelivery("", nil)
		d.Body, d.ContentType, d.RoutingKey = body, ctype, key
		env, hm, err := DecodeDelivery(&d, 1<<16)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("not a DecodeError: %v", err)
			}
			return
		}
		if _, err := Decode(env.Raw, 0); err != nil {
			t.Fatalf("stored envelope does not decode: %v\n%s", err, env.Raw)
		}
		(&Received{Envelope: env, hdr: hm}).extract()
	})
}

// BenchmarkDecodeDelivery is the AMQP source's own work per message,
// before the metadata tables.
func BenchmarkDecodeDelivery(b *testing.B) {
	d := fmDelivery(bodhiComment, amqp.Table{"fedora_messaging_user_ralph": true, "fedora_messaging_rpm_kernel": true})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeDelivery(&d, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// Fedora's bridges carry a message to the other bus in shapes of their
// own; fmn reads each copy as the original, so that whichever comes first
// is stored and the other is a duplicate.
func TestFedoraMessagingBridges(t *testing.T) {
	t.Parallel()
	// zmq_to_amqp: the whole fedmsg envelope as the body of a base
	// Message, its msg_id as message_id, no object headers.
	fedmsgEnv := `{"topic":"org.fedoraproject.prod.bodhi.update.comment","msg_id":"2026-0c9b8d42-9f2e-4c36-9a37-6f1d7c2b4e11",` +
		`"i":3,"timestamp":1767225600.5,"username":"apache","msg":` + bodhiComment + `}`
	d := fmDelivery(fedmsgEnv, amqp.Table{"fedora_messaging_schema": "base.message"})
	d.MessageId = "2026-0c9b8d42-9f2e-4c36-9a37-6f1d7c2b4e11"
	env, hm, err := DecodeDelivery(&d, 0)
	if err != nil {
		t.Fatal(err)
	}
	zenv, err := Decode([]byte(fedmsgEnv), 0)
	if err != nil {
		t.Fatal(err)
	}
	fromAMQP, fromZMQ := (&Received{Envelope: env, hdr: hm}).extract(), (&Received{Envelope: zenv}).extract()
	fromZMQ.Severity = "info" // the header's, absent on ZeroMQ
	if env.MsgID != zenv.MsgID || env.Username != "apache" || string(env.Raw) != fedmsgEnv ||
		!slices.Equal(fromAMQP.Usernames, []string{"ralph"}) || !slices.Equal(fromAMQP.Packages, fromZMQ.Packages) ||
		fromAMQP.Link != fromZMQ.Link || fromAMQP.Severity != "info" {
		t.Errorf("bridged to AMQP: %s %+v\nread from ZeroMQ: %s %+v", env.MsgID, fromAMQP, zenv.MsgID, fromZMQ)
	}

	// amqp_to_zmq: the body wrapped in an envelope from "amqp-bridge",
	// msg_id "YEAR-" and the message_id.
	wrapped := `{"topic":"org.fedoraproject.prod.bodhi.update.comment","msg":` + bodhiComment +
		`,"timestamp":1767225600,"msg_id":"2026-0c9b8d42-9f2e-4c36-9a37-6f1d7c2b4e11","i":9,"username":"amqp-bridge"}`
	benv, err := Decode([]byte(wrapped), 0)
	if err != nil {
		t.Fatal(err)
	}
	if benv.MsgID != "0c9b8d42-9f2e-4c36-9a37-6f1d7c2b4e11" {
		t.Errorf("amqp-bridge copy has msg_id %q, want the AMQP message_id", benv.MsgID)
	}
	// Only the bridge's own messages: another sender's ids stay as sent.
	other, _ := Decode([]byte(strings.Replace(wrapped, "amqp-bridge", "apache", 1)), 0)
	odd, _ := Decode([]byte(strings.Replace(wrapped, "2026-0c9b", "26-0c9b", 1)), 0)
	if other.MsgID != "2026-0c9b8d42-9f2e-4c36-9a37-6f1d7c2b4e11" || odd.MsgID != "26-0c9b8d42-9f2e-4c36-9a37-6f1d7c2b4e11" {
		t.Errorf("ids changed: %q %q", other.MsgID, odd.MsgID)
	}
}
