package control

// Users and their grants, kept in the meta group beside the table.
//
// A user is a name, the SHA-256 of its token (the token itself is shown
// once, when the user is added, and never stored) and a list of grants:
// read, write or admin on a path prefix. Every router applies the same
// commands in the same order, so every router authenticates and authorises
// with the same state a moment after the meta leader changed it. The state
// changes only through a metaCommand of Kind "user", applied by a pure
// function of the command and the state in memory, so Apply never fails
// the replica.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/token"
	"github.com/cleavefs/cleave/wire"
)

// Perm is what a grant allows; each includes the ones before it.
type Perm uint8

// Permissions, weakest first.
const (
	PermNone  Perm = iota
	PermRead       // GET, STAT, LIST, EXISTS
	PermWrite      // every mutating operation
	PermAdmin      // on "/": the admin verbs (split, membership, users)
)

var permNames = [...]string{PermNone: "none", PermRead: "read", PermWrite: "write", PermAdmin: "admin"}

func (p Perm) String() string {
	if int(p) < len(permNames) {
		return permNames[p]
	}
	return fmt.Sprintf("perm(%d)", uint8(p))
}

// ParsePerm parses "read", "write" or "admin" (and "none").
func ParsePerm(s string) (Perm, error) {
	for i, n := range permNames {
		if n == s {
			return Perm(i), nil
		}
	}
	return PermNone, fmt.Errorf("%w: permission %q is not read, write or admin", ErrBadUser, s)
}

// Errors of user commands.
var (
	ErrBadUser    = errors.New("control: invalid user command")
	ErrUserExists = errors.New("control: user exists")
	ErrNoUser     = errors.New("control: no such user or grant")
)

// maxUsers bounds the user list, so the meta state (and USER list's
// answer) stays well under a frame.
const maxUsers = 1000

// maxGrants bounds the grants of one user.
const maxGrants = 64

// Permits reports whether grants allow need on path: some grant's prefix is
// path or one of its ancestors (whole components: "/a" covers "/a/x", not
// "/ab") and its permission is need or stronger.
func Permits(grants []wire.Grant, need Perm, path string) bool {
	for _, g := range grants {
		p, err := ParsePerm(g.Perm)
		if err != nil || p < need {
			continue
		}
		if g.Prefix == "/" || path == g.Prefix || strings.HasPrefix(path, g.Prefix+"/") {
			return true
		}
	}
	return false
}

// userRecord is one stored user.
type userRecord struct {
	Name   string       `msgpack:"name"`
	Hash   []byte       `msgpack:"hash"` // SHA-256 of the token
	Grants []wire.Grant `msgpack:"grants,omitempty"`
}

// userCommand is the replicated form of one user change.
type userCommand struct {
	Verb  string     `msgpack:"verb"` // add, rm, grant, revoke
	Name  string     `msgpack:"name"`
	Hash  []byte     `msgpack:"hash,omitempty"`
	Grant wire.Grant `msgpack:"grant,omitempty"`
}

const metaKindUser = "user"

// metaUsersKey holds every user (msgpack []userRecord, sorted by name).
var metaUsersKey = []byte("m/users")

// HashToken returns the SHA-256 of token, the form routers keep.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// checkUserName reports whether name is a valid user name.
func checkUserName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: user name %q must be 1 to 64 characters", ErrBadUser, name)
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%w: user name %q has %q at byte %d; use letters, digits, '-', '_' and '.'", ErrBadUser, name, r, i)
		}
	}
	return nil
}

// checkGrant reports whether g names a valid prefix and permission.
func checkGrant(g wire.Grant) error {
	if err := fspath.Validate(g.Prefix); err != nil {
		return fmt.Errorf("%w: grant prefix: %v", ErrBadUser, err)
	}
	p, err := ParsePerm(g.Perm)
	if err != nil {
		return err
	}
	if p == PermNone {
		return fmt.Errorf("%w: a grant needs read, write or admin", ErrBadUser)
	}
	return nil
}

// applyUser is the meta FSM's Apply for a user command: a pure function of
// the command and the users in memory.
func (f *metaFSM) applyUser(b *pebble.Batch, c *userCommand) any {
	users, err := nextUsers(f.userList(), c)
	if err != nil {
		return err
	}
	v, err := msgpack.Marshal(users)
	if err != nil {
		return err
	}
	if err := b.Set(metaUsersKey, v, nil); err != nil {
		return err
	}
	f.users.Store(&users)
	return nil
}

