// Package rpc runs the wire protocol over TCP or TLS: a Server that reads
// request frames and writes responses, and a multiplexed client Conn on
// which many requests are in flight at once.
//
// A server connection costs little until its HELLO succeeded: one goroutine,
// a small read buffer, no writer, and a small frame limit, all within
// HelloTimeout. After HELLO it has one reader and one writer goroutine and a
// bounded outbound queue; a connection whose queue stays full, or whose
// write blocks past WriteTimeout, is closed with a named reason rather than
// allowed to grow without limit. Request bytes being handled are bounded
// per connection and per server by making the reader wait. Malformed input
// is answered with a connection-level error response (ID 0) and the
// connection is closed; it never brings the process down. docs/security.md
// lists every limit.
//
// Policy is the caller's: ServerConfig.TLS decides versions and client
// certificates, Authenticate who the peer is, PlaneHandler which ops a
// listener serves. Handlers read the peer's identity with ConnInfoFrom.
package rpc
