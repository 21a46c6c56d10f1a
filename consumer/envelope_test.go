package consumer

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestDecodeFields(t *testing.T) {
	t.Parallel()
	env, err := DecodeFrames([][]byte{[]byte("a.b"), []byte(`{"topic":"a.b","msg":{"x":1},"msg_id":"m1","i":3,"seq_id":42,"headers":{"sent-at":"now"},"timestamp":1700000000.5,"username":"u"}`)}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if env.SeqID != 42 || env.Seq != 3 || env.Headers["sent-at"] != "now" || env.MsgID != "m1" || env.Username != "u" || env.Timestamp.Unix() != 1700000000 {
		t.Fatalf("decoded %+v", env)
	}
	bad := map[string]string{
		`{"topic":"a.b","msg":{},"seq_id":-1}`:   "shape",
		`{"topic":"a.b","msg":{},"seq_id":"7"}`:  "shape",
		`{"topic":"a.b","msg":{},"headers":[1]}`: "shape",
		`{"topic":"a.b"}`:                        "shape",
		`[1,2]`:                                  "json",
		`{"topic":"a.b","msg":{}} {}`:            "json",
		"{\"topic\":\"a.b\",\"msg\":\"\xff\"}":   "json",
		`{"topic":"a.b","msg":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`: "nesting",
	}
	for raw, reason := range bad {
		_, err := Decode([]byte(raw), 1<<20)
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason != reason {
			t.Errorf("Decode(%.60q) = %v, want reason %s", raw, err, reason)
		}
	}
	if _, err := DecodeFrames([][]byte{[]byte("x.y"), []byte(`{"topic":"a.b","msg":{}}`)}, 0); err == nil {
		t.Error("a topic frame that differs from the envelope's topic was accepted")
	}
	if _, err := Decode([]byte(`{"topic":"a.b","msg":"`+strings.Repeat("x", 2000)+`"}`), 1024); err == nil {
		t.Error("an envelope over the limit was accepted")
	}
}

// FuzzDecode: whatever the bytes, Decode returns an envelope or a
// DecodeError with a reason, never panics, and what it accepts is a JSON
// object whose topic and msg_id are usable.
func FuzzDecode(f *testing.F) {
	for _, path := range []string{"../testdata/fedmsg-meta.jsonl", "../testdata/fedmsg-signed/vectors.jsonl"} {
		fh, err := os.Open(path)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for n := 0; sc.Scan() && n < 40; n++ {
			var line struct {
				Msg  json.RawMessage `json:"msg"`
				Wire string          `json:"wire"`
			}
			json.Unmarshal(sc.Bytes(), &line)
			if line.Wire != "" {
				f.Add([]byte(line.Wire))
			} else if len(line.Msg) > 0 {
				f.Add([]byte(line.Msg))
			}
		}
		fh.Close()
	}
	f.Add([]byte(`{"topic":"a","msg":null,"seq_id":1e3}`))
	f.Add([]byte(`{"topic":"a","msg":{},"i":-0,"timestamp":"x"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := Decode(raw, 64<<10)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if env.Topic == "" || env.MsgID == "" || env.Fields == nil {
			t.Fatalf("accepted envelope lacks topic or msg_id: %+v", env)
		}
		if !json.Valid(raw) {
			t.Fatalf("accepted invalid JSON %q", raw)
		}
		again, err := Decode(raw, 64<<10)
		if err != nil || again.MsgID != env.MsgID {
			t.Fatalf("decoding twice differs: %v %q %q", err, again.MsgID, env.MsgID)
		}
	})
}
