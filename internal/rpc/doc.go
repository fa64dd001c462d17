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
// Protocol rules the server enforces for every handler: request ids start
// at 1 (id 0 is a connection-level INVALID); a mutating request carries
// both session and seq or neither (INVALID otherwise, not handled;
// HELLO's session is never applied); an error answering a request the
// server read carries that request's id, one answering none carries ID 0
// and is the last frame before the close. A frame over MaxFrame (announced
// in the HELLO reply) is answered TOO_LARGE, then the server half-closes
// and reads the rest of that frame away before closing, so the peer reads
// the answer rather than a reset.
//
// Each request a handler serves runs on a goroutine of its own, unless
// the handler is an AsyncHandler that takes it: then the reader hands it
// over and the handler answers it from wherever its result arrives (a
// node's writes answer from the replica's loop), sparing a goroutine's
// start and a wake-up per request. Either way it holds its room in the
// window and the byte budgets until it is answered.
//
// A request's context ends at its deadline, when it is answered, or when
// its connection closes. It starts no timer of its own: the connection
// keeps the deadlines of the requests something waits on in one heap
// under one timer, and AfterFunc registers a function on it without the
// goroutine and allocations of context.AfterFunc.
//
// Policy is the caller's: ServerConfig.TLS decides versions and client
// certificates, Authenticate who the peer is, PlaneHandler which ops a
// listener serves. Handlers read the peer's identity with ConnInfoFrom.
package rpc
