package fedmsg

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"
)

// Reasons a message fails verification. Verify wraps one of them, with
// details, so callers can tell them apart with errors.Is; the text of each is
// the short reason shown to people.
var (
	ErrUnsigned          = errors.New("no signature")
	ErrUnsupportedCrypto = errors.New("unsupported crypto backend")
	ErrMalformed         = errors.New("malformed signature fields")
	ErrUntrusted         = errors.New("certificate not signed by the CA")
	ErrCertTime          = errors.New("certificate expired or not yet valid")
	ErrCertRejected      = errors.New("certificate rejected")
	ErrCRL               = errors.New("revocation check failed")
	ErrRevoked           = errors.New("certificate revoked")
	ErrBadSignature      = errors.New("signature mismatch")
	ErrNotAuthorized     = errors.New("not allowed by the routing policy")
)

// reasonError is a failure whose text stands on its own while still
// matching its reason with errors.Is.
type reasonError struct {
	reason error
	msg    string
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.reason }

// VerifierConfig holds what fedmsg's validator reads from its configuration.
type VerifierConfig struct {
	// CA is the PEM text of the trusted CA certificate(s)
	// (fedmsg's ca_cert_location). Every certificate in it is trusted; the
	// reference only loads the first one, so a bundle is a superset.
	CA []byte
	// CRL is the PEM text of the CA's revocation list(s) (crl_location).
	// Optional: when empty no revocation check is made, as in the
	// reference. When set, every certificate of the chain must be covered
	// by a current CRL from its issuer (OpenSSL's CRL_CHECK|CRL_CHECK_ALL).
	CRL []byte
	// RoutingPolicy maps a topic to the certificate CNs allowed to publish
	// on it (routing_policy). CNs are compared for exact equality.
	RoutingPolicy map[string][]string
	// Nitpicky rejects topics missing from RoutingPolicy (routing_nitpicky);
	// when false such topics are open to any valid certificate.
	Nitpicky bool
	// Now returns the time at which certificates and CRLs must be valid.
	// Defaults to time.Now, which is what the reference (OpenSSL's
	// X509_verify_cert) uses; the message's own timestamp plays no part.
	Now func() time.Time
}

// Verifier checks signed fedmsg envelopes like fedmsg.crypto.validate with
// the x509 backend. It is safe for concurrent use.
type Verifier struct {
	cas      []*x509.Certificate
	roots    *x509.CertPool
	crls     []*x509.RevocationList
	policy   map[string][]string
	nitpicky bool
	now      func() time.Time
}

// NewVerifier parses the CA and CRL of cfg. A CRL that no configured CA
// signed is a configuration error (the reference would reject every message).
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	v := &Verifier{
		roots:    x509.NewCertPool(),
		policy:   make(map[string][]string, len(cfg.RoutingPolicy)),
		nitpicky: cfg.Nitpicky,
		now:      cfg.Now,
	}
	if v.now == nil {
		v.now = time.Now
	}
	for topic, names := range cfg.RoutingPolicy {
		v.policy[topic] = slices.Clone(names)
	}

	rest := cfg.CA
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("fedmsg verifier: parsing CA certificate: %w", err)
		}
		v.cas = append(v.cas, ca)
		v.roots.AddCert(ca)
	}
	if len(v.cas) == 0 {
		return nil, errors.New("fedmsg verifier: no CA certificate in the CA PEM")
	}

	if len(bytes.TrimSpace(cfg.CRL)) > 0 {
		rest := cfg.CRL
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "X509 CRL" {
				continue
			}
			crl, err := x509.ParseRevocationList(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("fedmsg verifier: parsing CRL: %w", err)
			}
			if !v.signedByCA(crl) {
				return nil, fmt.Errorf("fedmsg verifier: CRL issued by %q is not signed by a configured CA", crl.Issuer)
			}
			v.crls = append(v.crls, crl)
		}
		if len(v.crls) == 0 {
			return nil, errors.New("fedmsg verifier: no X509 CRL block in the CRL PEM")
		}
	}
	return v, nil
}

