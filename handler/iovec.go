package handler

// IovCursor walks an iovec list front to back without allocating and
// without changing the list (the handler owns it). Backends use it to
// copy between the data area and their own storage.
type IovCursor struct {
	iov [][]byte
	cur []byte
}

// NewIovCursor returns a cursor at the start of iov.
func NewIovCursor(iov [][]byte) IovCursor { return IovCursor{iov: iov} }

// Next returns the next at most n bytes of the list, within one iovec, or
// an empty slice when the list is exhausted.
func (c *IovCursor) Next(n int) []byte {
	for len(c.cur) == 0 {
		if len(c.iov) == 0 {
			return nil
		}
		c.cur, c.iov = c.iov[0], c.iov[1:]
	}
	n = min(n, len(c.cur))
	b := c.cur[:n]
	c.cur = c.cur[n:]
	return b
}

// Skip advances over n bytes.
func (c *IovCursor) Skip(n int) {
	for n > 0 {
		b := c.Next(n)
		if len(b) == 0 {
			return
		}
		n -= len(b)
	}
}

// IovLen returns the number of bytes in an iovec list.
func IovLen(iov [][]byte) int64 {
	n := int64(0)
	for _, b := range iov {
		n += int64(len(b))
	}
	return n
}