// nextUsers returns the user list after c, or why c does not apply. It
// never modifies cur.
func nextUsers(cur []userRecord, c *userCommand) ([]userRecord, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: user command without a body", ErrBadUser)
	}
	if err := checkUserName(c.Name); err != nil {
		return nil, err
	}
	users := slices.Clone(cur)
	i, found := slices.BinarySearchFunc(users, c.Name, func(u userRecord, n string) int { return strings.Compare(u.Name, n) })
	if c.Verb != "add" && !found {
		return nil, fmt.Errorf("%w: user %q", ErrNoUser, c.Name)
	}
	switch c.Verb {
	case "add":
		if found {
			return nil, fmt.Errorf("%w: %q", ErrUserExists, c.Name)
		}
		if len(users) >= maxUsers {
			return nil, fmt.Errorf("%w: already %d users", ErrBadUser, maxUsers)
		}
		if len(c.Hash) != sha256.Size {
			return nil, fmt.Errorf("%w: token hash of %d bytes", ErrBadUser, len(c.Hash))
		}
		return slices.Insert(users, i, userRecord{Name: c.Name, Hash: c.Hash}), nil
	case "rm":
		return slices.Delete(users, i, i+1), nil
	case "grant", "revoke":
		u := users[i]
		u.Grants = slices.DeleteFunc(slices.Clone(u.Grants), func(g wire.Grant) bool { return g.Prefix == c.Grant.Prefix })
		if c.Verb == "revoke" && len(u.Grants) == len(users[i].Grants) {
			return nil, fmt.Errorf("%w: user %q has no grant on %s", ErrNoUser, c.Name, c.Grant.Prefix)
		}
		if c.Verb == "grant" {
			if err := checkGrant(c.Grant); err != nil {
				return nil, err
			}
			if len(u.Grants) >= maxGrants {
				return nil, fmt.Errorf("%w: user %q already has %d grants", ErrBadUser, c.Name, maxGrants)
			}
			u.Grants = append(u.Grants, c.Grant)
			slices.SortFunc(u.Grants, func(a, b wire.Grant) int { return strings.Compare(a.Prefix, b.Prefix) })
		}
		users[i] = u
		return users, nil
	}
	return nil, fmt.Errorf("%w: verb %q is not add, rm, grant, revoke or list", ErrBadUser, c.Verb)
}

// userList returns the applied users, sorted by name.
func (f *metaFSM) userList() []userRecord {
	if p := f.users.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *metaFSM) loadUsers() error {
	v, closer, err := f.db.Get(metaUsersKey)
	if errors.Is(err, pebble.ErrNotFound) {
		f.users.Store(nil)
		return nil
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	var us []userRecord
	if err := msgpack.Unmarshal(v, &us); err != nil {
		return fmt.Errorf("router: stored users do not decode: %w", err)
	}
	f.users.Store(&us)
	return nil
}

// Users lists the users this router has applied and their grants.
func (m *MetaTable) Users() []wire.UserInfo {
	us := m.fsm.userList()
	out := make([]wire.UserInfo, len(us))
	for i, u := range us {
		out[i] = wire.UserInfo{Name: u.Name, Grants: slices.Clone(u.Grants)}
	}
	return out
}

// ChangeUser applies spec (add, rm, grant or revoke) through the meta group
// and returns, for add, the new user's token. Only on the meta leader
// (ErrNotMetaLeader elsewhere).
func (m *MetaTable) ChangeUser(ctx context.Context, spec *wire.UserSpec) (tok string, err error) {
	c := &userCommand{Verb: spec.Verb, Name: spec.Name}
	switch spec.Verb {
	case "add":
		if tok, err = token.New(); err != nil {
			return "", err
		}
		c.Hash = HashToken(tok)
	case "grant", "revoke":
		c.Grant = wire.Grant{Prefix: spec.Prefix, Perm: spec.Perm}
		if spec.Verb == "grant" {
			if err := checkGrant(c.Grant); err != nil {
				return "", err
			}
		}
	}
	// Check against the applied state first, for an answer without a
	// round through the log; the apply checks again.
	if _, err := nextUsers(m.fsm.userList(), c); err != nil {
		return "", err
	}
	err = m.propose(ctx, func() (*metaCommand, string, error) {
		return &metaCommand{Kind: metaKindUser, User: c}, fmt.Sprintf("%s user %q", c.Verb, c.Name), nil
	})
	if err != nil {
		return "", err
	}
	return tok, nil
}

// Authenticate returns the name and grants of the user whose token this
// is. The token's hash is compared in constant time.
func (m *MetaTable) Authenticate(token string) (name string, grants []wire.Grant, ok bool) {
	h := HashToken(token)
	for _, u := range m.fsm.userList() {
		if subtle.ConstantTimeCompare(u.Hash, h) == 1 {
			return u.Name, u.Grants, true
		}
	}
	return "", nil, false
}

// Grants returns the current grants of user name, and whether it exists: a
// removed user's connections lose their rights at once.
func (m *MetaTable) Grants(name string) ([]wire.Grant, bool) {
	us := m.fsm.userList()
	i, ok := slices.BinarySearchFunc(us, name, func(u userRecord, n string) int { return strings.Compare(u.Name, n) })
	if !ok {
		return nil, false
	}
	return us[i].Grants, true
}
