// Package abi is the contract between aegis-host and its WebAssembly
// plugins: the ABI version, the names of the exports and imports, the status
// codes, and the binary encoding of batches and results, with an encoder and
// a decoder that both sides use. ABI.md is the specification, byte by byte;
// this package is its reference implementation.
//
// Everything here uses the standard library only and builds for
// GOOS=wasip1 GOARCH=wasm, so the Go guest SDK and the host share one codec.
// Decoders never trust their input: every length is checked against the
// bytes that are there, because a hostile guest controls what the host
// decodes.
package abi

import "fmt"

// The ABI version this package speaks. A module reports the version it was
// built for from [ExportVersion] as major<<16 | minor. The host runs modules
// of its own major version and a minor version no newer than its own.
const (
	VersionMajor = 1
	VersionMinor = 0
	Version      = VersionMajor<<16 | VersionMinor
)

// VersionString formats a packed version as "major.minor".
func VersionString(v uint32) string { return fmt.Sprintf("%d.%d", v>>16, v&0xffff) }

// Exports a module provides. Every step export has the signature
// (ptr i32, len i32) -> i64: the input is the region [ptr, ptr+len) of the
// module's memory, written by the host into the buffer that [ExportAlloc]
// returned, and the result is the module-owned region ptr<<32 | len.
const (
	ExportMemory     = "memory"            // the module's linear memory (required)
	ExportVersion    = "aegis_abi_version" // () -> i32 (required)
	ExportAlloc      = "aegis_alloc"       // (size i32) -> i32 (required)
	ExportKinds      = "aegis_kinds"       // () -> i32, a bit set of Kind (optional)
	ExportInit       = "aegis_init"        // (ptr, len) -> i64: configuration (optional)
	ExportFilter     = "aegis_filter"      // (ptr, len) -> i64: Kind Filter
	ExportMap        = "aegis_map"         // (ptr, len) -> i64: Kind Map
	ExportAggregate  = "aegis_aggregate"   // (ptr, len) -> i64: Kind Aggregate
	ExportMerge      = "aegis_merge"       // (ptr, len) -> i64: Kind Aggregate
	ExportFinish     = "aegis_finish"      // (ptr, len) -> i64: Kind Aggregate
	ExportInitialize = "_initialize"       // WASI reactor start function (optional)
)

// Imports a module may use. Anything else is refused at load.
const (
	ImportModule = "aegis" // the host's module
	ImportLog    = "log"   // aegis.log(level i32, ptr i32, len i32)
	WASIModule   = "wasi_snapshot_preview1"
)

// Kind is a kind of step a module implements. [ExportKinds] returns a bit
// set of them.
type Kind uint32

const (
	KindFilter    Kind = 1 << 0
	KindMap       Kind = 1 << 1
	KindAggregate Kind = 1 << 2
	kindAll            = KindFilter | KindMap | KindAggregate
)

var kindNames = []struct {
	k    Kind
	name string
}{{KindFilter, "filter"}, {KindMap, "map"}, {KindAggregate, "aggregate"}}

// String names one kind, or lists a set ("filter,map").
func (k Kind) String() string {
	s := ""
	for _, kn := range kindNames {
		if k&kn.k != 0 {
			if s != "" {
				s += ","
			}
			s += kn.name
		}
	}
	if rest := k &^ kindAll; rest != 0 {
		if s != "" {
			s += ","
		}
		s += fmt.Sprintf("unknown(%#x)", uint32(rest))
	}
	if s == "" {
		return "none"
	}
	return s
}

// ParseKind parses one kind name.
func ParseKind(s string) (Kind, error) {
	for _, kn := range kindNames {
		if kn.name == s {
			return kn.k, nil
		}
	}
	return 0, fmt.Errorf("unknown step kind %q, want one of filter, map, aggregate", s)
}

// Exports returns the step exports that implement k (one kind).
func (k Kind) Exports() []string {
	switch k {
	case KindFilter:
		return []string{ExportFilter}
	case KindMap:
		return []string{ExportMap}
	case KindAggregate:
		return []string{ExportAggregate, ExportMerge, ExportFinish}
	}
	return nil
}

// Status is the outcome of a call, the first field of every result.
type Status uint32

const (
	StatusOK          Status = 0 // the call succeeded
	StatusBadInput    Status = 1 // the module could not decode its input
	StatusBadConfig   Status = 2 // aegis_init refused the configuration
	StatusFailed      Status = 3 // the plugin's code failed; the message says why
	StatusUnsupported Status = 4 // the module does not implement this export's kind
)

var statusNames = [...]string{"ok", "bad input", "bad config", "failed", "unsupported"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint32(s))
}

// Log levels of aegis.log, the values of log/slog.
const (
	LevelDebug int32 = -4
	LevelInfo  int32 = 0
	LevelWarn  int32 = 4
	LevelError int32 = 8
)

// DataKind is the kind of an event's data, as in the host's event model.
type DataKind uint8

const (
	DataNull   DataKind = 0 // no bytes
	DataBool   DataKind = 1 // one byte, 0 or 1
	DataInt    DataKind = 2 // 8 bytes, little-endian two's complement
	DataFloat  DataKind = 3 // 8 bytes, little-endian IEEE 754 binary64
	DataString DataKind = 4 // UTF-8 text
	DataBytes  DataKind = 5 // opaque bytes
	DataJSON   DataKind = 6 // one UTF-8 JSON value (RFC 8259)
)

// Pack and Unpack convert between a region and the i64 that step exports
// return: ptr<<32 | len.
func Pack(ptr, length uint32) uint64 { return uint64(ptr)<<32 | uint64(length) }

// Unpack is the inverse of [Pack].
func Unpack(v uint64) (ptr, length uint32) { return uint32(v >> 32), uint32(v) }
