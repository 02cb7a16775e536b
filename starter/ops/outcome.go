package ops

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/internal/operate"
)

// Outcomes of a signalled record (see internal/operate).
const (
	OutcomeCompleted    = operate.OutcomeCompleted
	OutcomeDeadLettered = operate.OutcomeDeadLettered
	OutcomeUpdating     = operate.OutcomeUpdating
	OutcomeAbandoned    = operate.OutcomeAbandoned
)

// Outcome is what became of one signalled record.
type Outcome = operate.Outcome

// Snapshot reads each workflow's last dead-lettering time (see operate.Snapshot).
func Snapshot(ctx context.Context, c client.Client, ids []string) map[string]string {
	return operate.Snapshot(ctx, c, ids)
}

// Await polls the signalled workflows until each has settled or wait has passed.
func Await(ctx context.Context, c client.Client, ids []string, before map[string]string, wait time.Duration) []Outcome {
	return operate.Await(ctx, c, ids, before, wait, nil)
}
