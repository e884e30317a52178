package host

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/host/internal/meter"
)

// Info describes a loaded plugin.
type Info struct {
	Name       string
	SHA256     string
	Size       int      // bytes of the module
	ABIVersion uint32   // major<<16 | minor, as the module reports it
	Kinds      abi.Kind // the step kinds it implements
	Exports    []string // exported functions with their signatures, sorted
	Imports    []string // imported functions with their signatures, in order
	// MemoryMinPages and MemoryMaxPages are the memory the module declares
	// (MemoryMaxPages 0: no maximum), in 64 KiB pages.
	MemoryMinPages, MemoryMaxPages uint32
}

var (
	sigStep    = signature{[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}}
	sigVersion = signature{nil, []api.ValueType{api.ValueTypeI32}}
	sigAlloc   = signature{[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}}
	sigLog     = signature{[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil}
	sigNone    = signature{nil, nil}

	// The signature every known export must have.
	exportSigs = map[string]signature{
		abi.ExportVersion: sigVersion, abi.ExportAlloc: sigAlloc, abi.ExportKinds: sigVersion,
		abi.ExportInit: sigStep, abi.ExportFilter: sigStep, abi.ExportMap: sigStep,
		abi.ExportAggregate: sigStep, abi.ExportMerge: sigStep, abi.ExportFinish: sigStep,
		abi.ExportInitialize: sigNone,
	}
)

type signature struct{ params, results []api.ValueType }

func sigOf(d api.FunctionDefinition) signature { return signature{d.ParamTypes(), d.ResultTypes()} }

func (s signature) equal(o signature) bool {
	return slices.Equal(s.params, o.params) && slices.Equal(s.results, o.results)
}

func (s signature) String() string {
	names := func(ts []api.ValueType) string {
		var b []string
		for _, t := range ts {
			b = append(b, api.ValueTypeName(t))
		}
		return strings.Join(b, ",")
	}
	return "(" + names(s.params) + ")->(" + names(s.results) + ")"
}

// checkModule checks a compiled module's imports and exports against the
// ABI and fills in what it learns. The kinds it finds here are those whose
// exports are all present; aegis_kinds, read after instantiation, may
// narrow them.
func checkModule(m wazero.CompiledModule, wasi map[string]api.FunctionDefinition, info *Info) error {
	if len(m.ImportedMemories()) > 0 {
		return fmt.Errorf("%w: the module imports a memory; it must define and export its own", ErrBadImport)
	}
	for _, d := range m.ImportedFunctions() {
		mod, name, _ := d.Import()
		if mod == meter.ImportModule {
			continue // the host's own, added by the rewriter (which refuses a module importing it)
		}
		sig := sigOf(d)
		info.Imports = append(info.Imports, mod+"."+name+sig.String())
		switch {
		case mod == abi.ImportModule && name == abi.ImportLog:
			if !sig.equal(sigLog) {
				return fmt.Errorf("%w: import %s.%s is %s, want %s", ErrBadSignature, mod, name, sig, sigLog)
			}
		case mod == abi.WASIModule:
			d, ok := wasi[name]
			if !ok {
				return fmt.Errorf("%w: %s.%s is not a WASI preview 1 function", ErrBadImport, mod, name)
			}
			if want := sigOf(d); !sig.equal(want) {
				return fmt.Errorf("%w: import %s.%s is %s, want %s", ErrBadSignature, mod, name, sig, want)
			}
		default:
			return fmt.Errorf("%w: %s.%s (a plugin may import %s.%s and %s functions only)",
				ErrBadImport, mod, name, abi.ImportModule, abi.ImportLog, abi.WASIModule)
		}
	}
	mems := m.ExportedMemories()
	mem, ok := mems[abi.ExportMemory]
	if !ok {
		return fmt.Errorf("%w: memory (the module must export its memory as %q)", ErrMissingExport, abi.ExportMemory)
	}
	info.MemoryMinPages = mem.Min()
	if max, ok := mem.Max(); ok {
		info.MemoryMaxPages = max
	}
	fns := m.ExportedFunctions()
	for name, d := range fns {
		info.Exports = append(info.Exports, name+sigOf(d).String())
		if want, known := exportSigs[name]; known && !sigOf(d).equal(want) {
			return fmt.Errorf("%w: export %s is %s, want %s", ErrBadSignature, name, sigOf(d), want)
		}
	}
	slices.Sort(info.Exports)
	for _, name := range []string{abi.ExportVersion, abi.ExportAlloc} {
		if _, ok := fns[name]; !ok {
			return fmt.Errorf("%w: %s", ErrMissingExport, name)
		}
	}
	// A kind whose exports are only partly there is not a kind (ABI.md,
	// "Kinds"); it is named if the module ends up with no kind at all.
	partial := ""
	for _, k := range []abi.Kind{abi.KindFilter, abi.KindMap, abi.KindAggregate} {
		have := 0
		for _, name := range k.Exports() {
			if _, ok := fns[name]; ok {
				have++
			}
		}
		switch have {
		case len(k.Exports()):
			info.Kinds |= k
		case 0:
		default:
			partial = fmt.Sprintf("; a %s step needs all of %s", k, strings.Join(k.Exports(), ", "))
		}
	}
	if info.Kinds == 0 {
		return fmt.Errorf("%w: no step exports (%s, %s, or %s with %s and %s)%s", ErrMissingExport,
			abi.ExportFilter, abi.ExportMap, abi.ExportAggregate, abi.ExportMerge, abi.ExportFinish, partial)
	}
	return nil
}