func (v *Verifier) signedByCA(crl *x509.RevocationList) bool {
	for _, ca := range v.cas {
		if bytes.Equal(ca.RawSubject, crl.RawIssuer) && crl.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}

// LoadVerifierFiles builds a Verifier from a CA PEM file, an optional CRL
// PEM file and an optional routing policy JSON file (an object mapping each
// topic to a list of CNs). Empty paths mean "none".
func LoadVerifierFiles(caPath, crlPath, policyPath string, nitpicky bool) (*Verifier, error) {
	cfg := VerifierConfig{Nitpicky: nitpicky}
	var err error
	if cfg.CA, err = os.ReadFile(caPath); err != nil {
		return nil, fmt.Errorf("fedmsg verifier: reading CA: %w", err)
	}
	if crlPath != "" {
		if cfg.CRL, err = os.ReadFile(crlPath); err != nil {
			return nil, fmt.Errorf("fedmsg verifier: reading CRL: %w", err)
		}
	}
	if policyPath != "" {
		data, err := os.ReadFile(policyPath)
		if err != nil {
			return nil, fmt.Errorf("fedmsg verifier: reading routing policy: %w", err)
		}
		if err := json.Unmarshal(data, &cfg.RoutingPolicy); err != nil {
			return nil, fmt.Errorf("fedmsg verifier: parsing routing policy %s: %w", policyPath, err)
		}
	}
	return NewVerifier(cfg)
}

// Verify returns nil when envelope is validly signed and its signer may
// publish on its topic, and otherwise an error wrapping one of the Err*
// reasons. envelope must come from [DecodeEnvelope] (or a json.Decoder with
// UseNumber); it is not modified.
//
// The checks and their order follow the reference:
//  1. backend: "crypto" must be "x509"; an envelope without "crypto" is
//     taken as x509 if it has a "certificate" (fedmsg <= 0.7.2 senders);
//     one with neither "crypto" nor "certificate" is unsigned (or gpg,
//     which is not supported).
//  2. "signature" and "certificate" must be strings holding base64.
//  3. the certificate (first PEM certificate of the decoded text) must
//     chain to the CA and be within its validity period now, and no
//     certificate of the chain may be revoked by the CRL, which must itself
//     be current. No key usage or purpose is required, as with OpenSSL's
//     default verification.
//  4. the signature must be RSA PKCS#1 v1.5 with SHA-1 over the canonical
//     serialization of the envelope minus "signature" and "certificate"
//     (so "crypto" is covered). The received bytes are never used.
//  5. routing policy: if the topic is listed, the certificate's first CN
//     must be one of the listed names, compared exactly; unlisted topics
//     (and a missing or non-string topic) pass unless Nitpicky.
func (v *Verifier) Verify(envelope map[string]any) error {
	if envelope == nil {
		return ErrUnsigned
	}
	if c, ok := envelope[fieldCrypto]; ok {
		if s, isStr := c.(string); !isStr || s != backendX509 {
			return fmt.Errorf("%w: %v", ErrUnsupportedCrypto, c)
		}
	} else if _, ok := envelope[fieldCertificate]; !ok {
		if _, ok := envelope[fieldSignature]; ok {
			return fmt.Errorf("%w: gpg (signature without certificate)", ErrUnsupportedCrypto)
		}
		return ErrUnsigned
	}

	sig, err := base64Field(envelope, fieldSignature)
	if err != nil {
		return err
	}
	certText, err := base64Field(envelope, fieldCertificate)
	if err != nil {
		return err
	}
	cert, err := firstCertificate(certText)
	if err != nil {
		return fmt.Errorf("%w: certificate: %v", ErrMalformed, err)
	}

	if err := v.checkCertificate(cert); err != nil {
		return err
	}

	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate key is %T, not RSA", ErrBadSignature, cert.PublicKey)
	}
	body := maps.Clone(envelope)
	delete(body, fieldSignature)
	delete(body, fieldCertificate)
	data, err := Canonical(body)
	if err != nil {
		return fmt.Errorf("%w: cannot serialize envelope: %v", ErrBadSignature, err)
	}
	digest := sha1.Sum(data)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA1, digest[:], sig); err != nil {
		return ErrBadSignature
	}

	cn, ok := firstCommonName(cert)
	if !ok {
		return fmt.Errorf("%w: certificate has no CN", ErrNotAuthorized)
	}
	topic, isStr := envelope["topic"].(string)
	allowed, listed := v.policy[topic]
	if !isStr || !listed {
		if v.nitpicky {
			return fmt.Errorf("%w: no routing policy for topic %v (nitpicky)", ErrNotAuthorized, envelope["topic"])
		}
		return nil
	}
	if !slices.Contains(allowed, cn) {
		return &reasonError{ErrNotAuthorized, fmt.Sprintf("CN %s not allowed to publish on topic %s", cn, topic)}
	}
	return nil
}

