package file

// cursor walks an iovec list front to back without allocating, and
// without changing the list: the handler owns it.
type cursor struct {
	iov [][]byte
	cur []byte
}

// next returns the next at most n bytes of the list, within one iovec, or
// an empty slice when the list is exhausted.
func (c *cursor) next(n int) []byte {
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

// iovLen returns the number of bytes in an iovec list.
func iovLen(iov [][]byte) int64 {
	n := int64(0)
	for _, b := range iov {
		n += int64(len(b))
	}
	return n
}
