package client

import "context"

// SendAsConsumer sends like Producer.Send but, as a consumer sending back a
// failed message does, lets retry and dead-letter subjects through: the
// end-to-end tests probe a dead-letter reader with it.
func SendAsConsumer(ctx context.Context, p *Producer, msgs ...*Message) error {
	return p.sendSync(ctx, newOutgoing, msgs)
}
