// Package rpc runs the wire protocol over TCP: a Server that reads request
// frames and writes responses, and a multiplexed client Conn on which many
// requests are in flight at once.
//
// Both sides give every connection one reader and one writer goroutine and a
// bounded outbound queue; a connection whose queue stays full is closed with
// a named reason rather than allowed to grow without limit. Malformed input
// is answered with a connection-level error response (ID 0) and the
// connection is closed; it never brings the process down.
package rpc
