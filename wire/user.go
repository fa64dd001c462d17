package wire

// UserSpec is the body of a USER request, an admin verb sent to any router
// (the meta leader applies it). Verb is one of:
//
//   - "add": create user Name; the answer's Response.Token is its token,
//     shown once (routers keep only its hash).
//   - "rm": delete user Name.
//   - "grant": give Name permission Perm on the paths under Prefix.
//   - "revoke": take back Name's grant on Prefix.
//   - "list": Response.Users lists every user and its grants.
type UserSpec struct {
	Verb   string `msgpack:"verb"`
	Name   string `msgpack:"name,omitempty"`
	Prefix string `msgpack:"prefix,omitempty"` // grant, revoke: "/" or a path such as "/a"
	Perm   string `msgpack:"perm,omitempty"`   // grant: "read", "write" or "admin"
}

// UserInfo is one user as USER list reports it.
type UserInfo struct {
	Name   string  `msgpack:"name" json:"name"`
	Grants []Grant `msgpack:"grants,omitempty" json:"grants"`
}

// Grant is one permission of a user: Perm ("read", "write" or "admin") on
// Prefix and every path under it. Each permission includes the ones before
// it; admin also allows the admin verbs when Prefix is "/".
type Grant struct {
	Prefix string `msgpack:"prefix" json:"prefix"`
	Perm   string `msgpack:"perm" json:"perm"`
}
