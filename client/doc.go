// Package client is the Go SDK for cleave: it speaks the wire protocol to the
// routers of a deployment.
//
// # Connections
//
// Dial connects to the first reachable router of the list it is given and
// keeps one multiplexed connection on which any number of calls from any
// number of goroutines are in flight at once. A Client is safe for
// concurrent use. If the connection breaks, the next call redials, trying
// the routers in order starting after the one that failed, and a call whose
// connection broke under it is sent again (at most 4 times) while its
// deadline lasts: routers are stateless forwarders, so any router will do.
// WithDialer opens every one of these connections (through a proxy, a
// tunnel or a test's fault injector); WithDialTimeout caps each dial.
// Mutating calls (Mkdir, MkdirAll, Put, Write, Append, Rename, Copy,
// Remove, RemoveAll, and an upload's COMMIT) carry the
// client's session id and a sequence number that stays the same across
// these retries, so the cluster applies each at most once.
//
// # Direct mode
//
// WithDirect sends file operations straight to a member of the cluster
// that owns the path's root directory, as the routing table (fetched from
// a router) says: one hop less than through a router. What the cluster
// does not answer by itself (its member is not the leader, the range
// moved, the member is slow, unreachable or refuses the client's
// credentials) goes through a router with the same session and sequence
// number, so a call neither fails nor applies twice for being direct.
// Nodes accept only the deployment's token: with a user's token, every
// call goes through a router.
//
// # Deadlines
//
// Every method takes a context first. Its deadline travels to the server in
// the request; a call whose ctx has no deadline gets the client's default
// (WithTimeout, 10s). When the deadline passes after a request was sent, the
// error has code TIMEOUT and the outcome is unknown; when no router could be
// reached at all it has code UNAVAILABLE and nothing was applied.
//
// # Errors
//
// Every failure is a *Error carrying its Code, the server's message,
// the operation and the path. Each code has a sentinel (ErrNotFound for
// NOT_FOUND and so on), and a *Error matches its sentinel with errors.Is:
//
//	if errors.Is(err, client.ErrNotFound) { ... }
//
// CodeOf gives the code of any error (UNAVAILABLE for transport failures,
// TIMEOUT for an ended context). Paths are checked before anything is sent;
// a bad one fails with INVALID naming the rule broken.
//
// # Metadata
//
// Stat is a path's metadata: Mtime is a time.Time (UTC) and IsDir tells
// directories from files. Its JSON form is the CLI's -o json
// shape: {"name","type":"file"|"dir","size","mtime" (RFC 3339 with
// nanoseconds),"version","checksum"}.
//
// # Files, streams and listings
//
// Put, Write, Append and GetRange carry their bytes in one frame (8 MiB by
// default). Upload and Download stream any size in ChunkSize (1 MiB) pieces
// with a few in flight, so memory stays bounded: an upload is chunks plus
// one COMMIT that makes the file appear atomically; a download is ranged
// GETs that must all see one version (else ErrConflict). Open returns a
// seekable *File over one version; FS exposes the namespace as io/fs.
// Chunks carry no session (they are content-addressed, so idempotent);
// every other mutation carries (session, seq). Copy within a root is one
// operation on the cluster; across roots it streams through the SDK.
// ListPage returns one page and an opaque continuation token; List and Walk
// follow pages. Rename across roots fails with ErrCrossRoot.
//
// # Types
//
// The SDK's API uses only its own types: Code and FileType, PutOption
// (built by Parents, IfAbsent and IfVersion), and the admin answers
// (Status, RoutingTable, NodeStatus, SplitStatus, User), whose JSON forms
// are what the CLI prints with -o json. A program never imports the
// protocol package to use the SDK.
//
// Lock order inside Client: dialMu before mu.
package client
