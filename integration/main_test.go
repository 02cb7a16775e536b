package integration_test

import (
	"testing"

	"github.com/tis-writeback/writeback/internal/testenv"
)

// Tests that change what others share (the RabbitMQ node's connections or settings) or measure time
// and rates run alone, first; the others call t.Parallel() and then run together, as many at a time
// as -parallel says (make test: 3; they mostly wait on servers), each with its own dev server,
// simulator, topology and workers.
//
// TestMain stops the RabbitMQ node the tests started for themselves, if they did (run without make test).
func TestMain(m *testing.M) { testenv.Main(m) }
