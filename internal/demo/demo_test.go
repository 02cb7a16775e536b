package demo_test

import (
	"testing"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/demo"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// Every demo record is a valid message; about 3% are unknown to the simulator, and the simulator
// agrees with the demo about which.
func TestBatchMatchesTheSimulator(t *testing.T) {
	store := sim.NewStore(demo.SeededPlacements, func() float64 { return 1 })
	recs := demo.Batch(5000, "", 7)
	unknown, scans := 0, 0
	for _, r := range recs {
		switch r.Kind {
		case contract.KindPlacement:
			m, err := contract.DecodePlacement(r.Body)
			if err != nil {
				t.Fatalf("invalid placement %s: %v", r.Body, err)
			}
			if !store.PlacementKnown(m.PlacementID) {
				unknown++
			}
		case contract.KindScan:
			scans++
			m, err := contract.DecodeScan(r.Body)
			if err != nil {
				t.Fatalf("invalid scan %s: %v", r.Body, err)
			}
			if !store.ScanKnown(m.ScanID) {
				unknown++
			}
		}
	}
	if unknown < 100 || unknown > 200 {
		t.Errorf("%d of 5000 unknown to the simulator, want about 3%%", unknown)
	}
	if scans < 1200 || scans > 1800 {
		t.Errorf("%d of 5000 scans, want about 30%%", scans)
	}
	for _, r := range demo.Batch(50, contract.KindScan, 3) {
		if r.Kind != contract.KindScan {
			t.Fatalf("--kind scan made a %s", r.Kind)
		}
	}
}
