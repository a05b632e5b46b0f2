package client

// setState pauses or resumes pulling when the metaserver forces the
// consumer offline or online (QMQ's ConsumerStateChangedListener).
func (c *Consumer) setState(subject, group string, offline bool) {
	c.stateMu.Lock()
	if offline == c.offline {
		c.stateMu.Unlock()
		return
	}
	c.offline = offline
	if offline {
		c.resumed = make(chan struct{})
	} else {
		close(c.resumed)
		c.resumed = nil
	}
	c.stateMu.Unlock()
	if offline {
		c.m.online.Set(0)
		c.log.Warn("the metaserver has this consumer forced offline: pulling stops until it is set online again (acks go on)", "client_id", c.clientID)
	} else {
		c.m.online.Set(1)
		c.log.Info("the metaserver has this consumer online again: pulling resumes", "client_id", c.clientID)
	}
}

// pausedUntil returns, while the consumer is forced offline, a channel
// closed when it is online again; nil while online.
func (c *Consumer) pausedUntil() <-chan struct{} {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.resumed == nil {
		return nil
	}
	return c.resumed
}

// Online reports whether the consumer pulls: false while the metaserver
// has it forced offline (QMQ's client_offline_state, set through the
// metaserver's /onoffline endpoint). The state is read at each route
// refresh (WithRouteRefresh), so a change takes up to that long.
func (c *Consumer) Online() bool {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	return !c.offline
}