// base64Field decodes a signature or certificate field. Like Python's
// base64.b64decode (non-validating), characters outside the base64 alphabet,
// such as the line breaks fedmsg inserts, are ignored.
func base64Field(envelope map[string]any, name string) ([]byte, error) {
	raw, ok := envelope[name]
	if !ok {
		if name == fieldSignature {
			return nil, ErrUnsigned
		}
		return nil, fmt.Errorf("%w: no certificate", ErrMalformed)
	}
	s, ok := raw.(string)
	if !ok {
		return nil, fmt.Errorf("%w: %s is %T, not a string", ErrMalformed, name, raw)
	}
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
			clean = append(clean, c)
		}
	}
	out, err := base64.StdEncoding.DecodeString(string(clean))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	return out, nil
}

// checkCertificate is the reference's _validate_signing_cert: chain to the
// CA at the current time, then CRL checks over the whole chain.
func (v *Verifier) checkCertificate(cert *x509.Certificate) error {
	now := v.now()
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:       v.roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var unknown x509.UnknownAuthorityError
		var invalid x509.CertificateInvalidError
		switch {
		case errors.As(err, &unknown):
			return fmt.Errorf("%w (issuer %q)", ErrUntrusted, cert.Issuer.String())
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
			return fmt.Errorf("%w: %v", ErrCertTime, err)
		default:
			return fmt.Errorf("%w: %v", ErrCertRejected, err)
		}
	}
	if len(v.crls) == 0 {
		return nil
	}
	for _, c := range chains[0] {
		if err := v.checkRevocation(c, now); err != nil {
			return err
		}
	}
	return nil
}

// checkRevocation applies the CRLs issued by c's issuer. As with OpenSSL's
// CRL_CHECK_ALL, a certificate without a current CRL from its issuer fails;
// the revocation date is not compared with anything: listed means revoked
// (except the removeFromCRL reason, which only delta CRLs use).
func (v *Verifier) checkRevocation(c *x509.Certificate, now time.Time) error {
	found := false
	for _, crl := range v.crls {
		if !bytes.Equal(crl.RawIssuer, c.RawIssuer) {
			continue
		}
		found = true
		if now.Before(crl.ThisUpdate) {
			return fmt.Errorf("%w: CRL of %q is not yet valid", ErrCRL, crl.Issuer.String())
		}
		if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
			return fmt.Errorf("%w: CRL of %q has expired", ErrCRL, crl.Issuer.String())
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(c.SerialNumber) == 0 && e.ReasonCode != 8 {
				return fmt.Errorf("%w (%s, serial %X)", ErrRevoked, c.Subject.CommonName, c.SerialNumber)
			}
		}
	}
	if !found {
		return fmt.Errorf("%w: no CRL for issuer %q", ErrCRL, c.Issuer.String())
	}
	return nil
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// firstCommonName returns the first CN attribute of the subject, as the
// reference's get_attributes_for_oid(COMMON_NAME)[0] does (pkix.Name's
// CommonName would give the last one).
func firstCommonName(cert *x509.Certificate) (string, bool) {
	for _, atv := range cert.Subject.Names {
		if atv.Type.Equal(oidCommonName) {
			s, ok := atv.Value.(string)
			return s, ok
		}
	}
	return "", false
}
