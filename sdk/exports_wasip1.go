//go:build wasip1

package sdk

import (
	"unsafe"

	"github.com/aegis-streaming/aegis/abi"
)

// The ABI exports. The host writes every input at the start of inbuf, the
// buffer aegis_alloc returned last, and reads every result from res's
// buffer, which lives until the next call.

var inbuf []byte

func ptrOf(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

func input(ptr, n uint32) []byte {
	if ptr != ptrOf(inbuf) || int(n) > len(inbuf) {
		return nil // decodes as bad input
	}
	return inbuf[:n]
}

func result(b []byte) uint64 { return abi.Pack(ptrOf(b), uint32(len(b))) }

//go:wasmimport aegis log
func aegisLog(level int32, ptr, n uint32)

func hostLog(level int32, msg string) {
	aegisLog(level, uint32(uintptr(unsafe.Pointer(unsafe.StringData(msg)))), uint32(len(msg)))
}

//go:wasmexport aegis_abi_version
func exportVersion() uint32 { return abi.Version }

//go:wasmexport aegis_kinds
func exportKinds() uint32 { return kinds() }

//go:wasmexport aegis_alloc
func exportAlloc(size uint32) uint32 {
	inbuf = make([]byte, max(size, 1))
	return ptrOf(inbuf)
}

//go:wasmexport aegis_init
func exportInit(ptr, n uint32) uint64 { return result(handleInit(input(ptr, n))) }

//go:wasmexport aegis_filter
func exportFilter(ptr, n uint32) uint64 { return result(handleFilter(input(ptr, n))) }

//go:wasmexport aegis_map
func exportMap(ptr, n uint32) uint64 { return result(handleMap(input(ptr, n))) }

//go:wasmexport aegis_aggregate
func exportAggregate(ptr, n uint32) uint64 { return result(handleAggregate(input(ptr, n))) }

//go:wasmexport aegis_merge
func exportMerge(ptr, n uint32) uint64 { return result(handleMerge(input(ptr, n))) }

//go:wasmexport aegis_finish
func exportFinish(ptr, n uint32) uint64 { return result(handleFinish(input(ptr, n))) }
