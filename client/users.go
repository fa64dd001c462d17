package client

import (
	"context"

	"github.com/cleavefs/cleave/wire"
)

// Users and grants (docs/security.md). Each call goes to a router, which
// passes it on to the meta leader; each needs admin on "/".

// AddUser creates user name with no grants and returns its token. The
// token is shown only here: routers keep its hash, so a lost token means
// removing the user and adding it again.
func (c *Client) AddUser(ctx context.Context, name string) (token string, err error) {
	resp, err := c.user(ctx, wire.UserSpec{Verb: "add", Name: name})
	if err != nil {
		return "", err
	}
	return resp.Token, nil
}

// RemoveUser deletes user name; its connections lose their rights at once.
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	_, err := c.user(ctx, wire.UserSpec{Verb: "rm", Name: name})
	return err
}

// Grant gives user name permission perm ("read", "write" or "admin") on
// prefix and every path under it, replacing its grant on prefix if any.
func (c *Client) Grant(ctx context.Context, name, prefix, perm string) error {
	_, err := c.user(ctx, wire.UserSpec{Verb: "grant", Name: name, Prefix: prefix, Perm: perm})
	return err
}

// Revoke takes back user name's grant on prefix.
func (c *Client) Revoke(ctx context.Context, name, prefix string) error {
	_, err := c.user(ctx, wire.UserSpec{Verb: "revoke", Name: name, Prefix: prefix})
	return err
}

// Users lists every user and its grants, sorted by name.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	resp, err := c.user(ctx, wire.UserSpec{Verb: "list"})
	if err != nil {
		return nil, err
	}
	return usersFromWire(resp.Users), nil
}

func (c *Client) user(ctx context.Context, spec wire.UserSpec) (*wire.Response, error) {
	return c.call(ctx, "user "+spec.Verb, &wire.Request{Op: wire.OpUser, Path: "/", User: &spec})
}
