package integration_test

import (
	"testing"

	"github.com/tis-writeback/writeback/internal/testenv"
)

// TestMain stops the RabbitMQ node the tests started for themselves, if they did (run without make test).
func TestMain(m *testing.M) { testenv.Main(m) }
