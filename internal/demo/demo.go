// Package demo makes synthetic records for `starter publish --demo`, make run and the chaos runs. It is
// the one place that says which records a demo TCS knows: placements 1..SeededPlacements, and every
// scan whose ID does not start with "f". The TCS simulator seeds itself from it (the dependency points
// from the simulator to here, so the production starter links no simulator code); what this package
// makes unknown, the simulator answers with 404, so a demo shows dead letters too.
package demo

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tis-writeback/writeback/contract"
)

// SeededPlacements is how many placements the simulator knows by default (1..N).
const SeededPlacements = 100000

// unknownScanPrefix starts every scan ID the simulator does not know.
const unknownScanPrefix = "f"

// ScanKnown says whether the simulator knows a scan of this (UUID) ID without being told.
func ScanKnown(id string) bool { return !strings.HasPrefix(strings.ToLower(id), unknownScanPrefix) }

// ScanID is a fresh scan ID the simulator knows (known) or answers 404 for (!known).
func ScanID(known bool) string {
	id := uuid.New().String()
	if !known {
		return unknownScanPrefix + id[1:]
	}
	if !ScanKnown(id) {
		return "e" + id[1:]
	}
	return id
}

// UnknownPlacementID is a placement ID beyond the seeded ones, drawn with r.
func UnknownPlacementID(r *rand.Rand, seeded int64) int64 {
	return seeded + 1 + int64(r.IntN(1_000_000))
}

// Record is one message body and its kind.
type Record struct {
	Kind contract.Kind
	Body []byte
}

// Batch makes n realistic records of today: about 70% placements and 30% scans (or only one kind),
// about 3% unknown to the simulator. A seed of 0 takes the time.
func Batch(n int, only contract.Kind, seed uint64) []Record {
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := rand.New(rand.NewPCG(seed, seed>>1|1))
	day := time.Now().UTC().Truncate(24 * time.Hour)
	run := r.IntN(9000) + 1000
	out := make([]Record, 0, n)
	for i := 0; i < n; i++ {
		known := r.Float64() >= 0.03
		k := only
		if k == "" {
			k = contract.KindPlacement
			if r.Float64() < 0.3 {
				k = contract.KindScan
			}
		}
		var body []byte
		if k == contract.KindPlacement {
			id := int64(r.IntN(SeededPlacements) + 1)
			if !known {
				id = UnknownPlacementID(r, SeededPlacements)
			}
			body, _ = json.Marshal(contract.PlacementExported{PlacementID: id, PositionNumber: int64(25000000 + r.IntN(999999)),
				PositionID: int64(6900000 + r.IntN(99999)),
				Filename:   fmt.Sprintf("DE_SEV_APP_%s_%08d.DAT", day.Format("20060102"), run*10000+i),
				ExportedAt: day.Add(13*time.Hour + time.Duration(i)*time.Second)})
		} else {
			results := contract.ScanResults
			body, _ = json.Marshal(contract.ScanCompleted{ScanID: ScanID(known), Result: results[r.IntN(len(results))],
				FileName: fmt.Sprintf("referral-%05d.pdf", i), CompletedAt: day.Add(9*time.Hour + time.Duration(i)*time.Second)})
		}
		out = append(out, Record{Kind: k, Body: body})
	}
	return out
}
