package workflows

import (
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"
)

// receive takes the next signal on c and decodes it into v. A payload that does not decode (an
// operator's `--input '{"reason": 42}'`) is logged and reported false. Receiving into v directly
// would not do: the SDK drops an undecodable value and keeps the receive blocked until a decodable
// one comes, so one bad signal would wedge the loop and every other signal behind it.
func receive(ctx workflow.Context, c workflow.ReceiveChannel, v any, logger log.Logger) bool {
	var raw converter.RawValue
	c.Receive(ctx, &raw)
	if raw.Payload() == nil {
		return true // no input: the zero value
	}
	if err := converter.GetDefaultDataConverter().FromPayload(raw.Payload(), v); err != nil {
		logger.Warn("signal ignored: its payload does not decode", "signal", c.Name(), "error", err.Error())
		return false
	}
	return true
}
