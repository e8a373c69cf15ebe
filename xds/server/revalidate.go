package server

// stillAdmitted asks, for a stream already serving, whether its proxy may
// go on: its principal must still hold (a revoked or expired token ends
// the stream) and its namespace must still be admitted. The error ends
// the stream.
func (c *conn) stillAdmitted() error {
	if f := c.s.opts.Revalidate; f != nil {
		if err := f(c.principal); err != nil {
			c.log.Warn("xds credential no longer valid; disconnecting", "credential", c.principal.Subject, "err", err)
			return err
		}
	}
	if err := c.s.admit(c.meta); err != nil {
		c.log.Warn("xds proxy no longer admitted; disconnecting", "err", err)
		return err
	}
	return nil
}
