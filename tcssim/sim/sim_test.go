package sim_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/testenv"
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
