;; start_loop.wat: a filter whose WebAssembly start function loops forever.
;; The start function runs while the module is instantiated, before the host
;; can give the instance a deadline: only its fuel (1e9 instructions) ends
;; it, and the host must refuse the plugin, not hang.
(module
  (memory (export "memory") 1)
  (func $forever (loop $l (br $l)))
  (start $forever)
  (func (export "aegis_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "aegis_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "aegis_filter") (param i32 i32) (result i64) (i64.const 0))
)
