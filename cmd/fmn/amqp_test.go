package main

import (
	"log/slog"
	"testing"

	"fmn/config"
	"fmn/consumer/amqptest"
	"fmn/metrics"
)

// FMN_AMQP_* make the source fmn serve runs: amqps with a client
// certificate logs in by SASL EXTERNAL; without one, by the URL's
// password; plain amqp uses no TLS at all.
func TestAMQPSourceFromConfig(t *testing.T) {
	t.Parallel()
	certs, err := amqptest.WriteCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		env           []string
		tls, external bool
	}{
		{[]string{"FMN_AMQP_URL=amqps://broker.example.org/%2Fpubsub", "FMN_AMQP_CA_CERT=" + certs.CA,
			"FMN_AMQP_CERT=" + certs.ClientCert, "FMN_AMQP_KEY=" + certs.ClientKey}, true, true},
		{[]string{"FMN_AMQP_URL=amqps://u:p@broker.example.org/", "FMN_AMQP_CA_CERT=" + certs.CA}, true, false},
		{[]string{"FMN_AMQP_URL=amqp://u:p@127.0.0.1/", "FMN_AMQP_BINDINGS=a:x.#,b:#", "FMN_AMQP_QUEUE=mine", "FMN_AMQP_PREFETCH=7"}, false, false},
	} {
		cfg, err := config.Load("", c.env)
		if err != nil {
			t.Fatal(err)
		}
		src, err := amqpSource(cfg, metrics.New(), quiet)
		if err != nil {
			t.Fatal(err)
		}
		if (src.TLS != nil) != c.tls || src.External != c.external || (c.external && len(src.TLS.Certificates) != 1) ||
			(c.tls && src.TLS.RootCAs == nil) {
			t.Errorf("%v: TLS %v, external %v", c.env, src.TLS != nil, src.External)
		}
		if !c.tls && (src.Queue != "mine" || src.Prefetch != 7 || len(src.Bindings) != 2 || src.Bindings[1].Exchange != "b") {
			t.Errorf("%v: %+v", c.env, src)
		}
	}
}
