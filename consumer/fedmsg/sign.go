package fedmsg

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
)

// Field names fedmsg's X.509 backend reads and writes.
const (
	fieldCrypto      = "crypto"
	fieldSignature   = "signature"
	fieldCertificate = "certificate"
	backendX509      = "x509"
)

// Sign returns a copy of envelope signed the way fedmsg's x509_ng signer does:
// "crypto" is set to "x509"; the envelope without "signature" and
// "certificate" is serialized with [Canonical] and signed with RSA PKCS#1
// v1.5 over SHA-1; "signature" is the base64 of the signature and
// "certificate" the base64 of the certificate's PEM text, both wrapped at 76
// characters with a final newline (the layout M2Crypto produced, which
// fedmsg kept for compatibility). The input map is not modified.
//
// certPEM must hold the signer's certificate; like the reference, only its
// first certificate is used and it is re-encoded as standard PEM, so the
// "certificate" field does not depend on the file's line endings or
// comments. key must be the certificate's private key.
//
// PKCS#1 v1.5 is deterministic: signing the same envelope with the same key
// gives the same bytes as the Python signer.
func Sign(envelope map[string]any, certPEM []byte, key *rsa.PrivateKey) (map[string]any, error) {
	if key == nil {
		return nil, errors.New("fedmsg sign: no private key")
	}
	cert, err := firstCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("fedmsg sign: %w", err)
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("fedmsg sign: private key does not match the certificate")
	}

	msg := maps.Clone(envelope)
	if msg == nil {
		msg = map[string]any{}
	}
	delete(msg, fieldSignature)
	delete(msg, fieldCertificate)
	msg[fieldCrypto] = backendX509

	body, err := Canonical(msg)
	if err != nil {
		return nil, fmt.Errorf("fedmsg sign: serializing envelope: %w", err)
	}
	digest := sha1.Sum(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, digest[:])
	if err != nil {
		return nil, fmt.Errorf("fedmsg sign: %w", err)
	}
	certText := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})

	msg[fieldSignature] = wrap76(base64.StdEncoding.EncodeToString(sig))
	msg[fieldCertificate] = wrap76(base64.StdEncoding.EncodeToString(certText))
	return msg, nil
}

// wrap76 splits s into lines of 76 characters joined by "\n" and ends it with
// "\n", as fedmsg's _prep_crypto_msg (and Python's base64.encodebytes) do.
func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76])
		b.WriteByte('\n')
		s = s[76:]
	}
	b.WriteString(s)
	b.WriteByte('\n')
	return b.String()
}

// firstCertificate parses the first CERTIFICATE block of a PEM text, as
// OpenSSL's PEM reader (and so the reference) does, skipping other blocks.
func firstCertificate(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM certificate found")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		return cert, nil
	}
}

// ParsePrivateKeyPEM reads an RSA private key in PKCS#1 ("RSA PRIVATE KEY")
// or PKCS#8 ("PRIVATE KEY") PEM form, the forms fedmsg's .key files use.
func ParsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing PKCS#1 key: %w", err)
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing PKCS#8 key: %w", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T, not RSA", k)
			}
			return rk, nil
		}
	}
}

// DecodeEnvelope decodes one envelope (the second ZeroMQ frame of a fedmsg
// message) with UseNumber, so that numbers keep their exact text and
// [Canonical] can tell Python ints from floats. Trailing data after the
// object is an error.
func DecodeEnvelope(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var env map[string]any
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("decoding envelope: %w", err)
	}
	if env == nil {
		return nil, errors.New("decoding envelope: not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decoding envelope: trailing data after the object")
	}
	return env, nil
}
