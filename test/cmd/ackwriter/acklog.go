package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// logHeader is the first line of an ack log: what the writer wrote where.
type logHeader struct {
	Run       uint64
	BlockSize int
	Blocks    uint64
	Offset    int64
}

const logVersion = "ackwriter-log v1"

func (h logHeader) String() string {
	return fmt.Sprintf("%s run=%016x bs=%d blocks=%d offset=%d", logVersion, h.Run, h.BlockSize, h.Blocks, h.Offset)
}

// ackLog appends records to the log file. Each record is one write(2) on an
// O_APPEND file, so concurrent workers never interleave inside a line.
type ackLog struct {
	mu sync.Mutex
	f  *os.File
}

func createAckLog(path string, h logHeader) (*ackLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create ack log: %w", err)
	}
	l := &ackLog{f: f}
	if err := l.put(h.String() + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// issued records that a write of seq to block is about to be sent.
func (l *ackLog) issued(block, seq uint64) error {
	return l.put("W " + strconv.FormatUint(block, 10) + " " + strconv.FormatUint(seq, 10) + "\n")
}

// acked records that the device acknowledged the write of seq to block.
func (l *ackLog) acked(block, seq uint64) error {
	return l.put("A " + strconv.FormatUint(block, 10) + " " + strconv.FormatUint(seq, 10) + "\n")
}

func (l *ackLog) put(s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.WriteString(s); err != nil {
		return fmt.Errorf("append to ack log: %w", err)
	}
	return nil
}

func (l *ackLog) Close() error {
	if err := l.f.Sync(); err != nil {
		l.f.Close()
		return fmt.Errorf("sync ack log: %w", err)
	}
	return l.f.Close()
}

// blockHistory is what the log says about one block.
type blockHistory struct {
	issued []uint64 // every sequence sent to the block, in log order
	acked  []uint64 // every acknowledged sequence, in log order
}

// lastAcked returns the highest acknowledged sequence.
func (b *blockHistory) lastAcked() uint64 { return slices.Max(b.acked) }

func (b *blockHistory) wasIssued(seq uint64) bool { return slices.Contains(b.issued, seq) }

// readAckLog parses a log. A torn last line — the writer died while
// appending it — is ignored; any other malformed line is an error, and so is
// an acknowledgement of a write that was never issued.
func readAckLog(r io.Reader) (logHeader, map[uint64]*blockHistory, error) {
	br := bufio.NewReader(r)
	first, err := br.ReadString('\n')
	if err != nil {
		return logHeader{}, nil, fmt.Errorf("read ack log header: %w", err)
	}
	h, err := parseLogHeader(strings.TrimSuffix(first, "\n"))
	if err != nil {
		return logHeader{}, nil, err
	}
	blocks := make(map[uint64]*blockHistory)
	for lineNo := 2; ; lineNo++ {
		line, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) {
			return h, blocks, nil // line, if any, is torn
		}
		if err != nil {
			return logHeader{}, nil, fmt.Errorf("read ack log: %w", err)
		}
		kind, block, seq, err := parseRecord(strings.TrimSuffix(line, "\n"))
		if err != nil {
			return logHeader{}, nil, fmt.Errorf("ack log line %d: %w", lineNo, err)
		}
		if block >= h.Blocks {
			return logHeader{}, nil, fmt.Errorf("ack log line %d: block %d beyond the %d blocks written", lineNo, block, h.Blocks)
		}
		bh := blocks[block]
		if bh == nil {
			bh = &blockHistory{}
			blocks[block] = bh
		}
		switch kind {
		case 'W':
			bh.issued = append(bh.issued, seq)
		case 'A':
			if !bh.wasIssued(seq) {
				return logHeader{}, nil, fmt.Errorf("ack log line %d: block %d seq %d acknowledged but never issued", lineNo, block, seq)
			}
			bh.acked = append(bh.acked, seq)
		}
	}
}

func parseLogHeader(s string) (logHeader, error) {
	rest, ok := strings.CutPrefix(s, logVersion+" ")
	if !ok {
		return logHeader{}, fmt.Errorf("parse ack log header %q: not an %s file", s, logVersion)
	}
	var h logHeader
	if _, err := fmt.Sscanf(rest, "run=%x bs=%d blocks=%d offset=%d", &h.Run, &h.BlockSize, &h.Blocks, &h.Offset); err != nil {
		return logHeader{}, fmt.Errorf("parse ack log header %q: %w", s, err)
	}
	if !validBlockSize(h.BlockSize) || h.Blocks == 0 || h.Offset < 0 || h.Offset%minBlockSize != 0 {
		return logHeader{}, fmt.Errorf("parse ack log header %q: bad geometry", s)
	}
	return h, nil
}

func parseRecord(s string) (kind byte, block, seq uint64, err error) {
	f := strings.Fields(s)
	if len(f) != 3 || (f[0] != "W" && f[0] != "A") {
		return 0, 0, 0, fmt.Errorf("malformed record %q", s)
	}
	if block, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return 0, 0, 0, fmt.Errorf("malformed record %q: %w", s, err)
	}
	if seq, err = strconv.ParseUint(f[2], 10, 64); err != nil {
		return 0, 0, 0, fmt.Errorf("malformed record %q: %w", s, err)
	}
	return f[0][0], block, seq, nil
}
