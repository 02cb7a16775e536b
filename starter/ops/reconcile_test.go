package ops

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
)

func TestReconcileJobsSplitAndDedupe(t *testing.T) {
	var in []contract.PlacementExported
	for i := range 4500 {
		in = append(in, contract.PlacementExported{PlacementID: int64(i), Filename: "F.DAT"})
	}
	in = append(in, in[7], contract.PlacementExported{PlacementID: 7, Filename: "OTHER.DAT"})
	uniq, dropped := Dedupe(in)
	require.Len(t, uniq, 4501, "the same placement with another file is another record")
	require.Equal(t, []string{"placement-esr/7/F.DAT: the same placement and file as an earlier line"}, dropped)
	jobs := ReconcileJobs(uniq, contract.ReconcileInput{By: "ops", DryRun: true})
	require.Len(t, jobs, 3)
	require.Len(t, jobs[0].Placements, 2000)
	require.Len(t, jobs[2].Placements, 501)
	require.True(t, jobs[2].DryRun)
	require.Equal(t, "ops", jobs[1].By)
	require.Empty(t, ReconcileJobs(nil, contract.ReconcileInput{}), "an empty file starts no job")
}

func TestSummarizeMergesTheJobs(t *testing.T) {
	o := func(id, outcome, detail string) contract.ReconcileOutcome {
		return contract.ReconcileOutcome{WorkflowID: id, Outcome: outcome, Detail: detail}
	}
	sum := Summarize([]contract.ReconcileReport{
		{ID: "j1", Outcomes: []contract.ReconcileOutcome{o("a", contract.ReconcilePresent, ""), o("b", contract.ReconcileStarted, "run r"),
			o("c", contract.ReconcileUnknown, "")}},
		{ID: "j2", Present: 3, Outcomes: []contract.ReconcileOutcome{o("d", contract.ReconcileRunning, ""), o("e", contract.ReconcileRetried, "422"),
			o("f", contract.ReconcileDeadLettered, "404"), o("g", contract.ReconcileFailed, "TCS GET: 500"), o("h", contract.ReconcileMissing, ""),
			o("i", contract.ReconcileStartFailed, "start: unavailable")}},
	})
	require.Equal(t, []string{"j1", "j2"}, sum.Jobs)
	require.Equal(t, 12, sum.Checked)
	require.Equal(t, 4, sum.Present)
	require.Equal(t, 6, sum.Missing, "a placement whose start failed is missing, and failed")
	require.Equal(t, 1, sum.Started)
	require.Equal(t, 1, sum.Running)
	require.Equal(t, 2, sum.DeadLettered)
	require.Equal(t, 1, sum.Retried)
	require.Equal(t, 1, sum.Unknown)
	require.Equal(t, 2, sum.Failed)
	require.Equal(t, []string{"b", "d", "e", "f", "h", "i"}, sum.MissingIDs)
	require.Equal(t, map[string]string{"e": "422", "f": "404"}, sum.DeadLetterReasons)
	require.Equal(t, map[string]string{"g": "TCS GET: 500", "i": "start: unavailable"}, sum.Failures)
}
