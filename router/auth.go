package router

// Authentication and authorisation of client connections
// (docs/security.md).
//
// A connection authenticates once, in HELLO, as one of:
//   - root: the deployment's token (Config.Token), every right; routers
//     and nodes present it to each other;
//   - a user: a token the meta group issued (control.MetaTable.Authenticate);
//   - anonymous: no token, with the rights Config.Anonymous gives (none by
//     default; never admin).
// With no Config.Token at all the router is open: every connection is
// root, as a deployment without credentials has always been (the router
// warns at start). Each request is then checked against the principal's
// grants as they are now (a removed user's connections lose their rights
// at once), before anything is forwarded, so a refusal says the same
// whether or not the path exists.

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/wire"
)

// principal is who one client connection authenticated as.
type principal struct {
	root bool
	user string // "" and !root: anonymous
}

func (p principal) String() string {
	switch {
	case p.root:
		return "root"
	case p.user == "":
		return "anonymous"
	}
	return "user " + p.user
}

// authenticate maps a HELLO token to its principal. A token this router
// does not know yet is looked up again after it caught up with the meta
// group, so a user works at once through every router.
func (r *Router) authenticate(ctx context.Context, token string) (principal, error) {
	if r.cfg.Token == "" {
		return principal{root: true}, nil
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(r.cfg.Token)) == 1 {
		return principal{root: true}, nil
	}
	if token == "" {
		if r.cfg.Anonymous == control.PermNone {
			return principal{}, errors.New("this router needs a token (--token or CLEAVE_TOKEN)")
		}
		return principal{}, nil
	}
	if r.meta != nil {
		if name, _, ok := r.meta.Authenticate(token); ok {
			return principal{user: name}, nil
		}
		if r.catchUp(ctx) {
			if name, _, ok := r.meta.Authenticate(token); ok {
				return principal{user: name}, nil
			}
		}
	}
	return principal{}, errors.New("unknown token")
}

// grants returns p's current grants; ok is false for a user that was
// removed since it connected.
func (r *Router) grants(p principal) (gs []wire.Grant, ok bool) {
	if p.user == "" {
		if r.cfg.Anonymous == control.PermNone {
			return nil, true
		}
		return []wire.Grant{{Prefix: "/", Perm: r.cfg.Anonymous.String()}}, true
	}
	if r.meta == nil {
		return nil, false
	}
	return r.meta.Grants(p.user)
}

// catchUp waits (briefly) until this router has applied everything the
// meta group committed, and reports whether it did.
func (r *Router) catchUp(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return r.meta.Refresh(ctx, 0) == nil
}

// authorize answers UNAUTHORIZED or FORBIDDEN when p may not do req, nil
// when it may. A user refused by what this router has applied is checked
// again after it caught up with the meta group, so a grant works at once
// through every router.
func (r *Router) authorize(ctx context.Context, p principal, req *wire.Request) *wire.Response {
	resp := r.check(p, req)
	if resp != nil && p.user != "" && r.meta != nil && r.catchUp(ctx) {
		resp = r.check(p, req)
	}
	return resp
}

// check is authorize with the grants this router has applied.
func (r *Router) check(p principal, req *wire.Request) *wire.Response {
	if p.root {
		return nil
	}
	gs, ok := r.grants(p)
	if !ok {
		return wire.Errorf(req.ID, wire.Unauthorized, "%s was removed; its token is no longer valid", p)
	}
	for _, c := range requirements(req) {
		if !control.Permits(gs, c.need, c.path) {
			if c.need == control.PermAdmin {
				return wire.Errorf(req.ID, wire.Forbidden, "%s may not %v: it needs admin on /", p, req.Op)
			}
			return wire.Errorf(req.ID, wire.Forbidden, "%s may not %s %s", p, c.need, c.path)
		}
	}
	return nil
}

// requirement is one permission a request needs.
type requirement struct {
	need control.Perm
	path string
}

// requirements lists what req needs: read on the paths a read names, write
// on the paths a change names (COPY reads its source), admin on "/" for the
// admin verbs, and any principal for STATUS, TABLE and listing splits.
func requirements(req *wire.Request) []requirement {
	switch op := req.Op; {
	case op == wire.OpStatus || op == wire.OpTable || op == wire.OpSplit && req.Split == nil:
		return nil
	case op == wire.OpSplit || op == wire.OpUser || op == wire.OpAddLearner || op == wire.OpPromote || op == wire.OpRemoveMember:
		return []requirement{{control.PermAdmin, "/"}}
	case op == wire.OpCopy:
		return []requirement{{control.PermRead, req.Path}, {control.PermWrite, req.To}}
	case op == wire.OpRename:
		return []requirement{{control.PermWrite, req.Path}, {control.PermWrite, req.To}}
	case op.Mutating():
		return []requirement{{control.PermWrite, req.Path}}
	case op == wire.OpGet || op == wire.OpStat || op == wire.OpList || op == wire.OpExists:
		return []requirement{{control.PermRead, req.Path}}
	}
	// Anything else is not a client operation: only root may send it.
	return []requirement{{control.PermAdmin, "/"}}
}

// handleUser serves USER: list here, changes on the meta leader.
func (r *Router) handleUser(ctx context.Context, req *wire.Request) *wire.Response {
	if r.meta == nil {
		return wire.Errorf(req.ID, wire.Invalid, "users need the routers' meta group (this router uses a table file)")
	}
	if req.User == nil {
		return wire.Errorf(req.ID, wire.Invalid, "USER needs a user spec")
	}
	if req.User.Verb == "list" {
		return &wire.Response{Users: r.meta.Users()}
	}
	if !r.meta.IsLeader() {
		return r.toMetaLeader(ctx, req)
	}
	tok, err := r.meta.ChangeUser(ctx, req.User)
	switch {
	case err == nil:
		return &wire.Response{Token: tok}
	case errors.Is(err, control.ErrUserExists):
		return wire.Errorf(req.ID, wire.Exists, "%v", err)
	case errors.Is(err, control.ErrNoUser):
		return wire.Errorf(req.ID, wire.NotFound, "%v", err)
	case errors.Is(err, control.ErrBadUser):
		return wire.Errorf(req.ID, wire.Invalid, "%v", err)
	case errors.Is(err, control.ErrNotMetaLeader):
		return wire.Errorf(req.ID, wire.Unavailable, "the meta group's leader changed; retry: %v", err)
	}
	return wire.Errorf(req.ID, wire.Unavailable, "%s user %q: %v", req.User.Verb, req.User.Name, err)
}
