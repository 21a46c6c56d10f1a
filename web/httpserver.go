package web

import (
	"net/http"
	"time"
)

// Timeouts of the HTTP server. Without them a client can hold a
// connection (and its goroutine) open for ever: sending its headers or its
// body a byte a minute, reading the answer as slowly, or idling on a
// keep-alive connection. The live stream (/api/v1/stream) lives longer than
// any of them and manages its own deadlines (http.ResponseController).
type Timeouts struct {
	ReadHeader time.Duration // the request line and headers
	Read       time.Duration // the whole request, body included (bodies are at most 256 KiB)
	Write      time.Duration // from the end of the headers to the end of the answer
	Idle       time.Duration // a keep-alive connection between requests
}

// DefaultTimeouts are generous for a person on a slow link and short for
// a client that means harm.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 2 * time.Minute}

// NewHTTPServer is the server for h with the timeouts t.
func NewHTTPServer(h http.Handler, t Timeouts) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read,
		WriteTimeout: t.Write, IdleTimeout: t.Idle, MaxHeaderBytes: 64 << 10}
}
