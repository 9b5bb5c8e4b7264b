package message

// SYSFLAG bits (PROTOCOL.md §4.2). These constants are part of the wire
// format and should not be changed.
const (
	FlagCompressed  int32 = 0x1   // body is compressed (zlib unless CompressionMask bits say otherwise)
	FlagMultiTags   int32 = 0x2   // set by the broker for MULTI_TAG topics
	FlagBornHostV6  int32 = 0x10  // BORNHOST is 16+4 bytes
	FlagStoreHostV6 int32 = 0x20  // STOREHOST is 16+4 bytes
	FlagNeedUnwrap  int32 = 0x40  // 5.x inner batch
	FlagInnerBatch  int32 = 0x80  // 5.x inner batch
	CompressionMask int32 = 0x700 // 0x100 LZ4, 0x200 ZSTD, 0x300 ZLIB, 0 = zlib (legacy)

	TransactionMask         int32 = 0xC
	TransactionNotType      int32 = 0x0
	TransactionPreparedType int32 = 0x4
	TransactionCommitType   int32 = 0x8
	TransactionRollbackType int32 = 0xC
)

// TransactionType returns the transaction bits of a sysflag (one of the
// Transaction*Type constants).
func TransactionType(sysFlag int32) int32 { return sysFlag & TransactionMask }

// WithTransactionType returns sysFlag with its transaction bits set to t.
func WithTransactionType(sysFlag, t int32) int32 {
	return sysFlag&^TransactionMask | t&TransactionMask
}
