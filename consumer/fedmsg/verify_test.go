package fedmsg

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const testdataDir = "../../testdata/fedmsg-signed"

// vectorTime is a moment inside the validity of the test PKI (CA, leaf
// certificates and CRL are valid from 2026-11-23 to 2036-11-21), so the
// tests do not depend on the wall clock.
var vectorTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type vector struct {
	Kind     string          `json:"kind"`
	Signer   *string         `json:"signer"`
	Valid    bool            `json:"valid"`
	Envelope json.RawMessage `json:"envelope"`
	Wire     string          `json:"wire"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open(filepath.Join(testdataDir, "vectors.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []vector
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v vector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("vector %d: %v", len(out)+1, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func testVerifier(t testing.TB, nitpicky bool) *Verifier {
	t.Helper()
	v, err := LoadVerifierFiles(
		filepath.Join(testdataDir, "ca.crt"),
		filepath.Join(testdataDir, "crl.pem"),
		filepath.Join(testdataDir, "routing_policy.json"),
		nitpicky,
	)
	if err != nil {
		t.Fatal(err)
	}
	v.now = func() time.Time { return vectorTime }
	return v
}

func signerName(v vector) string {
	if v.Signer == nil {
		return "<none>"
	}
	return *v.Signer
}

// TestVectors checks that every verdict of the reference validator is
// reproduced from the exact wire frame.
func TestVectors(t *testing.T) {
	ver := testVerifier(t, false)
	vecs := loadVectors(t)
	if len(vecs) == 0 {
		t.Fatal("no vectors")
	}
	agree := 0
	for i, vec := range vecs {
		env, err := DecodeEnvelope([]byte(vec.Wire))
		if err != nil {
			t.Errorf("vector %d (%s/%s): %v", i+1, vec.Kind, signerName(vec), err)
			continue
		}
		err = ver.Verify(env)
		if (err == nil) != vec.Valid {
			t.Errorf("vector %d kind=%s signer=%s: reference valid=%v, got err=%v",
				i+1, vec.Kind, signerName(vec), vec.Valid, err)
			continue
		}
		agree++
		// The failure must be for the reason the vector was made for.
		want := map[string]error{
			"tampered-body":    ErrBadSignature,
			"tampered-topic":   ErrBadSignature,
			"foreign-ca":       ErrUntrusted,
			"revoked":          ErrRevoked,
			"policy-violation": ErrNotAuthorized,
			"unsigned":         ErrUnsigned,
		}[vec.Kind]
		if want != nil && !errors.Is(err, want) {
			t.Errorf("vector %d kind=%s signer=%s: got %v, want %v", i+1, vec.Kind, signerName(vec), err, want)
		}
	}
	t.Logf("%d/%d vectors agree with the reference", agree, len(vecs))
}

// TestWireIsCanonical: the reference publisher sends fedmsg.encoding.dumps
// output, so re-encoding each decoded frame must give the frame back.
func TestWireIsCanonical(t *testing.T) {
	for i, vec := range loadVectors(t) {
		env, err := DecodeEnvelope([]byte(vec.Wire))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Canonical(env)
		if err != nil {
			t.Fatalf("vector %d: %v", i+1, err)
		}
		if string(got) != vec.Wire {
			t.Errorf("vector %d (%s): canonical differs from wire\n got: %s\nwant: %s", i+1, vec.Kind, got, vec.Wire)
		}
	}
}

func readSigner(t testing.TB, name string) ([]byte, []byte) {
	t.Helper()
	cert, err := os.ReadFile(filepath.Join(testdataDir, "ssl", name+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(testdataDir, "ssl", name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestSignReproducesReference re-signs each "signed" vector with its
// signer's key: PKCS#1 v1.5 is deterministic, so identical signature and
// certificate fields prove the canonical serialization is byte-exact.
func TestSignReproducesReference(t *testing.T) {
	n := 0
	for i, vec := range loadVectors(t) {
		if vec.Kind != "signed" {
			continue
		}
		certPEM, keyPEM := readSigner(t, signerName(vec))
		key, err := ParsePrivateKeyPEM(keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		env, err := DecodeEnvelope([]byte(vec.Wire))
		if err != nil {
			t.Fatal(err)
		}
		signed, err := Sign(env, certPEM, key)
		if err != nil {
			t.Fatalf("vector %d: %v", i+1, err)
		}
		if signed["signature"] != env["signature"] {
			t.Errorf("vector %d (%s): signature differs\n got: %q\nwant: %q", i+1, signerName(vec), signed["signature"], env["signature"])
		}
		if signed["certificate"] != env["certificate"] {
			t.Errorf("vector %d (%s): certificate field differs", i+1, signerName(vec))
		}
		n++
	}
	if n == 0 {
		t.Fatal("no signed vectors")
	}
	t.Logf("%d reference signatures reproduced", n)
}

func TestSignVerifyRoundTrip(t *testing.T) {
	certPEM, keyPEM := readSigner(t, "bodhi.app01")
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	env, err := DecodeEnvelope([]byte(`{"topic":"org.fedoraproject.prod.bodhi.update.comment",
		"i":1,"timestamp":1344350850.886738,"msg_id":"2026-x","username":"apache",
		"msg":{"comment":{"text":"Ça marche 👍","karma":1},"ratio":1.0,"big":12345678901234567890123}}`))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Sign(env, certPEM, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := env["signature"]; ok {
		t.Fatal("Sign modified its input")
	}
	ver := testVerifier(t, false)

	// Through the wire, as a consumer would see it.
	wire, err := Canonical(signed)
	if err != nil {
		t.Fatal(err)
	}
	received, err := DecodeEnvelope(wire)
	if err != nil {
		t.Fatal(err)
	}
	if err := ver.Verify(received); err != nil {
		t.Fatalf("round trip: %v", err)
	}

	// Tampered body.
	tampered, _ := DecodeEnvelope(wire)
	tampered["msg"].(map[string]any)["comment"].(map[string]any)["karma"] = json.Number("-1")
	if err := ver.Verify(tampered); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered body: got %v, want %v", err, ErrBadSignature)
	}

	// A float re-written with other digits is the same Python value:
	// still valid, because the verifier re-serializes.
	same, _ := DecodeEnvelope(wire)
	same["msg"].(map[string]any)["ratio"] = json.Number("1.000")
	if err := ver.Verify(same); err != nil {
		t.Fatalf("equivalent float text: %v", err)
	}
	// But 1 is an int for Python, not 1.0.
	same["msg"].(map[string]any)["ratio"] = json.Number("1")
	if err := ver.Verify(same); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("int for float: got %v", err)
	}

	// Removing "crypto" is tampering too: it is covered by the signature.
	nocrypto, _ := DecodeEnvelope(wire)
	delete(nocrypto, "crypto")
	if err := ver.Verify(nocrypto); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("crypto removed: got %v", err)
	}

	// Wrong key for the certificate.
	_, otherKey := readSigner(t, "koji.hub01")
	k2, _ := ParsePrivateKeyPEM(otherKey)
	if _, err := Sign(env, certPEM, k2); err == nil {
		t.Fatal("Sign accepted a key that does not match the certificate")
	}
}

func TestPolicyAndTime(t *testing.T) {
	certPEM, keyPEM := readSigner(t, "koji.hub01")
	key, _ := ParsePrivateKeyPEM(keyPEM)
	sign := func(topic string) map[string]any {
		s, err := Sign(map[string]any{"topic": topic, "msg": map[string]any{}}, certPEM, key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	lax := testVerifier(t, false)
	strict := testVerifier(t, true)

	listed := sign("org.fedoraproject.prod.buildsys.build.state.change")
	other := sign("org.fedoraproject.prod.bodhi.update.comment")
	unlisted := sign("org.fedoraproject.prod.wiki.article.edit")

	if err := lax.Verify(listed); err != nil {
		t.Errorf("listed topic, allowed CN: %v", err)
	}
	err := lax.Verify(other)
	if !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("listed topic, other CN: got %v", err)
	} else {
		t.Logf("policy error text: %v", err)
	}
	if err := lax.Verify(unlisted); err != nil {
		t.Errorf("unlisted topic, not nitpicky: %v", err)
	}
	if err := strict.Verify(unlisted); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("unlisted topic, nitpicky: got %v", err)
	}
	if err := strict.Verify(listed); err != nil {
		t.Errorf("listed topic, nitpicky: %v", err)
	}

	// Validity is judged at verification time (as OpenSSL does), not at
	// the message's timestamp.
	early := testVerifier(t, false)
	early.now = func() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) }
	if err := early.Verify(listed); !errors.Is(err, ErrCertTime) {
		t.Errorf("before notBefore: got %v", err)
	}
	late := testVerifier(t, false)
	late.now = func() time.Time { return time.Date(2037, 1, 1, 0, 0, 0, 0, time.UTC) }
	if err := late.Verify(listed); !errors.Is(err, ErrCertTime) {
		t.Errorf("after notAfter: got %v", err)
	}

	// Without a CRL, the revoked certificate is accepted (the reference
	// only checks revocation when a CRL is configured).
	ca, _ := os.ReadFile(filepath.Join(testdataDir, "ca.crt"))
	nocrl, err := NewVerifier(VerifierConfig{CA: ca, Now: func() time.Time { return vectorTime }})
	if err != nil {
		t.Fatal(err)
	}
	rc, rk := readSigner(t, "revoked.host01")
	rkey, _ := ParsePrivateKeyPEM(rk)
	rs, err := Sign(map[string]any{"topic": "x"}, rc, rkey)
	if err != nil {
		t.Fatal(err)
	}
	if err := nocrl.Verify(rs); err != nil {
		t.Errorf("revoked cert without CRL: %v", err)
	}
	if err := lax.Verify(rs); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked cert with CRL: got %v", err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	ver := testVerifier(t, false)
	cases := map[string]struct {
		env  map[string]any
		want error
	}{
		"nil":             {nil, ErrUnsigned},
		"empty":           {map[string]any{}, ErrUnsigned},
		"gpg":             {map[string]any{"crypto": "gpg", "signature": "x"}, ErrUnsupportedCrypto},
		"legacy gpg":      {map[string]any{"signature": "x"}, ErrUnsupportedCrypto},
		"no signature":    {map[string]any{"crypto": "x509", "certificate": "x"}, ErrUnsigned},
		"numeric sig":     {map[string]any{"crypto": "x509", "certificate": "x", "signature": json.Number("1")}, ErrMalformed},
		"bad base64":      {map[string]any{"crypto": "x509", "certificate": "QQ", "signature": "QQ=="}, ErrMalformed},
		"not a cert":      {map[string]any{"crypto": "x509", "certificate": "QUJD", "signature": "QUJD"}, ErrMalformed},
		"crypto not text": {map[string]any{"crypto": true}, ErrUnsupportedCrypto},
	}
	for name, c := range cases {
		if err := ver.Verify(c.env); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}
