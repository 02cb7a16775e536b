package sim_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/tcs"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// DELETE /admin/events makes drift: the placement's rows (and their Idempotency-Keys) are gone, so
// a write of it makes a row again.
func TestDeletedEventsAreDrift(t *testing.T) {
	s := testenv.StartSim(t, 10)
	write := func() {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/api/placements/7/esr-exported", strings.NewReader(
			`{"placementId":7,"positionNumber":1,"positionId":2,"filename":"A.DAT","exportedAt":"2021-07-28T13:10:00Z"}`))
		req.Header.Set("Authorization", "Bearer "+sim.DevToken)
		req.Header.Set("Idempotency-Key", "k-7")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Less(t, resp.StatusCode, 300)
	}
	events := func() []sim.Event {
		resp, err := http.Get(s.AdminURL() + "/admin/events?placementId=7")
		require.NoError(t, err)
		defer resp.Body.Close()
		var evs []sim.Event
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&evs))
		return evs
	}
	write()
	require.Len(t, events(), 1)
	req, _ := http.NewRequest(http.MethodDelete, s.AdminURL()+"/admin/events?placementId=7", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var del map[string]int
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&del))
	resp.Body.Close()
	require.Equal(t, map[string]int{"deleted": 1}, del)
	require.Empty(t, events())
	write() // the same key: the row is written again
	require.Len(t, events(), 1)
	req, _ = http.NewRequest(http.MethodDelete, s.AdminURL()+"/admin/events?placementId=x", nil)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// Faults with an agent apply to one build of the workers only: its requests carry
// User-Agent writeback-worker/BUILD (the tcs client's UserAgent), the other build's are answered.
func TestFaultsForOneBuild(t *testing.T) {
	s := testenv.StartSim(t, 10)
	s.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 422, Only: "/esr-exported", Agent: "writeback-worker/bad"})
	write := func(agent string) error {
		c, err := tcs.New(tcs.Options{BaseURL: s.URL(), Token: tcs.StaticToken(sim.DevToken), UserAgent: agent})
		require.NoError(t, err)
		return c.MarkESRExported(context.Background(), tcs.ESRExport{PlacementID: 7, Filename: "A.DAT"}, "")
	}
	err := write("writeback-worker/bad")
	var te *tcs.Error
	require.ErrorAs(t, err, &te)
	require.Equal(t, 422, te.Status)
	require.NoError(t, write("writeback-worker/good"))
}
