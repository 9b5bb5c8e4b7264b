package store

import (
	"errors"
	"strconv"
)

// AppendStatus is the outcome of an append, mapped by the broker to a
// response code (PROTOCOL.md §5.2 step 8).
type AppendStatus int

const (
	// PutOK: stored (and, under SyncFlush, durable).
	PutOK AppendStatus = iota
	// FlushDiskTimeout: stored, but the covering fsync did not finish
	// within SyncFlushTimeout (or the context ended first). The message
	// may or may not survive a power cut. Response code 10.
	FlushDiskTimeout
	// MessageIllegal: body too large, topic empty or too long, bad
	// properties, or a batch that does not fit a segment. Code 13.
	MessageIllegal
	// PropertiesSizeExceeded: properties longer than 32767 bytes. Code 13.
	PropertiesSizeExceeded
	// DiskFull: disk usage is at or above DiskFullRatio, or a write hit
	// ENOSPC. Nothing was stored. Retry later. Code 14.
	DiskFull
	// ServiceNotAvailable: the store is closed or writes stopped after an
	// I/O error (see the returned error). Nothing was stored, or, when an
	// fsync failed under SyncFlush, the message was written but is not
	// known to be durable. Code 14.
	ServiceNotAvailable
)

var appendStatusNames = [...]string{"PUT_OK", "FLUSH_DISK_TIMEOUT", "MESSAGE_ILLEGAL", "PROPERTIES_SIZE_EXCEEDED", "DISK_FULL", "SERVICE_NOT_AVAILABLE"}

func (s AppendStatus) String() string {
	if s >= 0 && int(s) < len(appendStatusNames) {
		return appendStatusNames[s]
	}
	return "AppendStatus(" + strconv.Itoa(int(s)) + ")"
}

// GetStatus is the outcome of GetMessages (PROTOCOL.md §6.2 step 4).
type GetStatus int

const (
	// Found: at least one message is in GetResult.Body.
	Found GetStatus = iota
	// NoMatchedLogicQueue: the queue does not exist.
	NoMatchedLogicQueue
	// NoMessageInQueue: the queue exists but has never held a message.
	NoMessageInQueue
	// OffsetTooSmall: offset < MinOffset; NextBeginOffset = MinOffset.
	OffsetTooSmall
	// OffsetOverflowOne: offset == MaxOffset (long-poll candidate).
	OffsetOverflowOne
	// OffsetOverflowBadly: offset > MaxOffset; NextBeginOffset = MaxOffset.
	OffsetOverflowBadly
	// NoMatchedMessage: entries were examined, none matched the filter.
	NoMatchedMessage
	// MessageWasRemoving: the entries point into deleted segments.
	MessageWasRemoving
	// OffsetFoundNull: the consume queue could not be read.
	OffsetFoundNull
)

var getStatusNames = [...]string{"FOUND", "NO_MATCHED_LOGIC_QUEUE", "NO_MESSAGE_IN_QUEUE", "OFFSET_TOO_SMALL",
	"OFFSET_OVERFLOW_ONE", "OFFSET_OVERFLOW_BADLY", "NO_MATCHED_MESSAGE", "MESSAGE_WAS_REMOVING", "OFFSET_FOUND_NULL"}

func (s GetStatus) String() string {
	if s >= 0 && int(s) < len(getStatusNames) {
		return getStatusNames[s]
	}
	return "GetStatus(" + strconv.Itoa(int(s)) + ")"
}

var (
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("store: closed")
	// ErrWritesStopped wraps the I/O error that stopped all writes. It is
	// sticky: every later append returns it, until the store is reopened
	// (which recovers from the log).
	ErrWritesStopped = errors.New("store: writes stopped after an I/O error")
	// ErrDiskFull is returned with DiskFull.
	ErrDiskFull = errors.New("store: disk full, writes refused")
	// ErrFlushTimeout is returned with FlushDiskTimeout.
	ErrFlushTimeout = errors.New("store: sync flush timed out")
	// ErrMessageIllegal is wrapped by errors returned with MessageIllegal.
	ErrMessageIllegal = errors.New("store: message illegal")
	// ErrNotFound is returned by ReadRecord and LookupMessage for an
	// offset below the first segment (deleted) or at or past the end.
	ErrNotFound = errors.New("store: no message at this commit-log offset")
)
