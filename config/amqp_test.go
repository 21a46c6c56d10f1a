package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAMQPSettings(t *testing.T) {
	t.Parallel()
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AMQPURL != "" || c.AMQPQueue != "fmn" || c.AMQPPrefetch != DefaultAMQPPrefetch || c.BusReconnectMax != time.Second ||
		!reflect.DeepEqual(c.AMQPBindings, []AMQPBinding{{"amq.topic", "#"}}) {
		t.Fatalf("defaults: %+v", c)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	os.WriteFile(key, []byte("x"), 0o600)
	c, err = Load("", []string{"FMN_AMQP_URL=amqps://broker.example.org/%2Fpubsub", "FMN_AMQP_QUEUE=00000000-0000-4000-8000-000000000000",
		"FMN_AMQP_BINDINGS=amq.topic:org.fedoraproject.prod.#, zmq.topic:#", "FMN_AMQP_PREFETCH=50",
		"FMN_AMQP_CERT=" + cert, "FMN_AMQP_KEY=" + key, "FMN_AMQP_CA_CERT=" + cert, "FMN_BUS_RECONNECT_MAX=250ms"})
	if err != nil {
		t.Fatal(err)
	}
	if c.AMQPPrefetch != 50 || c.BusReconnectMax != 250*time.Millisecond || c.AMQPCert != cert ||
		!reflect.DeepEqual(c.AMQPBindings, []AMQPBinding{{"amq.topic", "org.fedoraproject.prod.#"}, {"zmq.topic", "#"}}) {
		t.Fatalf("set: %+v", c)
	}
	_, err = Load("", []string{"FMN_AMQP_URL=http://x", "FMN_AMQP_BINDINGS=nocolon,:#", "FMN_AMQP_PREFETCH=0", "FMN_BUS_RECONNECT_MAX=1ms"})
	for _, want := range []string{"FMN_AMQP_URL", `"nocolon"`, `":#"`, "FMN_AMQP_PREFETCH", "FMN_BUS_RECONNECT_MAX"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad values: error does not mention %s: %v", want, err)
		}
	}
	_, err = Load("", []string{"FMN_AMQP_URL=amqp://h/", "FMN_AMQP_CERT=" + cert})
	if err == nil || !strings.Contains(err.Error(), "give both") || !strings.Contains(err.Error(), "amqps://") {
		t.Errorf("a certificate without its key, on amqp://: %v", err)
	}
	_, err = Load("", []string{"FMN_AMQP_URL=amqps://h/", "FMN_AMQP_CERT=/nonexistent/c.pem", "FMN_AMQP_KEY=" + key})
	if err == nil || !strings.Contains(err.Error(), "FMN_AMQP_CERT: stat /nonexistent/c.pem") {
		t.Errorf("a missing certificate file: %v", err)
	}
	if _, err = Load("", []string{"FMN_AMQP_KEY=" + key}); err == nil || !strings.Contains(err.Error(), "FMN_AMQP_URL: required") {
		t.Errorf("a key without a URL: %v", err)
	}
	c, _ = Load("", []string{"FMN_AMQP_URL=amqp://fmn:s3cret@h/"})
	if s := fmt.Sprint(c.LogValues()...); strings.Contains(s, "s3cret") || !strings.Contains(s, "amqp://fmn:xxxxx@h/") {
		t.Error("the AMQP password reaches the log")
	}
}
