package workflows_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/workflows"
)

func ledgerEnv(t *testing.T, page func(req contract.LedgerPageRequest) (contract.LedgerPage, error)) *testsuite.TestWorkflowEnvironment {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Ledger, workflow.RegisterOptions{Name: contract.LedgerWorkflowType})
	env.RegisterActivityWithOptions(func(ctx context.Context, req contract.LedgerPageRequest) (contract.LedgerPage, error) {
		return page(req)
	}, activity.RegisterOptions{Name: contract.LedgerPageActivity})
	return env
}

// A ledger adds its pages up in order, each page's answer kept before the next is asked for; a page
// that fails (TCS on hold refuses its reads) is asked for again; a scheduled ledger takes the day before.
func TestLedgerAddsUpItsPages(t *testing.T) {
	var tokens []string
	failed := false
	env := ledgerEnv(t, func(req contract.LedgerPageRequest) (contract.LedgerPage, error) {
		tokens = append(tokens, string(req.Token))
		switch string(req.Token) {
		case "":
			return contract.LedgerPage{Counts: map[string]int{"Completed": 3, "DeadLettered": 1}, Checked: 3,
				Drift: []contract.LedgerDrift{{WorkflowID: "a", Action: "written again by run r"}}, Repaired: 1, Next: []byte("p2")}, nil
		default:
			if !failed {
				failed = true
				return contract.LedgerPage{}, errors.New("TCS requests are on hold by an operator: not sent")
			}
			return contract.LedgerPage{Counts: map[string]int{"Completed": 2, "Poison": 1}, Checked: 2}, nil
		}
	})
	env.ExecuteWorkflow(contract.LedgerWorkflowType, contract.LedgerInput{})
	require.NoError(t, env.GetWorkflowError())
	var rep contract.LedgerReport
	require.NoError(t, env.GetWorkflowResult(&rep))
	require.Equal(t, []string{"", "p2", "p2"}, tokens)
	require.Equal(t, contract.LedgerDone, rep.State)
	require.Equal(t, map[string]int{"Completed": 5, "DeadLettered": 1, "Poison": 1}, rep.Counts)
	require.Equal(t, 5, rep.Checked)
	require.Equal(t, 1, rep.Drift)
	require.Equal(t, 1, rep.Repaired)
	require.Len(t, rep.Records, 1)
	require.NotEmpty(t, rep.Day, "a scheduled ledger takes the day before")
	require.Equal(t, "schedule "+contract.LedgerScheduleID, rep.By)
}

// A day of many pages continues as new, carrying its report and the next page's token.
func TestLedgerContinuesAsNewWithItsReport(t *testing.T) {
	env := ledgerEnv(t, func(req contract.LedgerPageRequest) (contract.LedgerPage, error) {
		return contract.LedgerPage{Counts: map[string]int{"Completed": 500}, Checked: 500, Next: []byte("more")}, nil
	})
	env.ExecuteWorkflow(contract.LedgerWorkflowType, contract.LedgerInput{Day: "2026-12-01", By: "ops"})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "%v", env.GetWorkflowError())
	var in contract.LedgerInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &in))
	require.Equal(t, "2026-12-01", in.Day)
	require.Equal(t, []byte("more"), in.Token)
	require.NotNil(t, in.Report)
	require.Equal(t, 60*500, in.Report.Checked)
}
