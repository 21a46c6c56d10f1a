package meta

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// TestNumbersAsTheConsumerDecodesThem: the consumer decodes envelopes with
// UseNumber (numbers stay exact for signature checks), so bodies reach
// Extract holding json.Number where these tests' decoding gives float64.
// Every corpus message must come out the same either way: ids in links,
// karma and build states in summaries.
func TestNumbersAsTheConsumerDecodesThem(t *testing.T) {
	t.Parallel()
	f, err := os.Open(corpusPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		type line struct {
			Msg struct {
				Topic    string `json:"topic"`
				Username string `json:"username"`
				Msg      any    `json:"msg"`
			} `json:"msg"`
		}
		var plain, exact line
		if err := json.Unmarshal(sc.Bytes(), &plain); err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&exact); err != nil {
			t.Fatal(err)
		}
		a := Extract(plain.Msg.Topic, plain.Msg.Msg, plain.Msg.Username)
		b := Extract(exact.Msg.Topic, exact.Msg.Msg, exact.Msg.Username)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s:\nfloat64:     %+v\njson.Number: %+v", plain.Msg.Topic, a, b)
		}
		n++
	}
	if n < 300 {
		t.Fatalf("only %d corpus lines", n)
	}
}
