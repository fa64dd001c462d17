package client

import (
	"context"

	"github.com/cleavefs/cleave/wire"
)

// Split starts the split of spec.Cluster (docs/split.md): the
// new cluster's nodes, already started empty with --join, take the upper
// half of its range. It returns the split's record once it is planned in
// the meta group; the meta leader drives it on, and Splits reports its
// phase. Calling it again with the same spec returns the same split.
// With spec.Abandon set it abandons the split in progress of spec.Cluster,
// which succeeds only before the SPLIT entry commits.
func (c *Client) Split(ctx context.Context, spec SplitSpec) (*SplitStatus, error) {
	resp, err := c.call(ctx, "split", &wire.Request{Op: wire.OpSplit, Path: "/", Split: spec.toWire()})
	if err != nil {
		return nil, err
	}
	if resp.Split == nil {
		return nil, &Error{Code: CodeInternal, Op: "split", Message: "split: the answer carries no split record"}
	}
	return splitFromWire(resp.Split), nil
}

// Splits returns the splits recorded in the meta group, oldest first, with
// their phases.
func (c *Client) Splits(ctx context.Context) ([]SplitStatus, error) {
	resp, err := c.call(ctx, "split", &wire.Request{Op: wire.OpSplit, Path: "/"})
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, nil
	}
	return splitsFromWire(resp.Status.Splits), nil
}
