// Package wire defines cleave's protocol: length-prefixed msgpack frames, the
// request and response messages they carry, and the status codes.
//
// A frame is a 4-byte big-endian payload length followed by that many bytes of
// one msgpack-encoded message. Clients send Request frames and servers answer
// with Response frames carrying the request's ID, so many requests may be in
// flight on one connection and answers may arrive in any order.
//
// AppendEncode appends whole frames (length prefix and payload) to a
// caller's buffer, so a connection can gather many frames into one buffer
// (GetFrameBuffer/PutFrameBuffer pool them) and write them with one call.
// Request, Response and Stat are encoded and decoded by hand, without
// reflection; the bytes are those of the msgpack reflection codec (compact
// integers, fields in struct order, omitempty fields left out), and the
// decoder hands any form it does not handle to the reflection decoder, so
// both read each other's messages with the same values and errors.
//
// The package knows bytes and messages only: no sockets, no retry policy.
// All functions are safe for concurrent use; values are not.
// See docs/protocol.md for the full description with a hex example.
package wire
