// Package fedmsg signs and verifies fedmsg envelopes the way the reference
// Python fedmsg library does with its X.509 backend (fedmsg.crypto.x509_ng).
//
// A fedmsg signature covers a re-serialization of the envelope, not the bytes
// that travelled on the bus: the signer serializes its own Python dict with
// json.dumps(sort_keys=True, separators=(',', ':')) and the validator decodes
// the received frame and serializes it again the same way. A Go verifier must
// therefore reproduce Python's JSON output byte for byte, which is what
// [Canonical] does; [Sign] and [Verifier.Verify] build on it.
//
// Decode received frames with a json.Decoder that has UseNumber set (see
// [DecodeEnvelope]): float64 cannot tell "1.0" (a Python float) from "1"
// (a Python int), and the two serialize differently.
package fedmsg
